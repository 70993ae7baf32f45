package apitest

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/vland/vland/internal/segments"
	"github.com/vland/vland/internal/service"
)

// TestStateSurvivesRestart creates objects, restarts the server on the same
// data directory, reads them back unchanged, and keeps allocating without
// handing out an address, VNI, physnet or MAC that is already in use.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := service.DefaultConfig()
	cfg.Segments.VXLANRanges = []segments.Range{{Min: 100, Max: 102}}

	// Password hashing is slow under -race: one admin-role user, whose
	// tokens come straight from the identity service, does everything.
	srv := startServer(t, dir, cfg, "")
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv.Close()
		}
	})
	project, err := srv.Builtin.CreateProject(ctx, "ops")
	must(t, err)
	root := &user{name: "root", projectID: project}
	e := &env{srv: srv, dataDir: dir}
	must(t, e.addUser(root, "admin"))
	root.endpoint, root.resourceBase = srv.URL+"/", srv.URL+"/v2.0/"
	c := root.net(t)
	ca, admin := c, c
	n1, sn := netWithSubnet(t, ca, "restart-1", "10.70.0.0/29")
	n2 := createNet(t, ca, rawNet{"name": "restart-2"})
	explicit := createNet(t, admin, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": 5000})
	flat := createNet(t, admin, rawNet{"provider:network_type": "flat", "provider:physical_network": "phys-restart"})
	var before []port
	for range 3 {
		before = append(before, createPort(t, ca, rawPort{"network_id": n1.ID}))
	}
	vni := map[string]string{}
	for _, id := range []string{n1.ID, n2.ID, explicit.ID, flat.ID} {
		vni[id] = getNet(t, admin, id).SegmentationID
	}
	if vni[n1.ID] == vni[n2.ID] {
		t.Fatalf("two tenant networks share VNI %s", vni[n1.ID])
	}
	oldToken := root.token

	must(t, srv.Close())
	closed = true
	srv = startServer(t, dir, cfg, "")
	t.Cleanup(func() { srv.Close() })
	tok, err := srv.Builtin.IssueToken(ctx, root.userID, project)
	must(t, err)
	root = &user{name: "root", token: tok, endpoint: srv.URL + "/", resourceBase: srv.URL + "/v2.0/"}
	ca, admin = root.net(t), root.net(t)

	t.Run("TokensIssuedBeforeStillWork", func(t *testing.T) {
		r := rawDo(t, t, oldToken, http.MethodGet, srv.URL+"/v2.0/networks/"+n1.ID, "", nil)
		if r.status != http.StatusOK {
			t.Errorf("token issued before the restart: %d %s", r.status, r.body)
		}
	})
	t.Run("ObjectsReadBack", func(t *testing.T) {
		for _, id := range []string{n1.ID, n2.ID, explicit.ID, flat.ID} {
			got := getNet(t, admin, id)
			if got.ID != id || got.SegmentationID != vni[id] {
				t.Errorf("network %s after restart = %+v, want VNI %q", id, got.NetworkProviderExt, vni[id])
			}
		}
		if got := getNet(t, ca, n1.ID); got.Name != "restart-1" || !slices.Equal(got.Subnets, []string{sn.ID}) || got.MTU != 1450 {
			t.Errorf("network after restart = %+v", got)
		}
		gs, err := subnets.Get(ctx, ca, sn.ID).Extract()
		must(t, err)
		if gs.CIDR != sn.CIDR || gs.GatewayIP != sn.GatewayIP || !slices.Equal(gs.AllocationPools, sn.AllocationPools) {
			t.Errorf("subnet after restart = %+v, want %+v", gs, sn)
		}
		for _, p := range before {
			var got port
			must(t, ports.Get(ctx, ca, p.ID).ExtractInto(&got))
			if got.MACAddress != p.MACAddress || !slices.Equal(got.FixedIPs, p.FixedIPs) {
				t.Errorf("port after restart = %+v, want %+v", got.Port, p.Port)
			}
		}
		if got := listPorts(t, ca, ports.ListOpts{NetworkID: n1.ID}); len(got) != 3 {
			t.Errorf("%d ports listed after restart, want 3", len(got))
		}
	})
	t.Run("AllocationContinues", func(t *testing.T) {
		used := map[string]bool{}
		for _, p := range before {
			used[p.FixedIPs[0].IPAddress] = true
		}
		pool := netip.MustParsePrefix("10.70.0.0/29")
		for range 2 {
			p := createPort(t, ca, rawPort{"network_id": n1.ID})
			ip := p.FixedIPs[0].IPAddress
			a := netip.MustParseAddr(ip)
			if used[ip] || !pool.Contains(a) || ip == "10.70.0.1" || ip == "10.70.0.7" {
				t.Errorf("port after restart got %s; in use before: %v", ip, used)
			}
			used[ip] = true
		}
		_, err := ports.Create(ctx, ca, rawPort{"network_id": n1.ID}).Extract()
		wantError(t, err, http.StatusConflict, "IpAddressGenerationFailure")
		_, err = ports.Create(ctx, ca, rawPort{"network_id": n1.ID, "mac_address": before[0].MACAddress, "fixed_ips": []any{}}).Extract()
		wantError(t, err, http.StatusConflict, "MacAddressInUse")

		// The one VNI left in 100-102 goes to the next tenant network.
		n3 := createNet(t, ca, rawNet{"name": "restart-3"})
		v3 := getNet(t, admin, n3.ID).SegmentationID
		id, _ := strconv.Atoi(v3)
		if v3 == vni[n1.ID] || v3 == vni[n2.ID] || id < 100 || id > 102 {
			t.Errorf("tenant network after restart got VNI %s; in use: %s, %s", v3, vni[n1.ID], vni[n2.ID])
		}
		_, err = networks.Create(ctx, ca, rawNet{"name": "restart-4"}).Extract()
		wantError(t, err, http.StatusServiceUnavailable, "NoNetworkAvailable")
		_, err = networks.Create(ctx, admin, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": 5000}).Extract()
		wantError(t, err, http.StatusConflict, "TunnelIdInUse")
		_, err = networks.Create(ctx, admin, rawNet{"provider:network_type": "flat", "provider:physical_network": "phys-restart"}).Extract()
		wantError(t, err, http.StatusConflict, "FlatNetworkInUse")

		// Deleting a tenant network returns its VNI to the pool.
		must(t, networks.Delete(ctx, ca, n2.ID).ExtractErr())
		n5 := createNet(t, ca, rawNet{"name": "restart-5"})
		if got := getNet(t, admin, n5.ID).SegmentationID; got != vni[n2.ID] {
			t.Errorf("after freeing VNI %s the next tenant network got %s", vni[n2.ID], got)
		}
	})
}

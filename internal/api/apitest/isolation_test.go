package apitest

import (
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// TestProjectCannotSeeOrTouchAnotherProjectsObjects: to project B, project
// A's network, subnet and port do not exist — get, update and delete all
// answer 404 — and B's lists never show them.
func TestProjectCannotSeeOrTouchAnotherProjectsObjects(t *testing.T) {
	t.Parallel()
	ca, cb := shared.a.net(t), shared.b.net(t)
	name := uniq("iso")
	n, sn := netWithSubnet(t, ca, name, "10.0.0.0/24")
	p := createPort(t, ca, rawPort{"network_id": n.ID, "name": name, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.10"}}})
	newName := "stolen"

	t.Run("Network", func(t *testing.T) {
		wantError(t, networks.Get(ctx, cb, n.ID).Err, http.StatusNotFound, "NetworkNotFound")
		wantError(t, networks.Update(ctx, cb, n.ID, networks.UpdateOpts{Name: &newName}).Err, http.StatusNotFound, "NetworkNotFound")
		wantError(t, networks.Delete(ctx, cb, n.ID).ExtractErr(), http.StatusNotFound, "NetworkNotFound")
	})
	t.Run("Subnet", func(t *testing.T) {
		wantError(t, subnets.Get(ctx, cb, sn.ID).Err, http.StatusNotFound, "SubnetNotFound")
		wantError(t, subnets.Update(ctx, cb, sn.ID, subnets.UpdateOpts{Name: &newName}).Err, http.StatusNotFound, "SubnetNotFound")
		wantError(t, subnets.Delete(ctx, cb, sn.ID).ExtractErr(), http.StatusNotFound, "SubnetNotFound")
	})
	t.Run("Port", func(t *testing.T) {
		wantError(t, ports.Get(ctx, cb, p.ID).Err, http.StatusNotFound, "PortNotFound")
		wantError(t, ports.Update(ctx, cb, p.ID, ports.UpdateOpts{Name: &newName}).Err, http.StatusNotFound, "PortNotFound")
		wantError(t, ports.Delete(ctx, cb, p.ID).ExtractErr(), http.StatusNotFound, "PortNotFound")
	})
	t.Run("CreateOnAnotherProjectsNetwork", func(t *testing.T) {
		_, err := ports.Create(ctx, cb, ports.CreateOpts{NetworkID: n.ID}).Extract()
		wantError(t, err, http.StatusNotFound, "NetworkNotFound")
		_, err = subnets.Create(ctx, cb, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.9.0.0/24", IPVersion: gophercloud.IPv4}).Extract()
		wantError(t, err, http.StatusNotFound, "NetworkNotFound")
	})
	t.Run("ListsNeverShowThem", func(t *testing.T) {
		for _, got := range listNets(t, cb, nil) {
			if got.ID == n.ID || got.ProjectID != shared.b.projectID && !got.Shared && !got.External {
				t.Errorf("B lists network %s of project %s", got.ID, got.ProjectID)
			}
		}
		pages, err := subnets.List(cb, nil).AllPages(ctx)
		must(t, err)
		sns, err := subnets.ExtractSubnets(pages)
		must(t, err)
		for _, s := range sns {
			if s.ID == sn.ID || s.ProjectID == shared.a.projectID {
				t.Errorf("B lists subnet %s of project %s", s.ID, s.ProjectID)
			}
		}
		for _, got := range listPorts(t, cb, nil) {
			if got.ID == p.ID || got.ProjectID == shared.a.projectID {
				t.Errorf("B lists port %s of project %s", got.ID, got.ProjectID)
			}
		}
		// Not even by naming them in a filter.
		if got := listPorts(t, cb, ports.ListOpts{ID: p.ID}); len(got) != 0 {
			t.Errorf("B finds A's port by id filter: %v", portIDs(got))
		}
	})
	t.Run("SameCIDRAndAddressInAnotherProject", func(t *testing.T) {
		bn, _ := netWithSubnet(t, cb, name, "10.0.0.0/24")
		bp := createPort(t, cb, rawPort{"network_id": bn.ID, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.10"}}})
		if bp.FixedIPs[0].IPAddress != "10.0.0.10" || bp.ProjectID != shared.b.projectID {
			t.Errorf("B's port = %+v", bp)
		}
	})
	// A's objects are unharmed by all of the above.
	if got := getNet(t, ca, n.ID); got.Name != name {
		t.Errorf("A's network is now %+v", got)
	}
	var gp port
	must(t, ports.Get(ctx, ca, p.ID).ExtractInto(&gp))
	if gp.Name != name {
		t.Errorf("A's port is now %+v", gp)
	}
}

// TestAdminSeesEverythingAndCreatesForOtherProjects: admins see every
// project's objects and may create on behalf of a project; members may not.
func TestAdminSeesEverythingAndCreatesForOtherProjects(t *testing.T) {
	t.Parallel()
	ca, cb, admin := shared.a.net(t), shared.b.net(t), shared.admin.net(t)
	an := createNet(t, ca, rawNet{"name": uniq("adm-a")})
	bn := createNet(t, cb, rawNet{"name": uniq("adm-b")})
	var seen []string
	for _, n := range listNets(t, admin, nil) {
		seen = append(seen, n.ID)
	}
	if !slices.Contains(seen, an.ID) || !slices.Contains(seen, bn.ID) {
		t.Errorf("admin list misses A's or B's network")
	}
	if got := getNet(t, admin, an.ID); got.ProjectID != shared.a.projectID {
		t.Errorf("admin get of A's network = %+v", got)
	}

	// On behalf of B, with tenant_id and with project_id.
	forB := createNet(t, admin, rawNet{"name": uniq("for-b"), "tenant_id": shared.b.projectID})
	if forB.ProjectID != shared.b.projectID || forB.TenantID != shared.b.projectID {
		t.Errorf("admin-created network for B = %+v", forB)
	}
	if got := getNet(t, cb, forB.ID); got.ID != forB.ID {
		t.Errorf("B cannot see the network created for it")
	}
	createSubnet(t, cb, forB.ID, "10.23.0.0/24")
	var pb port
	must(t, ports.Create(ctx, admin, rawPort{"network_id": forB.ID, "project_id": shared.b.projectID}).ExtractInto(&pb))
	if pb.ProjectID != shared.b.projectID {
		t.Errorf("admin-created port for B = %+v", pb)
	}
	must(t, ports.Get(ctx, cb, pb.ID).Err)

	// Members may not.
	_, err := networks.Create(ctx, ca, rawNet{"tenant_id": shared.b.projectID}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = networks.Create(ctx, ca, rawNet{"project_id": shared.b.projectID}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = ports.Create(ctx, cb, rawPort{"network_id": forB.ID, "tenant_id": shared.a.projectID}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = networks.Create(ctx, ca, rawNet{"tenant_id": shared.a.projectID, "project_id": shared.b.projectID}).Extract()
	wantError(t, err, http.StatusBadRequest, "HTTPBadRequest")
}

// TestSharedNetworkIsUsableByOtherProjects: an admin's shared network is
// visible to every project, which may put ports on it but not change it.
func TestSharedNetworkIsUsableByOtherProjects(t *testing.T) {
	t.Parallel()
	admin, ca, cb := shared.admin.net(t), shared.a.net(t), shared.b.net(t)
	n := createNet(t, admin, rawNet{"name": uniq("shared"), "shared": true})
	sn := createSubnet(t, admin, n.ID, "10.24.0.0/24")
	if !n.Shared {
		t.Fatalf("network not shared: %+v", n)
	}
	if got := listNets(t, cb, networks.ListOpts{ID: n.ID}); len(got) != 1 || !got[0].Shared {
		t.Errorf("B's list of the shared network = %+v", got)
	}
	if got, err := subnets.Get(ctx, cb, sn.ID).Extract(); err != nil || got.ID != sn.ID {
		t.Errorf("B cannot see the shared network's subnet: %v", err)
	}
	bp := createPort(t, cb, rawPort{"network_id": n.ID})
	if bp.ProjectID != shared.b.projectID || len(bp.FixedIPs) != 1 || bp.FixedIPs[0].SubnetID != sn.ID {
		t.Errorf("B's port on the shared network = %+v", bp)
	}
	// Another project does not see B's port; the admin does.
	wantError(t, ports.Get(ctx, ca, bp.ID).Err, http.StatusNotFound, "PortNotFound")
	must(t, ports.Get(ctx, admin, bp.ID).Err)

	newName := "mine"
	wantError(t, networks.Update(ctx, cb, n.ID, networks.UpdateOpts{Name: &newName}).Err, http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, networks.Delete(ctx, cb, n.ID).ExtractErr(), http.StatusForbidden, "PolicyNotAuthorized")
	_, err := subnets.Create(ctx, cb, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.25.0.0/24", IPVersion: gophercloud.IPv4}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")

	// Members may not share.
	yes := true
	_, err = networks.Create(ctx, ca, networks.CreateOpts{Name: uniq("try-share"), Shared: &yes}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	an := createNet(t, ca, rawNet{"name": uniq("try-share")})
	wantError(t, networks.Update(ctx, ca, an.ID, networks.UpdateOpts{Shared: &yes}).Err, http.StatusForbidden, "PolicyNotAuthorized")

	// Unsharing while another project has ports on it is refused.
	no := false
	wantError(t, networks.Update(ctx, admin, n.ID, networks.UpdateOpts{Shared: &no}).Err, http.StatusConflict, "InvalidSharedSetting")
}

// TestExternalNetworkIsVisibleToOtherProjects: router:external networks
// are listed for every project.
func TestExternalNetworkIsVisibleToOtherProjects(t *testing.T) {
	t.Parallel()
	admin, cb := shared.admin.net(t), shared.b.net(t)
	n := createNet(t, admin, rawNet{"name": uniq("ext"), "router:external": true})
	if !n.External {
		t.Fatalf("network not external: %+v", n)
	}
	got := listNets(t, cb, networks.ListOpts{ID: n.ID})
	if len(got) != 1 || !got[0].External {
		t.Errorf("B's list of the external network = %+v", got)
	}
	if g := getNet(t, cb, n.ID); !g.External {
		t.Errorf("B's get of the external network = %+v", g)
	}
	r := shared.raw(t, shared.b, http.MethodGet, "/v2.0/networks?router:external=true", "")
	found := false
	for _, it := range r.json(t)["networks"].([]any) {
		m := it.(map[string]any)
		if m["router:external"] != true {
			t.Errorf("router:external=true filter returned %v", m["id"])
		}
		found = found || m["id"] == n.ID
	}
	if !found {
		t.Errorf("router:external=true filter misses %s", n.ID)
	}
	_, err := networks.Create(ctx, cb, rawNet{"router:external": true}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
}

// TestAdminOnlyAttributesAreHiddenFromMembers: provider:* and the admin
// binding:* attributes are absent from members' views and forbidden in
// their requests, present for admins.
func TestAdminOnlyAttributesAreHiddenFromMembers(t *testing.T) {
	t.Parallel()
	ca := shared.a.net(t)
	n, _ := netWithSubnet(t, ca, uniq("hidden"), "10.26.0.0/24")
	p := createPort(t, ca, rawPort{"network_id": n.ID})
	providerAttrs := []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id"}
	bindingAttrs := []string{"binding:host_id", "binding:vif_type", "binding:vif_details", "binding:profile"}

	check := func(t *testing.T, m map[string]any, attrs []string, present bool) {
		t.Helper()
		for _, a := range attrs {
			if _, ok := m[a]; ok != present {
				t.Errorf("%s present=%v, want %v (%v)", a, ok, present, m[a])
			}
		}
	}
	t.Run("Member", func(t *testing.T) {
		m := shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks/"+n.ID, "").json(t)["network"].(map[string]any)
		check(t, m, providerAttrs, false)
		check(t, m, []string{"segments"}, false)
		for _, it := range shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks?id="+n.ID, "").json(t)["networks"].([]any) {
			check(t, it.(map[string]any), providerAttrs, false)
		}
		m = shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks/"+n.ID+"?fields=provider:network_type&fields=id", "").json(t)["network"].(map[string]any)
		check(t, m, providerAttrs, false)
		m = shared.raw(t, shared.a, http.MethodGet, "/v2.0/ports/"+p.ID, "").json(t)["port"].(map[string]any)
		check(t, m, bindingAttrs, false)
		check(t, m, []string{"binding:vnic_type"}, true)
		for _, it := range shared.raw(t, shared.a, http.MethodGet, "/v2.0/ports?id="+p.ID, "").json(t)["ports"].([]any) {
			check(t, it.(map[string]any), bindingAttrs, false)
		}
	})
	t.Run("Admin", func(t *testing.T) {
		m := shared.raw(t, shared.admin, http.MethodGet, "/v2.0/networks/"+n.ID, "").json(t)["network"].(map[string]any)
		check(t, m, providerAttrs, true)
		if m["provider:network_type"] != "vxlan" {
			t.Errorf("provider:network_type = %v", m["provider:network_type"])
		}
		m = shared.raw(t, shared.admin, http.MethodGet, "/v2.0/ports/"+p.ID, "").json(t)["port"].(map[string]any)
		check(t, m, bindingAttrs, true)
		var up port
		must(t, ports.Update(ctx, shared.admin.net(t), p.ID, update(rawPort{"binding:host_id": "compute-1"})).ExtractInto(&up))
		if up.HostID != "compute-1" {
			t.Errorf("admin set binding:host_id, got %+v", up.PortsBindingExt)
		}
	})
	t.Run("MemberMayNotSetThem", func(t *testing.T) {
		_, err := networks.Create(ctx, ca, rawNet{"provider:network_type": "vxlan"}).Extract()
		wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
		_, err = networks.Create(ctx, ca, rawNet{"provider:segmentation_id": 4242, "provider:network_type": "vxlan"}).Extract()
		wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
		_, err = networks.Create(ctx, ca, rawNet{"segments": []any{map[string]any{"provider:network_type": "vxlan"}}}).Extract()
		wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
		_, err = ports.Create(ctx, ca, rawPort{"network_id": n.ID, "binding:host_id": "compute-1"}).Extract()
		wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
		_, err = ports.Update(ctx, ca, p.ID, update(rawPort{"binding:profile": map[string]any{"x": 1}})).Extract()
		wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	})
}

// TestReaderCanListButNotWrite: a user with only the reader role sees its
// project's objects but may not create, change or delete any.
func TestReaderCanListButNotWrite(t *testing.T) {
	t.Parallel()
	ca, cr := shared.a.net(t), shared.reader.net(t)
	n, sn := netWithSubnet(t, ca, uniq("read"), "10.27.0.0/24")
	p := createPort(t, ca, rawPort{"network_id": n.ID})

	if got := listNets(t, cr, networks.ListOpts{ID: n.ID}); len(got) != 1 {
		t.Errorf("reader lists %d of A's networks, want 1", len(got))
	}
	if got := listPorts(t, cr, ports.ListOpts{NetworkID: n.ID}); len(got) != 1 {
		t.Errorf("reader lists %d of A's ports, want 1", len(got))
	}
	must(t, subnets.Get(ctx, cr, sn.ID).Err)

	_, err := networks.Create(ctx, cr, networks.CreateOpts{Name: "nope"}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = subnets.Create(ctx, cr, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.28.0.0/24", IPVersion: gophercloud.IPv4}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = ports.Create(ctx, cr, ports.CreateOpts{NetworkID: n.ID}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	newName := "nope"
	wantError(t, networks.Update(ctx, cr, n.ID, networks.UpdateOpts{Name: &newName}).Err, http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, subnets.Update(ctx, cr, sn.ID, subnets.UpdateOpts{Name: &newName}).Err, http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, ports.Update(ctx, cr, p.ID, ports.UpdateOpts{Name: &newName}).Err, http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, ports.Delete(ctx, cr, p.ID).ExtractErr(), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, subnets.Delete(ctx, cr, sn.ID).ExtractErr(), http.StatusForbidden, "PolicyNotAuthorized")
	wantError(t, networks.Delete(ctx, cr, n.ID).ExtractErr(), http.StatusForbidden, "PolicyNotAuthorized")
}

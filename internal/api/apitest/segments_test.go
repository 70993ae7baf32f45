package apitest

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/mtu"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/provider"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
)

// Explicit VNIs in these tests lie above the default tenant range
// (1-65535), so tenant networks created in parallel never take them.

// TestTenantNetworkIsVXLANWithMTU1450: a member's network gets a VXLAN
// segment from the tenant range and the VXLAN MTU.
func TestTenantNetworkIsVXLANWithMTU1450(t *testing.T) {
	t.Parallel()
	n := createNet(t, shared.a.net(t), rawNet{"name": uniq("tenant-seg")})
	if n.MTU != 1450 {
		t.Errorf("mtu = %d, want 1450", n.MTU)
	}
	got := getNet(t, shared.admin.net(t), n.ID)
	id, err := strconv.Atoi(got.SegmentationID)
	if got.NetworkType != "vxlan" || err != nil || id < 1 || id > 65535 || got.PhysicalNetwork != "" || got.MTU != 1450 {
		t.Errorf("admin view of a tenant network = %+v", got.NetworkProviderExt)
	}
	m := shared.raw(t, shared.admin, http.MethodGet, "/v2.0/networks/"+n.ID, "").json(t)["network"].(map[string]any)
	if v, ok := m["provider:physical_network"]; !ok || v != nil {
		t.Errorf("provider:physical_network = %v (present %v), want null", v, ok)
	}
	if _, ok := m["segments"]; ok {
		t.Errorf("single-segment network shows segments: %v", m["segments"])
	}
}

// TestAdminChoosesVNI: an admin may ask for a VNI; asking for one in use is
// a 409 TunnelIdInUse; deleting the network returns the VNI to the pool.
func TestAdminChoosesVNI(t *testing.T) {
	t.Parallel()
	vni := nextVNI()
	c := shared.admin.net(t)
	body := rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": vni}
	n := createNet(t, c, body)
	if n.NetworkType != "vxlan" || n.SegmentationID != strconv.Itoa(vni) || n.MTU != 1450 {
		t.Errorf("network with VNI %d = %+v mtu %d", vni, n.NetworkProviderExt, n.MTU)
	}
	_, err := networks.Create(ctx, c, body).Extract()
	wantError(t, err, http.StatusConflict, "TunnelIdInUse")

	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
	again := createNet(t, c, body)
	if again.SegmentationID != strconv.Itoa(vni) {
		t.Errorf("VNI %d after delete: %+v", vni, again.NetworkProviderExt)
	}
}

// TestFlatNetworkOwnsItsPhysnet: a flat network takes its whole physical
// network; a second one there is a 409 FlatNetworkInUse until the first is
// deleted.
func TestFlatNetworkOwnsItsPhysnet(t *testing.T) {
	t.Parallel()
	phys := uniq("physnet-flat")
	c := shared.admin.net(t)
	body := rawNet{"provider:network_type": "flat", "provider:physical_network": phys}
	n := createNet(t, c, body)
	if n.NetworkType != "flat" || n.PhysicalNetwork != phys || n.SegmentationID != "" || n.MTU != 1500 {
		t.Errorf("flat network = %+v mtu %d", n.NetworkProviderExt, n.MTU)
	}
	_, err := networks.Create(ctx, c, body).Extract()
	wantError(t, err, http.StatusConflict, "FlatNetworkInUse")
	// Another physnet is free.
	createNet(t, c, rawNet{"provider:network_type": "flat", "provider:physical_network": uniq("physnet-flat")})
	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
	createNet(t, c, body)
}

// TestMultiSegmentNetwork: the multi-provider "segments" form reserves
// every segment, shows them to admins as a list, and releases them all on
// delete.
func TestMultiSegmentNetwork(t *testing.T) {
	t.Parallel()
	vni, phys := nextVNI(), uniq("physnet-multi")
	c := shared.admin.net(t)
	n := createNet(t, c, rawNet{"name": uniq("multi"), "segments": []any{
		map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": vni},
		map[string]any{"provider:network_type": "flat", "provider:physical_network": phys},
	}})
	want := []provider.Segment{
		{NetworkType: "vxlan", SegmentationID: vni},
		{NetworkType: "flat", PhysicalNetwork: phys},
	}
	if len(n.Segments) != 2 || n.Segments[0] != want[0] || n.Segments[1] != want[1] || n.MTU != 1450 {
		t.Errorf("multi-segment network = %+v mtu %d", n.NetworkProviderExt, n.MTU)
	}
	m := shared.raw(t, shared.admin, http.MethodGet, "/v2.0/networks/"+n.ID, "").json(t)["network"].(map[string]any)
	if _, ok := m["provider:network_type"]; ok {
		t.Errorf("multi-segment network also shows provider:network_type: %v", m)
	}
	if got := getNet(t, c, n.ID); len(got.Segments) != 2 {
		t.Errorf("get multi-segment network = %+v", got.NetworkProviderExt)
	}

	_, err := networks.Create(ctx, c, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": vni}).Extract()
	wantError(t, err, http.StatusConflict, "TunnelIdInUse")
	_, err = networks.Create(ctx, c, rawNet{"provider:network_type": "flat", "provider:physical_network": phys}).Extract()
	wantError(t, err, http.StatusConflict, "FlatNetworkInUse")

	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
	createNet(t, c, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": vni})
	createNet(t, c, rawNet{"provider:network_type": "flat", "provider:physical_network": phys})
}

// TestMultiSegmentNetworkFromGophercloud creates a vxlan+flat network the
// way gophercloud's provider extension does, which sends
// "provider:segmentation_id": 0 for the flat segment (its Segment type
// has no omitempty). Neutron's flat type driver only refuses a segmentation
// id that is set and truthy, so 0 is accepted and ignored.
func TestMultiSegmentNetworkFromGophercloud(t *testing.T) {
	t.Parallel()
	c := shared.admin.net(t)
	segs := []provider.Segment{
		{NetworkType: "vxlan", SegmentationID: nextVNI()},
		{NetworkType: "flat", PhysicalNetwork: uniq("physnet-gophercloud")},
	}
	var n network
	must(t, networks.Create(ctx, c, provider.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: uniq("multi-gc")}, Segments: segs}).ExtractInto(&n))
	if len(n.Segments) != 2 || n.Segments[0] != segs[0] || n.Segments[1] != segs[1] {
		t.Errorf("multi-segment network = %+v", n.NetworkProviderExt)
	}
}

// TestSegmentRequestsThatConflictWithinOneRequest: one request cannot
// reserve a VNI twice, whether in one network's segments or across a bulk
// create, and nothing is created when it tries.
func TestSegmentRequestsThatConflictWithinOneRequest(t *testing.T) {
	t.Parallel()
	v1, v2 := nextVNI(), nextVNI()
	c := shared.admin.net(t)
	_, err := networks.Create(ctx, c, provider.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{}, Segments: []provider.Segment{
		{NetworkType: "vxlan", SegmentationID: v1}, {NetworkType: "vxlan", SegmentationID: v1},
	}}).Extract()
	wantError(t, err, http.StatusConflict, "TunnelIdInUse")

	name := uniq("bulk-vni")
	r := shared.raw(t, shared.admin, http.MethodPost, "/v2.0/networks", jsonBody(t, map[string]any{"networks": []any{
		map[string]any{"name": name, "provider:network_type": "vxlan", "provider:segmentation_id": v2},
		map[string]any{"name": name, "provider:network_type": "vxlan", "provider:segmentation_id": v2},
	}}))
	wantRaw(t, r, http.StatusConflict, "TunnelIdInUse")
	if got := listNets(t, c, networks.ListOpts{Name: name}); len(got) != 0 {
		t.Errorf("failed bulk create left %d networks", len(got))
	}
	// Both VNIs are still free.
	createNet(t, c, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": v1})
	createNet(t, c, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": v2})
}

// TestInvalidProviderRequests: segment requests the type drivers refuse are
// 400s with Neutron's types.
func TestInvalidProviderRequests(t *testing.T) {
	t.Parallel()
	c := shared.admin.net(t)
	for _, tc := range []struct {
		name string
		body rawNet
		typ  string
	}{
		{"FlatWithoutPhysnet", rawNet{"provider:network_type": "flat"}, "InvalidInput"},
		{"FlatWithSegmentationID", rawNet{"provider:network_type": "flat", "provider:physical_network": "physnet-x", "provider:segmentation_id": 5}, "InvalidInput"},
		{"VXLANWithPhysnet", rawNet{"provider:network_type": "vxlan", "provider:physical_network": "physnet-x"}, "InvalidInput"},
		{"VXLANTooLarge", rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": 1 << 24}, "HTTPBadRequest"},
		{"VLANUnknownPhysnet", rawNet{"provider:network_type": "vlan", "provider:physical_network": "nowhere", "provider:segmentation_id": 10}, "InvalidInput"},
		{"UnknownType", rawNet{"provider:network_type": "gre"}, "InvalidInput"},
		{"NoType", rawNet{"provider:segmentation_id": 70010}, "InvalidInput"},
		{"SegmentsAndProvider", rawNet{"provider:network_type": "vxlan", "segments": []any{map[string]any{"provider:network_type": "vxlan"}}}, "SegmentsSetInConjunctionWithProviders"},
		{"EmptySegments", rawNet{"segments": []any{}}, "InvalidInput"},
		{"SegmentWithUnknownKey", rawNet{"segments": []any{map[string]any{"provider:network_type": "vxlan", "vni": 3}}}, "HTTPBadRequest"},
		{"SegmentsNotAList", rawNet{"segments": "vxlan"}, "HTTPBadRequest"},
		{"MTUAboveVXLANMaximum", rawNet{"mtu": 1500}, "InvalidInput"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := networks.Create(ctx, c, tc.body).Extract()
			wantError(t, err, http.StatusBadRequest, tc.typ)
		})
	}
}

// TestNetworkMTU: a smaller MTU may be set on create and update; one above
// what the segments carry is refused.
func TestNetworkMTU(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	var n network
	must(t, networks.Create(ctx, c, mtu.CreateOptsExt{CreateOptsBuilder: networks.CreateOpts{Name: uniq("mtu")}, MTU: 1400}).ExtractInto(&n))
	if n.MTU != 1400 {
		t.Errorf("mtu = %d, want 1400", n.MTU)
	}
	var u network
	must(t, networks.Update(ctx, c, n.ID, mtu.UpdateOptsExt{UpdateOptsBuilder: networks.UpdateOpts{}, MTU: 1450}).ExtractInto(&u))
	if u.MTU != 1450 {
		t.Errorf("updated mtu = %d, want 1450", u.MTU)
	}
	_, err := networks.Update(ctx, c, n.ID, mtu.UpdateOptsExt{UpdateOptsBuilder: networks.UpdateOpts{}, MTU: 1451}).Extract()
	wantError(t, err, http.StatusBadRequest, "InvalidInput")
	if got := getNet(t, c, n.ID); got.MTU != 1450 {
		t.Errorf("mtu after refused update = %d, want 1450", got.MTU)
	}
}

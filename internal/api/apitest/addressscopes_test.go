package apitest

import (
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/addressscopes"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/subnetpools"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

func createScope(t testing.TB, c *gophercloud.ServiceClient, version int, shared bool) *addressscopes.AddressScope {
	t.Helper()
	a, err := addressscopes.Create(ctx, c, addressscopes.CreateOpts{Name: uniq("scope"), IPVersion: version, Shared: shared}).Extract()
	must(t, err)
	return a
}

// networkScopes reads a network's ipv4_address_scope and ipv6_address_scope.
func networkScopes(t testing.TB, c *gophercloud.ServiceClient, id string) (v4, v6 *string) {
	t.Helper()
	var n struct {
		V4 *string `json:"ipv4_address_scope"`
		V6 *string `json:"ipv6_address_scope"`
	}
	must(t, networks.Get(ctx, c, id).ExtractInto(&n))
	return n.V4, n.V6
}

// TestAddressScopeLifecycle: create, show, list, update and delete, with
// the validation and policy errors.
func TestAddressScopeLifecycle(t *testing.T) {
	t.Parallel()
	admin, a, b := shared.admin.net(t), shared.a.net(t), shared.b.net(t)
	s := createScope(t, a, 4, false)
	if s.IPVersion != 4 || s.Shared || s.ProjectID != shared.a.projectID || s.TenantID != shared.a.projectID {
		t.Errorf("created scope: %+v", s)
	}
	raw := shared.raw(t, shared.a, "GET", "/v2.0/address-scopes/"+s.ID, "").json(t)["address_scope"].(map[string]any)
	if len(raw) != 6 {
		t.Errorf("address scope view has %d attributes: %v", len(raw), raw)
	}
	pages, err := addressscopes.List(a, addressscopes.ListOpts{Name: s.Name}).AllPages(ctx)
	must(t, err)
	list, err := addressscopes.ExtractAddressScopes(pages)
	must(t, err)
	if len(list) != 1 || list[0].ID != s.ID {
		t.Errorf("filtered list: %+v", list)
	}
	_, err = addressscopes.Get(ctx, b, s.ID).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")
	for _, body := range []string{
		`{"address_scope": {"name": "x"}}`,
		`{"address_scope": {"name": "x", "ip_version": 5}}`,
		`{"address_scope": {"name": "x", "ip_version": 4, "description": "d"}}`,
	} {
		wantRaw(t, shared.raw(t, shared.a, "POST", "/v2.0/address-scopes", body), 400, "HTTPBadRequest")
	}
	_, err = addressscopes.Create(ctx, a, addressscopes.CreateOpts{Name: "x", IPVersion: 4, Shared: true}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")

	name := uniq("renamed")
	up, err := addressscopes.Update(ctx, a, s.ID, addressscopes.UpdateOpts{Name: &name}).Extract()
	must(t, err)
	if up.Name != name {
		t.Errorf("renamed scope: %+v", up)
	}
	yes, no := true, false
	_, err = addressscopes.Update(ctx, a, s.ID, addressscopes.UpdateOpts{Shared: &yes}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")
	_, err = addressscopes.Update(ctx, b, s.ID, addressscopes.UpdateOpts{Name: &name}).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")

	// An admin shares it: a wildcard policy, and no way back through the flag.
	up, err = addressscopes.Update(ctx, admin, s.ID, addressscopes.UpdateOpts{Shared: &yes}).Extract()
	must(t, err)
	if !up.Shared {
		t.Errorf("shared scope: %+v", up)
	}
	if got, err := addressscopes.Get(ctx, b, s.ID).Extract(); err != nil || !got.Shared {
		t.Errorf("B's view of a shared scope: %+v %v", got, err)
	}
	pages, err = rbacpolicies.List(admin, rbacpolicies.ListOpts{ObjectID: s.ID}).AllPages(ctx)
	must(t, err)
	pols, err := rbacpolicies.ExtractRBACPolicies(pages)
	must(t, err)
	if len(pols) != 1 || pols[0].TargetTenant != "*" || pols[0].ObjectType != "address_scope" {
		t.Fatalf("policies of a shared scope: %+v", pols)
	}
	_, err = addressscopes.Update(ctx, admin, s.ID, addressscopes.UpdateOpts{Shared: &no}).Extract()
	wantError(t, err, 400, "AddressScopeUpdateError")
	wantError(t, addressscopes.Delete(ctx, b, s.ID).ExtractErr(), 403, "PolicyNotAuthorized")
	// Deleting the wildcard policy unshares it.
	must(t, rbacpolicies.Delete(ctx, admin, pols[0].ID).ExtractErr())
	_, err = addressscopes.Get(ctx, b, s.ID).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")
	must(t, addressscopes.Delete(ctx, a, s.ID).ExtractErr())
	_, err = addressscopes.Get(ctx, a, s.ID).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")
}

// TestPoolsInAnAddressScope: pools of one scope never overlap, whether
// created there, moved there or grown there; IP versions match; networks
// show the scope of their subnets' pools and keep to one scope per IP
// version; a scope with pools cannot be deleted.
func TestPoolsInAnAddressScope(t *testing.T) {
	t.Parallel()
	a, b := shared.a.net(t), shared.b.net(t)
	s := createScope(t, a, 4, false)
	p1 := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.90.0.0/16"}, DefaultPrefixLen: 24, AddressScopeID: s.ID})
	if p1.AddressScopeID != s.ID {
		t.Errorf("pool in scope: %+v", p1)
	}
	_, err := subnetpools.Create(ctx, a, subnetpools.CreateOpts{Name: "p2", Prefixes: []string{"10.90.128.0/17"}, AddressScopeID: s.ID}).Extract()
	e := wantError(t, err, 409, "AddressScopePrefixConflict")
	if e.Message != "Failed to associate address scope: subnetpools within an address scope must have unique prefixes." {
		t.Errorf("message: %q", e.Message)
	}
	p2 := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.90.128.0/17"}, DefaultPrefixLen: 24})
	_, err = subnetpools.Update(ctx, a, p2.ID, subnetpools.UpdateOpts{AddressScopeID: &s.ID}).Extract()
	wantError(t, err, 409, "AddressScopePrefixConflict")
	p3 := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.91.0.0/16"}, DefaultPrefixLen: 24, AddressScopeID: s.ID})
	_, err = subnetpools.AddPrefixes(ctx, a, p1.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"10.91.1.0/24"}}).Extract()
	wantError(t, err, 409, "AddressScopePrefixConflict")
	_, err = subnetpools.Create(ctx, a, subnetpools.CreateOpts{Name: "v6", Prefixes: []string{"2001:db8:90::/48"}, AddressScopeID: s.ID}).Extract()
	wantError(t, err, 400, "IllegalSubnetPoolIpVersionAssociationToAddressScope")
	_, err = subnetpools.Create(ctx, b, subnetpools.CreateOpts{Name: "b", Prefixes: []string{"10.92.0.0/16"}, AddressScopeID: s.ID}).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")

	n := createNet(t, a, rawNet{"name": uniq("scoped")})
	v4, v6 := networkScopes(t, a, n.ID)
	if v4 != nil || v6 != nil {
		t.Errorf("scopes of a network without subnets: %v %v", v4, v6)
	}
	_, err = poolSubnet(a, n.ID, p1.ID, nil)
	must(t, err)
	if v4, v6 = networkScopes(t, a, n.ID); v4 == nil || *v4 != s.ID || v6 != nil {
		t.Errorf("scopes of a network with a scoped IPv4 subnet: %v %v", v4, v6)
	}
	pages, err := networks.List(a, networks.ListOpts{ID: n.ID}).AllPages(ctx)
	must(t, err)
	var listed []struct {
		V4 *string `json:"ipv4_address_scope"`
	}
	must(t, networks.ExtractNetworksInto(pages, &listed))
	if len(listed) != 1 || listed[0].V4 == nil || *listed[0].V4 != s.ID {
		t.Errorf("listed network's scope: %+v", listed)
	}
	// Another pool of the same scope may serve the same network; a pool
	// outside it may not.
	s3, err := poolSubnet(a, n.ID, p3.ID, nil)
	must(t, err)
	_, err = poolSubnet(a, n.ID, p2.ID, nil)
	wantError(t, err, 400, "NetworkAddressScopeAffinityError")
	// Moving one of the network's pools to another scope would split it.
	other := createScope(t, a, 4, false)
	_, err = subnetpools.Update(ctx, a, p1.ID, subnetpools.UpdateOpts{AddressScopeID: &other.ID}).Extract()
	wantError(t, err, 400, "NetworkAddressScopeAffinityError")
	// p2's own network may move with it.
	m := createNet(t, a, rawNet{"name": uniq("scoped")})
	_, err = poolSubnet(a, m.ID, p2.ID, nil)
	must(t, err)
	_, err = subnetpools.Update(ctx, a, p2.ID, subnetpools.UpdateOpts{AddressScopeID: &other.ID}).Extract()
	must(t, err)
	if v4, _ = networkScopes(t, a, m.ID); v4 == nil || *v4 != other.ID {
		t.Errorf("scope after the pool moved: %v", v4)
	}

	wantError(t, addressscopes.Delete(ctx, a, s.ID).ExtractErr(), 409, "AddressScopeInUse")
	must(t, subnets.Delete(ctx, a, s3.ID).ExtractErr())
	must(t, networks.Delete(ctx, a, n.ID).ExtractErr())
	must(t, subnetpools.Delete(ctx, a, p1.ID).ExtractErr())
	must(t, subnetpools.Delete(ctx, a, p3.ID).ExtractErr())
	must(t, addressscopes.Delete(ctx, a, s.ID).ExtractErr())
}

// TestSharedAddressScopes: a project shares its scope with another through
// RBAC; that project puts a pool in it, which the owner can no longer
// withdraw access from, and which only the scope's owner may change; a
// pool is shared only with projects that may use its scope.
func TestSharedAddressScopes(t *testing.T) {
	t.Parallel()
	a, b := shared.a.net(t), shared.b.net(t)
	s := createScope(t, a, 4, false)
	_, err := rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessExternal, ObjectType: "address_scope", ObjectID: s.ID, TargetTenant: shared.b.projectID}).Extract()
	wantError(t, err, 400, "InvalidActionForType")
	// A pool in a scope B cannot use cannot be shared with B.
	ap := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.93.0.0/16"}, DefaultPrefixLen: 24, AddressScopeID: s.ID})
	_, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: ap.ID, TargetTenant: shared.b.projectID}).Extract()
	wantError(t, err, 400, "InvalidInput")

	pol, err := rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "address_scope", ObjectID: s.ID, TargetTenant: shared.b.projectID}).Extract()
	must(t, err)
	if got, err := addressscopes.Get(ctx, b, s.ID).Extract(); err != nil || !got.Shared {
		t.Fatalf("B's view of a scope shared with it: %+v %v", got, err)
	}
	// Now it can.
	appol, err := rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: ap.ID, TargetTenant: shared.b.projectID}).Extract()
	must(t, err)
	bp := createPool(t, b, subnetpools.CreateOpts{Prefixes: []string{"10.94.0.0/16"}, DefaultPrefixLen: 24, AddressScopeID: s.ID})
	_, err = subnetpools.Create(ctx, b, subnetpools.CreateOpts{Name: "overlap", Prefixes: []string{"10.93.128.0/24"}, AddressScopeID: s.ID}).Extract()
	wantError(t, err, 409, "AddressScopePrefixConflict")
	_, err = subnetpools.Update(ctx, b, bp.ID, subnetpools.UpdateOpts{Name: "renamed"}).Extract()
	wantError(t, err, 400, "IllegalSubnetPoolUpdate")
	wantError(t, rbacpolicies.Delete(ctx, a, pol.ID).ExtractErr(), 409, "RbacPolicyInUse")
	// B's subnets from A's pool and from its own pool share the scope.
	n := createNet(t, b, rawNet{"name": uniq("shared-scope")})
	_, err = poolSubnet(b, n.ID, ap.ID, nil)
	must(t, err)
	_, err = poolSubnet(b, n.ID, bp.ID, nil)
	must(t, err)
	if v4, _ := networkScopes(t, b, n.ID); v4 == nil || *v4 != s.ID {
		t.Errorf("B's network scope: %v", v4)
	}
	must(t, networks.Delete(ctx, b, n.ID).ExtractErr())
	must(t, rbacpolicies.Delete(ctx, a, appol.ID).ExtractErr())
	must(t, subnetpools.Delete(ctx, b, bp.ID).ExtractErr())
	must(t, rbacpolicies.Delete(ctx, a, pol.ID).ExtractErr())
	_, err = addressscopes.Get(ctx, b, s.ID).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")
	_, err = subnetpools.Create(ctx, b, subnetpools.CreateOpts{Name: "late", Prefixes: []string{"10.95.0.0/16"}, AddressScopeID: s.ID}).Extract()
	wantError(t, err, 404, "AddressScopeNotFound")
}

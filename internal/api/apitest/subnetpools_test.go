package apitest

import (
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/subnetpools"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/vland/vland/internal/service"
)

// createPool creates a subnet pool and returns it.
func createPool(t testing.TB, c *gophercloud.ServiceClient, opts subnetpools.CreateOpts) *subnetpools.SubnetPool {
	t.Helper()
	if opts.Name == "" {
		opts.Name = uniq("pool")
	}
	p, err := subnetpools.Create(ctx, c, opts).Extract()
	must(t, err)
	return p
}

// poolSubnet creates a subnet on netID from pool poolID; body adds or
// overrides attributes.
func poolSubnet(c *gophercloud.ServiceClient, netID, poolID string, body rawSubnet) (*subnets.Subnet, error) {
	b := rawSubnet{"network_id": netID, "ip_version": 4}
	if poolID != "" {
		b["subnetpool_id"] = poolID
	}
	for k, v := range body {
		b[k] = v
	}
	return subnets.Create(ctx, c, b).Extract()
}

// TestSubnetPoolLifecycle: create with Neutron's defaults (IPv4 and IPv6),
// show, filter, update, the validation errors, and delete.
func TestSubnetPoolLifecycle(t *testing.T) {
	t.Parallel()
	a, b := shared.a.net(t), shared.b.net(t)
	name := uniq("lifecycle")
	p := createPool(t, a, subnetpools.CreateOpts{Name: name, Prefixes: []string{"10.70.1.0/24", "10.70.0.0/24", "10.70.0.128/25"}, Description: "d"})
	if p.IPversion != 4 || !slices.Equal(p.Prefixes, []string{"10.70.0.0/23"}) || p.MinPrefixLen != 8 || p.MaxPrefixLen != 32 ||
		p.DefaultPrefixLen != 8 || p.DefaultQuota != 0 || p.IsDefault || p.Shared || p.AddressScopeID != "" ||
		p.ProjectID != shared.a.projectID || p.Description != "d" || p.RevisionNumber != 0 {
		t.Errorf("created pool: %+v", p)
	}
	raw := shared.raw(t, shared.a, "GET", "/v2.0/subnetpools/"+p.ID, "").json(t)["subnetpool"].(map[string]any)
	if raw["default_prefixlen"] != "8" || raw["default_quota"] != nil || raw["address_scope_id"] != nil {
		t.Errorf("raw view: %v", raw)
	}
	v6 := createPool(t, a, subnetpools.CreateOpts{Name: name, Prefixes: []string{"2001:db8:70::/48"}, DefaultQuota: 8})
	if v6.IPversion != 6 || v6.MinPrefixLen != 64 || v6.MaxPrefixLen != 128 || v6.DefaultPrefixLen != 64 || v6.DefaultQuota != 8 {
		t.Errorf("IPv6 pool: %+v", v6)
	}
	pages, err := subnetpools.List(a, subnetpools.ListOpts{Name: name, IPVersion: 6}).AllPages(ctx)
	must(t, err)
	list, err := subnetpools.ExtractSubnetPools(pages)
	must(t, err)
	if len(list) != 1 || list[0].ID != v6.ID {
		t.Errorf("filtered list: %+v", list)
	}
	if _, err := subnetpools.Get(ctx, b, p.ID).Extract(); err == nil {
		t.Error("B sees A's unshared pool")
	}
	wantError(t, subnetpools.Delete(ctx, b, p.ID).ExtractErr(), 404, "SubnetPoolNotFound")

	desc := "updated"
	up, err := subnetpools.Update(ctx, a, p.ID, subnetpools.UpdateOpts{
		Name: name + "-x", Description: &desc, Prefixes: []string{"10.70.0.0/23", "10.70.4.0/24"},
		MinPrefixLen: 16, DefaultPrefixLen: 26, MaxPrefixLen: 28,
	}).Extract()
	must(t, err)
	if up.Name != name+"-x" || !slices.Equal(up.Prefixes, []string{"10.70.0.0/23", "10.70.4.0/24"}) ||
		up.MinPrefixLen != 16 || up.DefaultPrefixLen != 26 || up.MaxPrefixLen != 28 || up.RevisionNumber != 1 {
		t.Errorf("updated pool: %+v", up)
	}
	for _, tc := range []struct {
		name string
		opts subnetpools.UpdateOptsBuilder
		typ  string
	}{
		{"DropPrefix", subnetpools.UpdateOpts{Prefixes: []string{"10.70.0.0/23"}}, "IllegalSubnetPoolPrefixUpdate"},
		{"MixVersions", subnetpools.UpdateOpts{Prefixes: []string{"10.70.0.0/23", "10.70.4.0/24", "2001:db8::/32"}}, "PrefixVersionMismatch"},
		{"MinAboveDefault", subnetpools.UpdateOpts{MinPrefixLen: 27}, "IllegalSubnetPoolPrefixBounds"},
	} {
		_, err := subnetpools.Update(ctx, a, p.ID, tc.opts).Extract()
		wantError(t, err, 400, tc.typ)
	}
	_, err = subnetpools.Update(ctx, b, p.ID, subnetpools.UpdateOpts{Name: "b"}).Extract()
	wantError(t, err, 404, "SubnetPoolNotFound")

	for _, tc := range []struct {
		name string
		body string
		typ  string
	}{
		{"NoName", `{"subnetpool": {"prefixes": ["10.71.0.0/16"]}}`, "HTTPBadRequest"},
		{"BlankName", `{"subnetpool": {"name": "  ", "prefixes": ["10.71.0.0/16"]}}`, "HTTPBadRequest"},
		{"NoPrefixes", `{"subnetpool": {"name": "x"}}`, "HTTPBadRequest"},
		{"EmptyPrefixes", `{"subnetpool": {"name": "x", "prefixes": []}}`, "EmptySubnetPoolPrefixList"},
		{"MixedVersions", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16", "2001:db8::/32"]}}`, "PrefixVersionMismatch"},
		{"MinAboveMax", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "min_prefixlen": 28, "max_prefixlen": 24}}`, "IllegalSubnetPoolPrefixBounds"},
		{"MaxTooLong", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "max_prefixlen": 33}}`, "IllegalSubnetPoolPrefixBounds"},
		{"DefaultBelowMin", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "default_prefixlen": 4}}`, "IllegalSubnetPoolPrefixBounds"},
		{"NegativeQuota", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "default_quota": -1}}`, "HTTPBadRequest"},
		{"NotACIDR", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.1/16"]}}`, "HTTPBadRequest"},
		{"IPVersionGiven", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "ip_version": 4}}`, "HTTPBadRequest"},
		{"UnknownScope", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "address_scope_id": "8d3fbb57-4c2d-4a52-9d8a-2a1d0f0a0a0a"}}`, "AddressScopeNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := shared.raw(t, shared.a, "POST", "/v2.0/subnetpools", tc.body)
			status := http.StatusBadRequest
			if tc.typ == "AddressScopeNotFound" {
				status = http.StatusNotFound
			}
			wantRaw(t, r, status, tc.typ)
		})
	}
	// Members may not share pools or make them default.
	wantRaw(t, shared.raw(t, shared.a, "POST", "/v2.0/subnetpools", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "shared": true}}`), 403, "PolicyNotAuthorized")
	wantRaw(t, shared.raw(t, shared.a, "POST", "/v2.0/subnetpools", `{"subnetpool": {"name": "x", "prefixes": ["10.71.0.0/16"], "is_default": true}}`), 403, "PolicyNotAuthorized")
	wantRaw(t, shared.raw(t, shared.a, "PUT", "/v2.0/subnetpools/"+p.ID, `{"subnetpool": {"is_default": false}}`), 403, "PolicyNotAuthorized")
	wantRaw(t, shared.raw(t, shared.a, "PUT", "/v2.0/subnetpools/"+p.ID, `{"subnetpool": {"shared": true}}`), 400, "HTTPBadRequest")

	// Tags work on pools as on any standard resource.
	r := shared.raw(t, shared.a, "PUT", "/v2.0/subnetpools/"+p.ID+"/tags", `{"tags": ["blue"]}`)
	if r.status != 200 {
		t.Fatalf("tags: %d %s", r.status, r.body)
	}
	pages, err = subnetpools.List(a, subnetpools.ListOpts{Tags: "blue"}).AllPages(ctx)
	must(t, err)
	if list, _ = subnetpools.ExtractSubnetPools(pages); len(list) != 1 || list[0].ID != p.ID {
		t.Errorf("tag filter: %+v", list)
	}

	must(t, subnetpools.Delete(ctx, a, p.ID).ExtractErr())
	must(t, subnetpools.Delete(ctx, a, v6.ID).ExtractErr())
	_, err = subnetpools.Get(ctx, a, p.ID).Extract()
	wantError(t, err, 404, "SubnetPoolNotFound")
}

// TestSubnetsFromAPool: subnets by prefixlen, by the pool's default, by an
// explicit cidr inside the pool; overlap refusal, bounds, exhaustion and
// the request errors; deleting a subnet frees its space; a pool with
// subnets cannot be deleted.
func TestSubnetsFromAPool(t *testing.T) {
	t.Parallel()
	a := shared.a.net(t)
	p := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.72.0.0/24"}, MinPrefixLen: 24, DefaultPrefixLen: 26, MaxPrefixLen: 28})
	nets := make([]network, 10)
	for i := range nets {
		nets[i] = createNet(t, a, rawNet{"name": uniq("from-pool")})
	}
	s1, err := poolSubnet(a, nets[0].ID, p.ID, rawSubnet{"prefixlen": 28})
	must(t, err)
	if s1.CIDR != "10.72.0.0/28" || s1.SubnetPoolID != p.ID || s1.GatewayIP != "10.72.0.1" ||
		len(s1.AllocationPools) != 1 || s1.AllocationPools[0].Start != "10.72.0.2" || s1.AllocationPools[0].End != "10.72.0.14" {
		t.Errorf("subnet by prefixlen: %+v", s1)
	}
	s2, err := poolSubnet(a, nets[1].ID, p.ID, nil)
	must(t, err)
	if s2.CIDR != "10.72.0.64/26" {
		t.Errorf("subnet by default prefixlen: %s", s2.CIDR)
	}
	s3, err := poolSubnet(a, nets[2].ID, p.ID, rawSubnet{"cidr": "10.72.0.128/27", "gateway_ip": "10.72.0.158"})
	must(t, err)
	if s3.CIDR != "10.72.0.128/27" || s3.GatewayIP != "10.72.0.158" || s3.SubnetPoolID != p.ID {
		t.Errorf("subnet by cidr: %+v", s3)
	}
	s4, err := poolSubnet(a, nets[3].ID, p.ID, rawSubnet{"gateway_ip": "10.72.0.193", "prefixlen": 27})
	must(t, err)
	if s4.CIDR != "10.72.0.192/27" || s4.GatewayIP != "10.72.0.193" {
		t.Errorf("subnet around a gateway: %+v", s4)
	}
	for _, tc := range []struct {
		name   string
		pool   string
		body   rawSubnet
		status int
		typ    string
	}{
		{"Overlap", p.ID, rawSubnet{"cidr": "10.72.0.128/28"}, 409, "SubnetAllocationError"},
		{"OutsidePool", p.ID, rawSubnet{"cidr": "10.73.0.0/28"}, 409, "SubnetAllocationError"},
		{"TooLong", p.ID, rawSubnet{"prefixlen": 29}, 400, "MaxPrefixSubnetAllocationError"},
		{"TooShort", p.ID, rawSubnet{"prefixlen": 23}, 400, "MinPrefixSubnetAllocationError"},
		{"NoRoom", p.ID, rawSubnet{"prefixlen": 26}, 409, "SubnetAllocationError"},
		{"CIDRAndPrefixlen", p.ID, rawSubnet{"cidr": "10.72.0.16/28", "prefixlen": 28}, 400, "BadRequest"},
		{"PoolsWithoutCIDR", p.ID, rawSubnet{"allocation_pools": []any{map[string]any{"start": "10.72.0.20", "end": "10.72.0.21"}}}, 400, "BadRequest"},
		{"WrongVersion", p.ID, rawSubnet{"ip_version": 6}, 400, "BadRequest"},
		{"UnknownPool", "8d3fbb57-4c2d-4a52-9d8a-2a1d0f0a0a0a", nil, 404, "SubnetPoolNotFound"},
		{"NoPoolNoCIDR", "", nil, 400, "BadRequest"},
		{"PoolAndDefault", p.ID, rawSubnet{"use_default_subnetpool": true}, 400, "BadRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := poolSubnet(a, nets[4].ID, tc.pool, tc.body)
			wantError(t, err, tc.status, tc.typ)
		})
	}
	// The rest of the pool, smallest blocks first: 10.72.0.16/28, then the
	// /27s 10.72.0.32, .160 and .224.
	var rest []string
	for i, bits := range []int{28, 27, 27, 27} {
		s, err := poolSubnet(a, nets[4+i].ID, p.ID, rawSubnet{"prefixlen": bits})
		must(t, err)
		rest = append(rest, s.CIDR)
	}
	if !slices.Equal(rest, []string{"10.72.0.16/28", "10.72.0.32/27", "10.72.0.160/27", "10.72.0.224/27"}) {
		t.Errorf("filling the pool: %v", rest)
	}
	_, err = poolSubnet(a, nets[8].ID, p.ID, rawSubnet{"prefixlen": 28})
	e := wantError(t, err, 409, "SubnetAllocationError")
	if e.Message != "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /28." {
		t.Errorf("exhaustion message: %q", e.Message)
	}
	wantError(t, subnetpools.Delete(ctx, a, p.ID).ExtractErr(), 400, "SubnetPoolDeleteError")

	// Deleting a subnet, or its network, frees its space.
	must(t, subnets.Delete(ctx, a, s2.ID).ExtractErr())
	must(t, networks.Delete(ctx, a, nets[2].ID).ExtractErr())
	again, err := poolSubnet(a, nets[8].ID, p.ID, rawSubnet{"prefixlen": 26})
	must(t, err)
	if again.CIDR != "10.72.0.64/26" {
		t.Errorf("reallocated %s, want the freed 10.72.0.64/26", again.CIDR)
	}
	_, err = poolSubnet(a, nets[9].ID, p.ID, rawSubnet{"cidr": "10.72.0.128/27"})
	must(t, err)
	for i, n := range nets {
		if i != 2 {
			must(t, networks.Delete(ctx, a, n.ID).ExtractErr())
		}
	}
	must(t, subnetpools.Delete(ctx, a, p.ID).ExtractErr())
}

// TestNetworkSubnetPoolAffinity: the subnets of one IP version on a network
// come from one pool (or none).
func TestNetworkSubnetPoolAffinity(t *testing.T) {
	t.Parallel()
	a := shared.a.net(t)
	p := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.74.0.0/16"}, DefaultPrefixLen: 24})
	q := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.75.0.0/16"}, DefaultPrefixLen: 24})
	v6 := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"2001:db8:74::/48"}})
	n := createNet(t, a, rawNet{"name": uniq("affinity")})
	_, err := poolSubnet(a, n.ID, p.ID, nil)
	must(t, err)
	_, err = poolSubnet(a, n.ID, p.ID, nil)
	must(t, err)
	_, err = poolSubnet(a, n.ID, q.ID, nil)
	wantError(t, err, 400, "NetworkSubnetPoolAffinityError")
	_, err = poolSubnet(a, n.ID, "", rawSubnet{"cidr": "10.76.0.0/24"})
	wantError(t, err, 400, "NetworkSubnetPoolAffinityError")
	// Another IP version may come from another pool.
	_, err = poolSubnet(a, n.ID, v6.ID, rawSubnet{"ip_version": 6})
	must(t, err)
	// A network with a plain subnet takes no pool subnet of that version.
	m, _ := netWithSubnet(t, a, uniq("affinity"), "10.77.0.0/24")
	_, err = poolSubnet(a, m.ID, p.ID, nil)
	wantError(t, err, 400, "NetworkSubnetPoolAffinityError")
}

// TestSubnetPoolPrefixOps: add_prefixes merges and compacts, remove_prefixes
// takes out free space only, and both are the owner's.
func TestSubnetPoolPrefixOps(t *testing.T) {
	t.Parallel()
	a, b := shared.a.net(t), shared.b.net(t)
	p := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.78.0.0/24"}, DefaultPrefixLen: 26})
	got, err := subnetpools.AddPrefixes(ctx, a, p.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"10.78.1.0/24", "10.78.4.0/24"}}).Extract()
	must(t, err)
	if !slices.Equal(got, []string{"10.78.0.0/23", "10.78.4.0/24"}) {
		t.Errorf("after add: %v", got)
	}
	sp, err := subnetpools.Get(ctx, a, p.ID).Extract()
	must(t, err)
	if !slices.Equal(sp.Prefixes, got) || sp.RevisionNumber != 1 {
		t.Errorf("pool after add: %+v", sp)
	}
	n := createNet(t, a, rawNet{"name": uniq("prefix-ops")})
	s, err := poolSubnet(a, n.ID, p.ID, rawSubnet{"cidr": "10.78.1.0/26"})
	must(t, err)
	_, err = subnetpools.RemovePrefixes(ctx, a, p.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"10.78.1.0/24"}}).Extract()
	wantError(t, err, 400, "IllegalSubnetPoolPrefixUpdate")
	got, err = subnetpools.RemovePrefixes(ctx, a, p.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"10.78.0.0/24", "10.78.4.128/25"}}).Extract()
	must(t, err)
	if !slices.Equal(got, []string{"10.78.1.0/24", "10.78.4.0/25"}) {
		t.Errorf("after remove: %v", got)
	}
	// Removing what is not there changes nothing.
	got, err = subnetpools.RemovePrefixes(ctx, a, p.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"192.168.0.0/16"}}).Extract()
	must(t, err)
	if !slices.Equal(got, []string{"10.78.1.0/24", "10.78.4.0/25"}) {
		t.Errorf("after a no-op remove: %v", got)
	}
	// The removed space is no longer allocatable.
	_, err = poolSubnet(a, createNet(t, a, rawNet{"name": uniq("prefix-ops")}).ID, p.ID, rawSubnet{"cidr": "10.78.0.0/26"})
	wantError(t, err, 409, "SubnetAllocationError")
	_, err = subnetpools.AddPrefixes(ctx, b, p.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"10.78.8.0/24"}}).Extract()
	wantError(t, err, 404, "SubnetPoolNotFound")
	for _, body := range []string{`{}`, `{"prefixes": []}`, `{"prefixes": "10.0.0.0/8"}`, `{"prefixes": ["banana"]}`} {
		wantRaw(t, shared.raw(t, shared.a, "PUT", "/v2.0/subnetpools/"+p.ID+"/add_prefixes", body), 400, "HTTPBadRequest")
	}
	wantRaw(t, shared.raw(t, shared.a, "POST", "/v2.0/subnetpools/"+p.ID+"/add_prefixes", `{"prefixes": ["10.78.8.0/24"]}`), 405, "HTTPMethodNotAllowed")
	_, err = subnetpools.AddPrefixes(ctx, a, p.ID, subnetpools.PrefixesOpsOpts{Prefixes: []string{"2001:db8::/32"}}).Extract()
	wantError(t, err, 400, "PrefixVersionMismatch")
	must(t, subnets.Delete(ctx, a, s.ID).ExtractErr())
}

// TestSubnetPoolDefaultQuota: default_quota bounds the addresses each
// project takes from a shared pool.
func TestSubnetPoolDefaultQuota(t *testing.T) {
	t.Parallel()
	admin := shared.admin.net(t)
	p := createPool(t, admin, subnetpools.CreateOpts{Prefixes: []string{"10.79.0.0/16"}, DefaultPrefixLen: 26, DefaultQuota: 96, Shared: true})
	for _, u := range []*user{shared.a, shared.b} {
		c := u.net(t)
		net1 := createNet(t, c, rawNet{"name": uniq("quota")})
		net2 := createNet(t, c, rawNet{"name": uniq("quota")})
		_, err := poolSubnet(c, net1.ID, p.ID, nil) // 64 addresses
		must(t, err)
		_, err = poolSubnet(c, net2.ID, p.ID, nil) // 64 more: over 96
		wantError(t, err, 409, "SubnetPoolQuotaExceeded")
		_, err = poolSubnet(c, net2.ID, p.ID, rawSubnet{"prefixlen": 27}) // 32 more: exactly 96
		must(t, err)
		_, err = poolSubnet(c, createNet(t, c, rawNet{"name": uniq("quota")}).ID, p.ID, rawSubnet{"cidr": "10.79.200.0/32"})
		wantError(t, err, 409, "SubnetPoolQuotaExceeded")
	}
}

// TestSharedSubnetPools: an admin's shared pool is everyone's; a member
// shares its pool with one project through RBAC, which then allocates from
// it; the policy cannot go while that project has subnets from the pool.
func TestSharedSubnetPools(t *testing.T) {
	t.Parallel()
	admin, a, b := shared.admin.net(t), shared.a.net(t), shared.b.net(t)
	pub := createPool(t, admin, subnetpools.CreateOpts{Prefixes: []string{"10.80.0.0/16"}, DefaultPrefixLen: 24, Shared: true})
	seen, err := subnetpools.Get(ctx, b, pub.ID).Extract()
	must(t, err)
	if !seen.Shared {
		t.Error("a shared pool does not show as shared")
	}
	_, err = poolSubnet(b, createNet(t, b, rawNet{"name": uniq("pub")}).ID, pub.ID, nil)
	must(t, err)
	wantError(t, subnetpools.Delete(ctx, b, pub.ID).ExtractErr(), 403, "PolicyNotAuthorized")
	pages, err := rbacpolicies.List(admin, rbacpolicies.ListOpts{ObjectID: pub.ID}).AllPages(ctx)
	must(t, err)
	pols, err := rbacpolicies.ExtractRBACPolicies(pages)
	must(t, err)
	if len(pols) != 1 || pols[0].TargetTenant != "*" || pols[0].ObjectType != "subnetpool" {
		t.Fatalf("policies of a shared pool: %+v", pols)
	}
	// B depends on the wildcard policy now.
	wantError(t, rbacpolicies.Delete(ctx, admin, pols[0].ID).ExtractErr(), 409, "RbacPolicyInUse")

	p := createPool(t, a, subnetpools.CreateOpts{Prefixes: []string{"10.81.0.0/16"}, DefaultPrefixLen: 24})
	_, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessExternal, ObjectType: "subnetpool", ObjectID: p.ID, TargetTenant: shared.b.projectID}).Extract()
	wantError(t, err, 400, "InvalidActionForType")
	_, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: p.ID, TargetTenant: "*"}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")
	_, err = rbacpolicies.Create(ctx, b, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: p.ID, TargetTenant: shared.b.projectID}).Extract()
	wantError(t, err, 404, "SubnetPoolNotFound")
	pol, err := rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: p.ID, TargetTenant: shared.b.projectID}).Extract()
	must(t, err)
	_, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: p.ID, TargetTenant: shared.b.projectID}).Extract()
	wantError(t, err, 409, "DuplicateRbacPolicy")
	if sp, err := subnetpools.Get(ctx, b, p.ID).Extract(); err != nil || !sp.Shared {
		t.Fatalf("B's view of a pool shared with it: %+v %v", sp, err)
	}
	if sp, _ := subnetpools.Get(ctx, a, p.ID).Extract(); sp.Shared {
		t.Error("the owner sees its pool as shared with only a targeted policy")
	}
	yes := true
	pages, err = subnetpools.List(b, subnetpools.ListOpts{ID: p.ID, Shared: &yes}).AllPages(ctx)
	must(t, err)
	if list, _ := subnetpools.ExtractSubnetPools(pages); len(list) != 1 {
		t.Errorf("shared=true filter for B: %+v", list)
	}
	s, err := poolSubnet(b, createNet(t, b, rawNet{"name": uniq("rbac-pool")}).ID, p.ID, nil)
	must(t, err)
	wantError(t, rbacpolicies.Delete(ctx, a, pol.ID).ExtractErr(), 409, "RbacPolicyInUse")
	_, err = subnetpools.Update(ctx, b, p.ID, subnetpools.UpdateOpts{Name: "mine"}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")
	must(t, subnets.Delete(ctx, b, s.ID).ExtractErr())
	must(t, rbacpolicies.Delete(ctx, a, pol.ID).ExtractErr())
	_, err = subnetpools.Get(ctx, b, p.ID).Extract()
	wantError(t, err, 404, "SubnetPoolNotFound")
	_, err = poolSubnet(b, createNet(t, b, rawNet{"name": uniq("rbac-pool")}).ID, p.ID, nil)
	wantError(t, err, 404, "SubnetPoolNotFound")
	// Deleting a pool takes its policies with it.
	pol, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{Action: rbacpolicies.ActionAccessShared, ObjectType: "subnetpool", ObjectID: p.ID, TargetTenant: shared.b.projectID}).Extract()
	must(t, err)
	must(t, subnetpools.Delete(ctx, a, p.ID).ExtractErr())
	_, err = rbacpolicies.Get(ctx, a, pol.ID).Extract()
	wantError(t, err, 404, "RbacPolicyNotFound")
}

// TestDefaultSubnetPools runs on a server of its own: one default pool per
// IP version, used by subnets that ask for use_default_subnetpool.
func TestDefaultSubnetPools(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), service.DefaultConfig())
	// Closed before TempDir goes: etcd's file purger dies fatally on a
	// removed data directory.
	t.Cleanup(func() { e.srv.Close() })
	admin, a := e.admin.net(t), e.a.net(t)
	n := createNet(t, a, rawNet{"name": "default-pool"})
	_, err := poolSubnet(a, n.ID, "", rawSubnet{"use_default_subnetpool": true})
	e1 := wantError(t, err, 400, "BadRequest")
	if e1.Message != "Bad subnets request: No default subnetpool found for IPv4." {
		t.Errorf("message: %q", e1.Message)
	}
	def := createPool(t, admin, subnetpools.CreateOpts{Prefixes: []string{"10.82.0.0/16"}, DefaultPrefixLen: 24, IsDefault: true, Shared: true})
	_, err = subnetpools.Create(ctx, admin, subnetpools.CreateOpts{Name: "second", Prefixes: []string{"10.83.0.0/16"}, IsDefault: true}).Extract()
	wantError(t, err, 400, "InvalidInput")
	other := createPool(t, admin, subnetpools.CreateOpts{Prefixes: []string{"10.83.0.0/16"}, DefaultPrefixLen: 24})
	yes := true
	_, err = subnetpools.Update(ctx, admin, other.ID, subnetpools.UpdateOpts{IsDefault: &yes}).Extract()
	wantError(t, err, 400, "InvalidInput")

	s, err := poolSubnet(a, n.ID, "", rawSubnet{"use_default_subnetpool": true, "prefixlen": 26})
	must(t, err)
	if s.SubnetPoolID != def.ID || s.CIDR != "10.82.0.0/26" {
		t.Errorf("subnet from the default pool: %+v", s)
	}
	r := e.raw(t, e.a, "GET", "/v2.0/subnets/"+s.ID, "").json(t)["subnet"].(map[string]any)
	if _, shown := r["use_default_subnetpool"]; shown {
		t.Error("use_default_subnetpool is shown")
	}
	_, err = poolSubnet(a, createNet(t, a, rawNet{"name": "v6"}).ID, "", rawSubnet{"use_default_subnetpool": true, "ip_version": 6})
	wantError(t, err, 400, "BadRequest")

	// Moving the default: unset, then set on the other pool.
	no := false
	_, err = subnetpools.Update(ctx, admin, def.ID, subnetpools.UpdateOpts{IsDefault: &no}).Extract()
	must(t, err)
	up, err := subnetpools.Update(ctx, admin, other.ID, subnetpools.UpdateOpts{IsDefault: &yes}).Extract()
	must(t, err)
	if !up.IsDefault {
		t.Errorf("pool made default: %+v", up)
	}
	// A default pool the member cannot see is no default for it.
	_, err = poolSubnet(a, createNet(t, a, rawNet{"name": "hidden"}).ID, "", rawSubnet{"use_default_subnetpool": true})
	wantError(t, err, 400, "BadRequest")
	s, err = poolSubnet(admin, createNet(t, admin, rawNet{"name": "admin"}).ID, "", rawSubnet{"use_default_subnetpool": true})
	must(t, err)
	if s.SubnetPoolID != other.ID {
		t.Errorf("admin's default pool subnet: %+v", s)
	}
	must(t, subnets.Delete(ctx, admin, s.ID).ExtractErr())
	must(t, subnetpools.Delete(ctx, admin, other.ID).ExtractErr())
	// Its default key went with it.
	_, err = subnetpools.Create(ctx, admin, subnetpools.CreateOpts{Name: "third", Prefixes: []string{"10.84.0.0/16"}, IsDefault: true}).Extract()
	must(t, err)
}

// TestSubnetPoolInputNeverFails throws values of every JSON shape at every
// subnet pool and address scope attribute, and at subnets' pool attributes:
// never a 5xx, always a NeutronError (the checking transport enforces it).
func TestSubnetPoolInputNeverFails(t *testing.T) {
	t.Parallel()
	admin := shared.admin.net(t)
	p := createPool(t, admin, subnetpools.CreateOpts{Prefixes: []string{"10.85.0.0/16"}, DefaultPrefixLen: 24})
	scope := shared.raw(t, shared.admin, "POST", "/v2.0/address-scopes", `{"address_scope": {"name": "fuzz", "ip_version": 4}}`).json(t)["address_scope"].(map[string]any)["id"].(string)
	n := createNet(t, admin, rawNet{"name": uniq("pool-fuzz")})
	cases := []struct {
		coll, singular, id string
		base               map[string]any
		attrs              []string
	}{
		{"subnetpools", "subnetpool", p.ID, map[string]any{"name": "f", "prefixes": []any{"10.86.0.0/16"}},
			[]string{"name", "prefixes", "default_quota", "ip_version", "default_prefixlen", "min_prefixlen", "max_prefixlen", "is_default", "shared", "address_scope_id", "tenant_id"}},
		{"address-scopes", "address_scope", scope, map[string]any{"name": "f", "ip_version": 4},
			[]string{"name", "ip_version", "shared", "project_id"}},
		{"subnets", "subnet", "", map[string]any{"network_id": n.ID, "ip_version": 4, "subnetpool_id": p.ID},
			[]string{"subnetpool_id", "prefixlen", "use_default_subnetpool", "cidr", "gateway_ip"}},
	}
	for _, who := range []*user{shared.admin, shared.a} {
		for _, tc := range cases {
			t.Run(who.name+"/"+tc.coll, func(t *testing.T) {
				t.Parallel()
				for _, a := range tc.attrs {
					for _, v := range weirdValues {
						body := map[string]any{}
						for k, bv := range tc.base {
							body[k] = bv
						}
						body[a] = v
						r := shared.raw(t, who, "POST", "/v2.0/"+tc.coll, jsonBody(t, map[string]any{tc.singular: body}))
						if r.status == http.StatusCreated {
							id, _ := r.json(t)[tc.singular].(map[string]any)["id"].(string)
							shared.raw(t, shared.admin, "DELETE", "/v2.0/"+tc.coll+"/"+id, "")
						}
						if tc.id != "" {
							shared.raw(t, who, "PUT", "/v2.0/"+tc.coll+"/"+tc.id, jsonBody(t, map[string]any{tc.singular: map[string]any{a: v}}))
						}
					}
				}
				if tc.coll == "subnetpools" {
					for _, v := range weirdValues {
						shared.raw(t, who, "PUT", "/v2.0/subnetpools/"+tc.id+"/add_prefixes", jsonBody(t, map[string]any{"prefixes": v}))
						shared.raw(t, who, "PUT", "/v2.0/subnetpools/"+tc.id+"/remove_prefixes", jsonBody(t, map[string]any{"prefixes": v}))
					}
				}
			})
		}
	}
}

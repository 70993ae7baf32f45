package apitest

import (
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/rbacpolicies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// TestRBACSharesANetworkWithOneProject: project A shares its network with
// project B only; B sees it (as shared) and creates a port on it; the
// policy cannot be removed while B's port is there; afterwards B loses it.
func TestRBACSharesANetworkWithOneProject(t *testing.T) {
	t.Parallel()
	e := shared
	a, b := e.a.net(t), e.b.net(t)
	n, _ := netWithSubnet(t, a, uniq("rbac"), "10.88.0.0/24")
	if _, err := networks.Get(ctx, b, n.ID).Extract(); err == nil {
		t.Fatal("B sees A's network before any policy")
	}
	pol, err := rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{
		Action: rbacpolicies.ActionAccessShared, ObjectType: "network", ObjectID: n.ID, TargetTenant: e.b.projectID,
	}).Extract()
	must(t, err)
	_, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{
		Action: rbacpolicies.ActionAccessShared, ObjectType: "network", ObjectID: n.ID, TargetTenant: e.b.projectID,
	}).Extract()
	wantError(t, err, 409, "DuplicateRbacPolicy")
	_, err = rbacpolicies.Create(ctx, a, rbacpolicies.CreateOpts{
		Action: rbacpolicies.ActionAccessShared, ObjectType: "network", ObjectID: n.ID, TargetTenant: "*",
	}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")
	_, err = rbacpolicies.Create(ctx, b, rbacpolicies.CreateOpts{
		Action: rbacpolicies.ActionAccessShared, ObjectType: "network", ObjectID: n.ID, TargetTenant: e.b.projectID,
	}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized") // B may see it now but does not own it

	got := getNet(t, b, n.ID)
	if !got.Shared {
		t.Errorf("network shared with B does not show as shared to B")
	}
	if getNet(t, a, n.ID).Shared {
		t.Errorf("network shows as shared to its owner with only a targeted policy")
	}
	p := createPort(t, b, rawPort{"network_id": n.ID})
	wantError(t, rbacpolicies.Delete(ctx, a, pol.ID).ExtractErr(), 409, "RbacPolicyInUse")
	if _, err := rbacpolicies.Get(ctx, b, pol.ID).Extract(); err == nil {
		t.Error("the target project can read the owner's policy")
	}
	must(t, ports.Delete(ctx, b, p.ID).ExtractErr())
	must(t, rbacpolicies.Delete(ctx, a, pol.ID).ExtractErr())
	if _, err := networks.Get(ctx, b, n.ID).Extract(); err == nil {
		t.Fatal("B still sees the network after the policy went")
	}
	_, err = ports.Create(ctx, b, ports.CreateOpts{NetworkID: n.ID}).Extract()
	wantError(t, err, 404, "NetworkNotFound")
}

// TestSharedFlagIsAWildcardPolicy: shared=true appears as a '*' policy and
// deleting that policy unshares the network.
func TestSharedFlagIsAWildcardPolicy(t *testing.T) {
	t.Parallel()
	e := shared
	admin := e.admin.net(t)
	n := createNet(t, admin, rawNet{"name": uniq("wild"), "shared": true})
	pages, err := rbacpolicies.List(admin, rbacpolicies.ListOpts{ObjectID: n.ID}).AllPages(ctx)
	must(t, err)
	list, err := rbacpolicies.ExtractRBACPolicies(pages)
	must(t, err)
	if len(list) != 1 || list[0].TargetTenant != "*" || list[0].Action != rbacpolicies.ActionAccessShared {
		t.Fatalf("policies of a shared network: %+v", list)
	}
	must(t, rbacpolicies.Delete(ctx, admin, list[0].ID).ExtractErr())
	if getNet(t, admin, n.ID).Shared {
		t.Fatal("network still shared after its wildcard policy was deleted")
	}
	if _, err := networks.Get(ctx, e.b.net(t), n.ID).Extract(); err == nil {
		t.Fatal("B still sees an unshared network")
	}
}

package apitest

import (
	"context"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/vland/vland/internal/service"
)

// TestQuotasThroughGophercloud: an admin reads, sets and resets a
// project's quota; the project is held to it with OverQuota; a member can
// read its own quota but not change it or read another's.
func TestQuotasThroughGophercloud(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), service.DefaultConfig())
	// Closed before TempDir goes: etcd's file purger dies fatally on a
	// removed data directory.
	t.Cleanup(func() { e.srv.Close() })
	admin, a, b := e.admin.net(t), e.a.net(t), e.b.net(t)
	q, err := quotas.Get(context.Background(), a, e.a.projectID).Extract()
	must(t, err)
	if q.Network != 100 || q.Subnet != 100 || q.Port != 500 {
		t.Fatalf("default quota: %+v", q)
	}
	two := 2
	_, err = quotas.Update(ctx, a, e.a.projectID, quotas.UpdateOpts{Network: &two}).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")
	_, err = quotas.Get(ctx, b, e.a.projectID).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")

	q, err = quotas.Update(ctx, admin, e.a.projectID, quotas.UpdateOpts{Network: &two}).Extract()
	must(t, err)
	if q.Network != 2 {
		t.Fatalf("updated quota: %+v", q)
	}
	createNet(t, a, rawNet{"name": "q1"})
	n2 := createNet(t, a, rawNet{"name": "q2"})
	_, err = createNetErr(a, rawNet{"name": "q3"})
	wantError(t, err, 409, "OverQuota")

	one := 1
	_, err = quotas.Update(ctx, admin, e.a.projectID, quotas.UpdateOpts{Network: &one}).Extract()
	wantError(t, err, 400, "HTTPBadRequest") // below current usage

	d, err := quotas.GetDetail(ctx, admin, e.a.projectID).Extract()
	must(t, err)
	if d.Network.Used != 2 || d.Network.Limit != 2 {
		t.Fatalf("details: %+v", d.Network)
	}
	deleteNet(t, a, n2.ID)
	createNet(t, a, rawNet{"name": "q4"})

	must(t, quotas.Delete(ctx, admin, e.a.projectID).ExtractErr())
	if q, _ = quotas.Get(ctx, a, e.a.projectID).Extract(); q.Network != 100 {
		t.Fatalf("after reset: %+v", q)
	}
	r := e.raw(t, e.admin, "PUT", "/v2.0/quotas/"+e.a.projectID, `{"quota": {"network": "x"}}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
	r = e.raw(t, e.admin, "PUT", "/v2.0/quotas/"+e.a.projectID, `{"quota": {"widgets": 3}}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
	r = e.raw(t, e.admin, "GET", "/v2.0/quotas/"+e.a.projectID+"/default", "")
	if r.status != 200 || r.json(t)["quota"].(map[string]any)["port"] != float64(500) {
		t.Fatalf("default: %d %s", r.status, r.body)
	}
}

func createNetErr(c *gophercloud.ServiceClient, body rawNet) (network, error) {
	var n network
	err := networks.Create(ctx, c, body).ExtractInto(&n)
	return n, err
}

func deleteNet(t testing.TB, c *gophercloud.ServiceClient, id string) {
	t.Helper()
	must(t, networks.Delete(ctx, c, id).ExtractErr())
}

package apitest

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// TestTagsThroughGophercloud sets, adds, checks and removes tags on a
// network, and filters lists by them.
func TestTagsThroughGophercloud(t *testing.T) {
	t.Parallel()
	e := shared
	c := e.a.net(t)
	red, blue := uniq("red"), uniq("blue")
	n1 := createNet(t, c, rawNet{"name": uniq("tag1")})
	n2 := createNet(t, c, rawNet{"name": uniq("tag2")})

	tags, err := attributestags.ReplaceAll(ctx, c, "networks", n1.ID, attributestags.ReplaceAllOpts{Tags: []string{red, blue}}).Extract()
	must(t, err)
	if !slices.Equal(tags, []string{red, blue}) {
		t.Fatalf("replace all: %v", tags)
	}
	must(t, attributestags.Add(ctx, c, "networks", n2.ID, red).ExtractErr())
	ok, err := attributestags.Confirm(ctx, c, "networks", n2.ID, red).Extract()
	if err != nil || !ok {
		t.Fatalf("confirm existing tag: %v %v", ok, err)
	}
	if ok, _ := attributestags.Confirm(ctx, c, "networks", n2.ID, blue).Extract(); ok {
		t.Fatal("confirm of a missing tag succeeded")
	}
	if got := getNet(t, c, n1.ID); got.RevisionNumber < 1 {
		t.Errorf("tagging did not bump revision_number: %d", got.RevisionNumber)
	}

	names := func(opts networks.ListOpts) []string {
		var out []string
		for _, n := range listNets(t, c, opts) {
			if n.ID == n1.ID || n.ID == n2.ID {
				out = append(out, n.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	both := []string{n1.ID, n2.ID}
	slices.Sort(both)
	for _, tc := range []struct {
		opts networks.ListOpts
		want []string
	}{
		{networks.ListOpts{Tags: red}, both},
		{networks.ListOpts{Tags: red + "," + blue}, []string{n1.ID}},
		{networks.ListOpts{TagsAny: blue}, []string{n1.ID}},
		{networks.ListOpts{NotTags: red + "," + blue}, []string{n2.ID}},
		{networks.ListOpts{NotTagsAny: blue}, []string{n2.ID}},
	} {
		if got := names(tc.opts); !slices.Equal(got, tc.want) {
			t.Errorf("list %+v = %v, want %v", tc.opts, got, tc.want)
		}
	}

	must(t, attributestags.Delete(ctx, c, "networks", n1.ID, red).ExtractErr())
	tags, err = attributestags.List(ctx, c, "networks", n1.ID).Extract()
	must(t, err)
	if !slices.Equal(tags, []string{blue}) {
		t.Fatalf("after delete: %v", tags)
	}
	wantError(t, attributestags.Delete(ctx, c, "networks", n1.ID, red).ExtractErr(), 404, "TagNotFound")
	must(t, attributestags.DeleteAll(ctx, c, "networks", n1.ID).ExtractErr())
	if tags, _ = attributestags.List(ctx, c, "networks", n1.ID).Extract(); len(tags) != 0 {
		t.Fatalf("after delete all: %v", tags)
	}
	// Another project cannot see or tag it.
	wantError(t, attributestags.Add(ctx, e.b.net(t), "networks", n1.ID, "x").ExtractErr(), 404, "TagResourceNotFound")
}

// TestTagsOnCreateAndBulk: tags given at creation, one by one and in bulk.
func TestTagsOnCreateAndBulk(t *testing.T) {
	t.Parallel()
	e := shared
	tag := uniq("bulk")
	n := createNet(t, e.a.net(t), rawNet{"name": uniq("tc"), "tags": []string{tag}})
	r := e.raw(t, e.a, "POST", "/v2.0/ports", jsonBody(t, map[string]any{"ports": []any{
		map[string]any{"network_id": n.ID, "tags": []string{tag, "p1"}},
		map[string]any{"network_id": n.ID, "tags": []string{tag, "p2"}},
	}}))
	if r.status != 201 {
		t.Fatalf("bulk create with tags: %d %s", r.status, r.body)
	}
	got := listPorts(t, e.a.net(t), ports.ListOpts{Tags: tag})
	if len(got) != 2 {
		t.Fatalf("ports tagged %s: %d, want 2", tag, len(got))
	}
	wantRaw(t, e.raw(t, e.a, "POST", "/v2.0/networks", `{"network": {"tags": ["a", "a"]}}`), 400, "HTTPBadRequest")
}

// TestIfMatchRevisionNumber: a change constrained to a stale revision
// answers 412 and changes nothing; the current revision goes through.
func TestIfMatchRevisionNumber(t *testing.T) {
	t.Parallel()
	e := shared
	n := createNet(t, e.a.net(t), rawNet{"name": uniq("ifm")})
	rev := getNet(t, e.a.net(t), n.ID).RevisionNumber
	put := func(r int, name string) rawResult {
		return rawDo(t, t, e.a.token, "PUT", e.srv.URL+"/v2.0/networks/"+n.ID, jsonBody(t, map[string]any{"network": map[string]any{"name": name}}),
			map[string]string{"If-Match": "revision_number=" + strconv.Itoa(r)})
	}
	wantRaw(t, put(rev+5, "stale"), http.StatusPreconditionFailed, "RevisionNumberConstraintFailed")
	if got := getNet(t, e.a.net(t), n.ID); got.Name == "stale" {
		t.Fatal("a refused change was applied")
	}
	if r := put(rev, "fresh"); r.status != 200 {
		t.Fatalf("matching revision: %d %s", r.status, r.body)
	}
	r := rawDo(t, t, e.a.token, "DELETE", e.srv.URL+"/v2.0/networks/"+n.ID, "", map[string]string{"If-Match": "revision_number=" + strconv.Itoa(rev)})
	wantRaw(t, r, http.StatusPreconditionFailed, "RevisionNumberConstraintFailed")
	r = rawDo(t, t, e.a.token, "PUT", e.srv.URL+"/v2.0/networks/"+n.ID, `{"network": {}}`, map[string]string{"If-Match": "etag-xyz"})
	wantRaw(t, r, 400, "HTTPBadRequest")
}

// TestChangedSinceAndSubstringFilters covers changed_since and
// fixed_ips=ip_address_substr=.
func TestChangedSinceAndSubstringFilters(t *testing.T) {
	t.Parallel()
	e := shared
	c := e.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("cs"), "10.77.3.0/24")
	p := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": "10.77.3.123"}}})
	r := e.raw(t, e.a, "GET", "/v2.0/ports?fixed_ips=ip_address_substr%3D77.3.12", "")
	if r.status != 200 || !containsID(r.json(t)["ports"], p.ID) {
		t.Fatalf("substring filter: %d %s", r.status, r.body)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r = e.raw(t, e.a, "GET", "/v2.0/ports?network_id="+n.ID+"&changed_since="+future, "")
	if r.status != 200 || containsID(r.json(t)["ports"], p.ID) {
		t.Fatalf("changed_since in the future still lists the port: %s", r.body)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	r = e.raw(t, e.a, "GET", "/v2.0/ports?network_id="+n.ID+"&changed_since="+past, "")
	if !containsID(r.json(t)["ports"], p.ID) {
		t.Fatalf("changed_since in the past misses the port: %s", r.body)
	}
	wantRaw(t, e.raw(t, e.a, "GET", "/v2.0/ports?changed_since=yesterday", ""), 400, "HTTPBadRequest")
}

func containsID(list any, id string) bool {
	items, _ := list.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok && m["id"] == id {
			return true
		}
	}
	return false
}

package apitest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// metaPath is the URL of a device's instance metadata.
func metaPath(device string) string { return "/v2.0/instance-metadata/" + url.PathEscape(device) }

// putMeta PUTs {"instance_metadata": inner} as u.
func putMeta(t *testing.T, u *user, device string, inner map[string]any) rawResult {
	t.Helper()
	return shared.raw(t, u, "PUT", metaPath(device), jsonBody(t, map[string]any{"instance_metadata": inner}))
}

// metaOf extracts the instance_metadata object of an answer.
func metaOf(t *testing.T, r rawResult) map[string]any {
	t.Helper()
	m, ok := r.json(t)["instance_metadata"].(map[string]any)
	if !ok {
		t.Fatalf("answer %d has no instance_metadata object: %s", r.status, r.body)
	}
	return m
}

// userDataOf decodes the user_data of a shown object.
func userDataOf(t *testing.T, m map[string]any) []byte {
	t.Helper()
	s, ok := m["user_data"].(string)
	if !ok {
		t.Fatalf("user_data = %#v, want a base64 string", m["user_data"])
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("user_data %q is not base64: %v", s, err)
	}
	return b
}

// devicePort creates a network of u's project with a port naming a fresh
// device id, and returns the device id.
func devicePort(t *testing.T, u *user) string {
	t.Helper()
	c := u.net(t)
	n := createNet(t, c, rawNet{"name": uniq("imeta")})
	dev := uuid.NewString()
	createPort(t, c, rawPort{"network_id": n.ID, "device_id": dev, "device_owner": "compute:nova"})
	return dev
}

// TestInstanceMetadataRoundTripKeepsExactBytes: PUT creates (201), GET
// shows exactly what was put, the user data byte for byte (every byte
// value, exactly 64 KiB), PUT again replaces (200, a new revision, what it
// leaves out cleared), DELETE removes (204) and GET then answers 404.
func TestInstanceMetadataRoundTripKeepsExactBytes(t *testing.T) {
	t.Parallel()
	dev := devicePort(t, shared.a)
	data := make([]byte, 65536)
	for i := range data {
		data[i] = byte(i * 7)
	}
	keys := map[string]any{"default": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx alice@laptop", "second key": "ssh-rsa AAAAB3Nza bob"}
	put := putMeta(t, shared.a, dev, map[string]any{
		"name": "web-1", "hostname": "web-1.example.org", "user_data": base64.StdEncoding.EncodeToString(data),
		"meta": map[string]any{"role": "web", "tier": ""}, "public_keys": keys, "availability_zone": "nova",
	})
	if put.status != http.StatusCreated {
		t.Fatalf("PUT answered %d: %.300s", put.status, put.body)
	}
	created := metaOf(t, put)
	want := map[string]any{
		"id": dev, "device_id": dev, "project_id": shared.a.projectID, "tenant_id": shared.a.projectID, "name": "web-1",
		"hostname": "web-1.example.org", "meta": map[string]any{"role": "web", "tier": ""}, "public_keys": keys,
		"availability_zone": "nova", "revision_number": float64(0),
	}
	get := shared.raw(t, shared.a, "GET", metaPath(dev), "")
	if get.status != http.StatusOK {
		t.Fatalf("GET answered %d: %.300s", get.status, get.body)
	}
	shown := metaOf(t, get)
	for _, m := range []map[string]any{created, shown} {
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Errorf("%s = %#v, want %#v", k, m[k], v)
			}
		}
		if !bytes.Equal(userDataOf(t, m), data) {
			t.Errorf("user_data differs from the 65536 bytes put")
		}
		if m["created_at"] == "" || m["created_at"] != m["updated_at"] {
			t.Errorf("timestamps %v / %v", m["created_at"], m["updated_at"])
		}
	}
	if len(shown) != 13 {
		t.Errorf("GET shows %d attributes, want 13: %v", len(shown), slices.Sorted(func(yield func(string) bool) {
			for k := range shown {
				if !yield(k) {
					return
				}
			}
		}))
	}

	// Replace: 200, next revision, created_at kept, omitted attributes gone.
	small := []byte{0, 0xff, '\n', 0x80}
	rep := putMeta(t, shared.a, dev, map[string]any{"name": "web-1b", "user_data": base64.StdEncoding.EncodeToString(small)})
	if rep.status != http.StatusOK {
		t.Fatalf("replacing PUT answered %d: %s", rep.status, rep.body)
	}
	got := metaOf(t, shared.raw(t, shared.a, "GET", metaPath(dev), ""))
	if got["name"] != "web-1b" || got["revision_number"] != float64(1) || got["created_at"] != created["created_at"] ||
		got["hostname"] != "" || len(got["meta"].(map[string]any)) != 0 || len(got["public_keys"].(map[string]any)) != 0 ||
		got["availability_zone"] != "" || !bytes.Equal(userDataOf(t, got), small) {
		t.Errorf("after replace: %v", got)
	}
	// Without user data, it is null.
	putMeta(t, shared.a, dev, map[string]any{})
	if got := metaOf(t, shared.raw(t, shared.a, "GET", metaPath(dev), "")); got["user_data"] != nil || got["revision_number"] != float64(2) {
		t.Errorf("after replace without user data: user_data %#v, revision %v", got["user_data"], got["revision_number"])
	}
	// fields= selects attributes.
	if got := metaOf(t, shared.raw(t, shared.a, "GET", metaPath(dev)+"?fields=device_id&fields=name", "")); len(got) != 2 || got["device_id"] != dev {
		t.Errorf("fields=device_id,name shows %v", got)
	}

	if r := shared.raw(t, shared.a, "DELETE", metaPath(dev), ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE answered %d: %s", r.status, r.body)
	}
	wantRaw(t, shared.raw(t, shared.a, "GET", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")
	wantRaw(t, shared.raw(t, shared.a, "DELETE", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")
	if e := shared.raw(t, shared.a, "GET", metaPath(dev), "").neutron(t); !strings.Contains(e.Message, dev) {
		t.Errorf("404 message %q does not name the device", e.Message)
	}
}

// TestInstanceMetadataValidation: each invalid body is a 400 NeutronError
// naming what is wrong, and the stored object is untouched by all of them;
// a body beyond the API's limit is a 413.
func TestInstanceMetadataValidation(t *testing.T) {
	t.Parallel()
	dev := devicePort(t, shared.a)
	if r := putMeta(t, shared.a, dev, map[string]any{"name": "keep"}); r.status != http.StatusCreated {
		t.Fatalf("PUT answered %d: %s", r.status, r.body)
	}
	over := base64.StdEncoding.EncodeToString(make([]byte, 65537))
	long := strings.Repeat("x", 256)
	many := func(n int, v string) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = v
		}
		return m
	}
	cases := []struct {
		name  string
		inner map[string]any
		want  string // in the message
	}{
		{"user data over 64 KiB", map[string]any{"user_data": over}, "user data is 65537 bytes decoded, more than 65536"},
		{"user data not base64", map[string]any{"user_data": "#!/bin/sh\necho hi"}, "user data is not valid base64"},
		{"user data unpadded", map[string]any{"user_data": "aGk"}, "not valid base64"},
		{"user data a number", map[string]any{"user_data": 5}, "Invalid input for user_data"},
		{"long name", map[string]any{"name": long}, "Invalid input for name"},
		{"long hostname", map[string]any{"hostname": strings.Repeat("abcdefg.", 32) + "a"}, "Invalid input for hostname"},
		{"hostname with underscore", map[string]any{"hostname": "web_1"}, "not a valid hostname"},
		{"hostname starting with -", map[string]any{"hostname": "-web"}, "not a valid hostname"},
		{"hostname empty label", map[string]any{"hostname": "web..example"}, "not a valid hostname"},
		{"meta not an object", map[string]any{"meta": []any{"a"}}, "Invalid input for meta"},
		{"meta value not a string", map[string]any{"meta": map[string]any{"n": 1}}, "not a string"},
		{"meta too many", map[string]any{"meta": many(129, "v")}, "129 meta items exceed the limit of 128"},
		{"meta long key", map[string]any{"meta": map[string]any{long: "v"}}, "must be 1 to 255 characters"},
		{"meta long value", map[string]any{"meta": map[string]any{"k": long}}, "exceeds maximum length of 255"},
		{"keys too many", map[string]any{"public_keys": many(101, "ssh-rsa A")}, "101 public keys exceed the limit of 100"},
		{"key too long", map[string]any{"public_keys": map[string]any{"k": strings.Repeat("A", 16385)}}, "must be 1 to 16384 bytes"},
		{"key name too long", map[string]any{"public_keys": map[string]any{long: "ssh-rsa A"}}, "Invalid input for public_keys"},
		{"key not a string", map[string]any{"public_keys": map[string]any{"k": nil}}, "not a string"},
		{"long availability zone", map[string]any{"availability_zone": long}, "Invalid input for availability_zone"},
		{"unknown attribute", map[string]any{"image": "cirros"}, "Unrecognized attribute(s) 'image'"},
		{"read-only attribute", map[string]any{"revision_number": 7}, "read-only attribute revision_number"},
		{"other device in the body", map[string]any{"device_id": uuid.NewString()}, "Invalid input for device_id"},
		{"too large as stored", map[string]any{"public_keys": many(20, strings.Repeat("A", 16384))}, "more than 262144"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := putMeta(t, shared.a, dev, c.inner)
			wantRaw(t, r, http.StatusBadRequest, "HTTPBadRequest")
			if r.status == http.StatusBadRequest && !strings.Contains(r.neutron(t).Message, c.want) {
				t.Errorf("message %q, want it to contain %q", r.neutron(t).Message, c.want)
			}
		})
	}
	for _, body := range []string{``, `[]`, `{"instance_metadata": "x"}`, `{"metadata": {}}`, `{"instance_metadata": {}} }`} {
		wantRaw(t, shared.raw(t, shared.a, "PUT", metaPath(dev), body), http.StatusBadRequest, "HTTPBadRequest")
	}
	// Every attribute set to values of every JSON shape: never a 5xx.
	for _, a := range []string{"device_id", "project_id", "name", "hostname", "user_data", "meta", "public_keys", "availability_zone"} {
		for _, v := range weirdValues {
			putMeta(t, shared.a, dev, map[string]any{a: v, "name": "keep"})
		}
	}
	if r := shared.raw(t, shared.a, "DELETE", metaPath(dev), ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE answered %d", r.status)
	}
	wantRaw(t, putMeta(t, shared.a, dev, map[string]any{"user_data": base64.StdEncoding.EncodeToString(make([]byte, 13<<20))}),
		http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge")
	wantRaw(t, shared.raw(t, shared.a, "GET", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")
}

// TestInstanceMetadataBelongsToTheDevicesProject: only the project owning
// a port of the device writes its metadata; other projects get 404 for
// every method (even when one of their own ports names the device), a
// reader reads but does not write, and an admin writes any device's.
func TestInstanceMetadataBelongsToTheDevicesProject(t *testing.T) {
	t.Parallel()
	dev := devicePort(t, shared.a)
	wantRaw(t, putMeta(t, shared.b, dev, map[string]any{"name": "b"}), http.StatusNotFound, "DeviceNotFound")
	if r := putMeta(t, shared.a, dev, map[string]any{"name": "a", "user_data": "c2VjcmV0"}); r.status != http.StatusCreated {
		t.Fatalf("owner PUT answered %d: %s", r.status, r.body)
	}
	wantRaw(t, shared.raw(t, shared.b, "GET", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")
	wantRaw(t, shared.raw(t, shared.b, "DELETE", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")

	// B names A's device on a port of its own: still nothing to see or take.
	nb := createNet(t, shared.b.net(t), rawNet{"name": uniq("imeta-b")})
	createPort(t, shared.b.net(t), rawPort{"network_id": nb.ID, "device_id": dev})
	wantRaw(t, putMeta(t, shared.b, dev, map[string]any{"name": "stolen"}), http.StatusNotFound, "DeviceNotFound")
	wantRaw(t, shared.raw(t, shared.b, "GET", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")

	// A's reader reads, but neither writes nor deletes.
	if got := metaOf(t, shared.raw(t, shared.reader, "GET", metaPath(dev), "")); got["name"] != "a" {
		t.Errorf("reader sees %v", got)
	}
	wantRaw(t, putMeta(t, shared.reader, dev, map[string]any{"name": "r"}), http.StatusForbidden, "PolicyNotAuthorized")
	wantRaw(t, shared.raw(t, shared.reader, "DELETE", metaPath(dev), ""), http.StatusForbidden, "PolicyNotAuthorized")
	// A member may not hand the metadata to another project.
	wantRaw(t, putMeta(t, shared.a, dev, map[string]any{"project_id": shared.b.projectID}), http.StatusForbidden, "PolicyNotAuthorized")
	if got := metaOf(t, shared.raw(t, shared.admin, "GET", metaPath(dev), "")); got["name"] != "a" || got["project_id"] != shared.a.projectID {
		t.Errorf("after the refused writes: %v", got)
	}

	// A device without ports: members get 404, an admin creates it in
	// its own project or the one named.
	lone := uuid.NewString()
	wantRaw(t, putMeta(t, shared.a, lone, map[string]any{"name": "x"}), http.StatusNotFound, "DeviceNotFound")
	if e := putMeta(t, shared.a, lone, map[string]any{}).neutron(t); e.Message != "Device "+lone+" could not be found." {
		t.Errorf("message %q", e.Message)
	}
	r := putMeta(t, shared.admin, lone, map[string]any{"name": "x"})
	if r.status != http.StatusCreated || metaOf(t, r)["project_id"] != shared.admin.projectID {
		t.Fatalf("admin PUT for a device without ports: %d %s", r.status, r.body)
	}
	wantRaw(t, shared.raw(t, shared.a, "GET", metaPath(lone), ""), http.StatusNotFound, "InstanceMetadataNotFound")
	r = putMeta(t, shared.admin, lone, map[string]any{"name": "x", "project_id": shared.a.projectID})
	if r.status != http.StatusOK || metaOf(t, r)["project_id"] != shared.a.projectID {
		t.Fatalf("admin PUT naming project A: %d %s", r.status, r.body)
	}
	// Now A's, A sees it and may delete it although no port names it.
	if got := metaOf(t, shared.raw(t, shared.a, "GET", metaPath(lone), "")); got["name"] != "x" {
		t.Errorf("A sees %v", got)
	}
	if r := shared.raw(t, shared.a, "DELETE", metaPath(lone), ""); r.status != http.StatusNoContent {
		t.Errorf("A's DELETE answered %d", r.status)
	}
	// An admin's PUT for A's device keeps it A's.
	if r := putMeta(t, shared.admin, dev, map[string]any{"name": "by-admin"}); r.status != http.StatusOK || metaOf(t, r)["project_id"] != shared.a.projectID {
		t.Errorf("admin replace: %d %s", r.status, r.body)
	}
	// The metadata outlives the device's ports (Nova deletes it with the
	// server).
}

// TestInstanceMetadataListShowsWhatTheCallerMaySee: the list holds the
// caller's project's metadata (an admin's: everyone's), filters by any
// plain attribute, and pages by device id.
func TestInstanceMetadataListShowsWhatTheCallerMaySee(t *testing.T) {
	t.Parallel()
	tag := uniq("imeta-list")
	var devsA []string
	for range 3 {
		dev := devicePort(t, shared.a)
		devsA = append(devsA, dev)
		if r := putMeta(t, shared.a, dev, map[string]any{"availability_zone": tag}); r.status != http.StatusCreated {
			t.Fatalf("PUT answered %d: %s", r.status, r.body)
		}
	}
	devB := devicePort(t, shared.b)
	if r := putMeta(t, shared.b, devB, map[string]any{"availability_zone": tag}); r.status != http.StatusCreated {
		t.Fatalf("PUT answered %d: %s", r.status, r.body)
	}
	list := func(u *user, query string) []string {
		t.Helper()
		r := shared.raw(t, u, "GET", "/v2.0/instance-metadata?"+query, "")
		if r.status != http.StatusOK {
			t.Fatalf("list %s answered %d: %s", query, r.status, r.body)
		}
		var out []string
		for _, it := range r.json(t)["instance_metadata"].([]any) {
			out = append(out, it.(map[string]any)["device_id"].(string))
		}
		return out
	}
	slices.Sort(devsA)
	all := slices.Sorted(slices.Values(append(slices.Clone(devsA), devB)))
	q := "availability_zone=" + url.QueryEscape(tag)
	if got := list(shared.a, q); !slices.Equal(got, devsA) {
		t.Errorf("A lists %v, want %v", got, devsA)
	}
	if got := list(shared.reader, q); !slices.Equal(got, devsA) {
		t.Errorf("A's reader lists %v, want %v", got, devsA)
	}
	if got := list(shared.b, q); !slices.Equal(got, []string{devB}) {
		t.Errorf("B lists %v, want %v", got, []string{devB})
	}
	if got := list(shared.admin, q); !slices.Equal(got, all) {
		t.Errorf("admin lists %v, want %v", got, all)
	}
	if got := list(shared.admin, q+"&project_id="+shared.b.projectID); !slices.Equal(got, []string{devB}) {
		t.Errorf("admin's project_id filter lists %v", got)
	}
	if got := list(shared.b, q+"&tenant_id="+shared.a.projectID); len(got) != 0 {
		t.Errorf("B filtering for A's project lists %v", got)
	}
	if got := list(shared.a, q+"&device_id="+devsA[1]); !slices.Equal(got, devsA[1:2]) {
		t.Errorf("device_id filter lists %v", got)
	}
	// Pages of one, by device id.
	var paged []string
	marker := ""
	for range 10 {
		page := list(shared.a, q+"&limit=1&marker="+marker)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		marker = page[0]
	}
	if !slices.Equal(paged, devsA) {
		t.Errorf("paged %v, want %v", paged, devsA)
	}
	if got := list(shared.a, q+"&sort_key=device_id&sort_dir=desc"); !slices.Equal(got, []string{devsA[2], devsA[1], devsA[0]}) {
		t.Errorf("sorted desc %v", got)
	}
	wantRaw(t, shared.raw(t, shared.a, "GET", "/v2.0/instance-metadata?flavor=m1", ""), http.StatusBadRequest, "HTTPBadRequest")
	wantRaw(t, shared.raw(t, shared.a, "POST", "/v2.0/instance-metadata", `{"instance_metadata": {}}`), http.StatusMethodNotAllowed, "HTTPMethodNotAllowed")
	if r := shared.raw(t, nil, "GET", "/v2.0/instance-metadata", ""); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous list answered %d", r.status)
	}
	if r := shared.raw(t, nil, "PUT", metaPath(devB), `{"instance_metadata": {}}`); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous PUT answered %d", r.status)
	}
}

// TestInstanceMetadataDeviceIDsThatCannotBeKeys: a device id with a '/'
// (escaped in the URL) cannot be written, shown or deleted.
func TestInstanceMetadataDeviceIDsThatCannotBeKeys(t *testing.T) {
	t.Parallel()
	for _, dev := range []string{"a/b", "a\nb", strings.Repeat("d", 256)} {
		wantRaw(t, putMeta(t, shared.admin, dev, map[string]any{}), http.StatusBadRequest, "HTTPBadRequest")
		wantRaw(t, shared.raw(t, shared.admin, "GET", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")
		wantRaw(t, shared.raw(t, shared.admin, "DELETE", metaPath(dev), ""), http.StatusNotFound, "InstanceMetadataNotFound")
	}
}

package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"object", `{"network": {}}`, true},
		{"empty object", `{}`, true},
		{"surrounding whitespace", " \n\t{\"a\": 1}\r\n ", true},
		{"nested", `{"a": {"b": [1, {"c": null}]}}`, true},

		{"empty", ``, false},
		{"whitespace only", "  \n", false},
		{"truncated", `{"network": {`, false},
		{"null", `null`, false},
		{"array", `[{"network": {}}]`, false},
		{"string", `"network"`, false},
		{"number", `42`, false},
		{"true", `true`, false},
		{"trailing garbage", `{"network": {}} x`, false},
		{"trailing object", `{"network": {}} {}`, false},
		{"trailing number", `{} 1`, false},
		{"trailing brace", `{"network": {}}}`, false},
		{"trailing bracket", `{"network": {}}]`, false},
		{"trailing brace after space", "{} \n}", false},
		{"trailing comma", `{"a": 1},`, false},
		{"single quotes", `{'a': 1}`, false},
		{"trailing comma inside", `{"a": 1,}`, false},
		{"NaN", `{"a": NaN}`, false},
		{"comment", `{"a": 1} // c`, false},
		{"bare word", `network`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeJSON(strings.NewReader(tc.body))
			if tc.ok {
				if err != nil || m == nil {
					t.Fatalf("DecodeJSON(%q) = %v, %v", tc.body, m, err)
				}
				return
			}
			wantAPIErr(t, err, 400, "Malformed request body")
			if m != nil {
				t.Errorf("DecodeJSON(%q) returned %v with the error", tc.body, m)
			}
		})
	}
}

func TestDecodeJSONNumbers(t *testing.T) {
	t.Parallel()
	m, err := DecodeJSON(strings.NewReader(`{"a": 1, "b": 1.5, "c": -0, "d": 12345678901234567890123, "e": 1e3}`))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "1", "b": "1.5", "c": "-0", "d": "12345678901234567890123", "e": "1e3"} {
		n, ok := m[k].(json.Number)
		if !ok {
			t.Errorf("%s decoded as %T, want json.Number", k, m[k])
			continue
		}
		if n.String() != want {
			t.Errorf("%s = %s, want %s (numbers must keep their text)", k, n, want)
		}
	}
}

func TestDecodeJSONTooLarge(t *testing.T) {
	t.Parallel()
	// Exactly MaxBody bytes are accepted.
	body := `{"a":"` + strings.Repeat("x", MaxBody-8) + `"}`
	if len(body) != MaxBody {
		t.Fatalf("test body is %d bytes", len(body))
	}
	if _, err := DecodeJSON(strings.NewReader(body)); err != nil {
		t.Fatalf("body of MaxBody bytes: %v", err)
	}
	body = `{"a":"` + strings.Repeat("x", MaxBody-7) + `"}`
	_, err := DecodeJSON(strings.NewReader(body))
	wantAPIErr(t, err, 413, "Request is too large.")
}

func TestDecodeJSONReadError(t *testing.T) {
	t.Parallel()
	_, err := DecodeJSON(iotest.ErrReader(errors.New("connection reset")))
	wantAPIErr(t, err, 400, "Malformed request body: connection reset")
}

func TestDecodeBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  string
		op    Op
		bulk  bool
		names []string // item names, when ok
		err   string   // message, when not ok
	}{
		{"single", `{"network": {"name": "a"}}`, Create, false, []string{"a"}, ""},
		{"single update", `{"network": {"name": "a"}}`, Update, false, []string{"a"}, ""},
		{"single empty", `{"network": {}}`, Create, false, []string{""}, ""},
		{"bulk bare items", `{"networks": [{"name": "a"}, {"name": "b"}]}`, Create, true, []string{"a", "b"}, ""},
		{"bulk wrapped items", `{"networks": [{"network": {"name": "a"}}, {"network": {"name": "b"}}]}`, Create, true, []string{"a", "b"}, ""},
		{"bulk mixed items", `{"networks": [{"network": {"name": "a"}}, {"name": "b"}]}`, Create, true, []string{"a", "b"}, ""},
		{"bulk of one", `{"networks": [{}]}`, Create, true, []string{""}, ""},
		{"plural wins over singular", `{"networks": [{"name": "a"}], "network": {"name": "z"}}`, Create, true, []string{"a"}, ""},
		{"plural ignored on update", `{"networks": [{"name": "a"}], "network": {"name": "z"}}`, Update, false, []string{"z"}, ""},

		{"empty body", `{}`, Create, false, nil, "Unable to find 'network' in request body"},
		{"wrong resource", `{"port": {}}`, Create, false, nil, "Unable to find 'network' in request body"},
		{"plural on update", `{"networks": [{"name": "a"}]}`, Update, false, nil, "Unable to find 'network' in request body"},
		{"singular null", `{"network": null}`, Create, false, nil, "Body contains invalid data"},
		{"singular list", `{"network": [{"name": "a"}]}`, Create, false, nil, "Body contains invalid data"},
		{"singular string", `{"network": "a"}`, Update, false, nil, "Body contains invalid data"},
		{"bulk empty", `{"networks": []}`, Create, false, nil, "Resources required"},
		{"bulk null", `{"networks": null}`, Create, false, nil, "Resources required"},
		{"bulk object", `{"networks": {"name": "a"}}`, Create, false, nil, "Resources required"},
		{"bulk item not object", `{"networks": [{"name": "a"}, 3]}`, Create, false, nil, "Malformed request body"},
		{"bulk item null", `{"networks": [null]}`, Create, false, nil, "Malformed request body"},
		{"bulk item invalid", `{"networks": [{"name": "a"}, {"shared": "maybe"}]}`, Create, false, nil,
			"Invalid input for shared. Reason: 'maybe' cannot be converted to boolean."},
		{"bulk item unknown attr", `{"networks": [{"bogus": 1}]}`, Create, false, nil, "Unrecognized attribute(s) 'bogus'"},
		{"bulk item wrapped with non-object", `{"networks": [{"network": 1}]}`, Create, false, nil, "Unrecognized attribute(s) 'network'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			items, bulk, err := decode(NetworkSpec, tc.body, tc.op)
			if tc.err != "" {
				wantAPIErr(t, err, 400, tc.err)
				if items != nil {
					t.Errorf("items = %v with the error", items)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bulk != tc.bulk {
				t.Errorf("bulk = %v, want %v", bulk, tc.bulk)
			}
			var names []string
			for _, it := range items {
				n, _ := it["name"].(string)
				names = append(names, n)
			}
			if !slices.Equal(names, tc.names) {
				t.Errorf("items %v, want names %v", items, tc.names)
			}
		})
	}
}

func TestDecodeUnknownAttributes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec *Spec
		body string
		op   Op
		msg  string
	}{
		{NetworkSpec, `{"network": {"foo": 1}}`, Create, "Unrecognized attribute(s) 'foo'"},
		{NetworkSpec, `{"network": {"foo": 1, "bar": 2, "name": "x"}}`, Create, "Unrecognized attribute(s) 'bar, foo'"},
		{NetworkSpec, `{"network": {"foo": 1}}`, Update, "Unrecognized attribute(s) 'foo'"},
		// Unknown attributes are reported before invalid known ones.
		{NetworkSpec, `{"network": {"shared": "x", "zz": 1}}`, Create, "Unrecognized attribute(s) 'zz'"},
		{NetworkSpec, `{"network": {"Name": "x"}}`, Create, "Unrecognized attribute(s) 'Name'"},
		{NetworkSpec, `{"network": {"provider:foo": "x"}}`, Create, "Unrecognized attribute(s) 'provider:foo'"},
		{SubnetSpec, `{"subnet": {"prefix_len": 24}}`, Create, "Unrecognized attribute(s) 'prefix_len'"},
		{PortSpec, `{"port": {"binding:foo": 1}}`, Update, "Unrecognized attribute(s) 'binding:foo'"},
		{PortSpec, `{"port": {"": 1}}`, Create, "Unrecognized attribute(s) ''"},
	}
	for _, tc := range tests {
		_, _, err := decode(tc.spec, tc.body, tc.op)
		wantAPIErr(t, err, 400, tc.msg)
	}
}

func TestDecodeReadOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec *Spec
		attr string
		val  string
		op   Op
	}{
		// Never writable.
		{NetworkSpec, "id", `"` + netID + `"`, Update},
		{NetworkSpec, "status", `"ACTIVE"`, Create},
		{NetworkSpec, "status", `"ACTIVE"`, Update},
		{NetworkSpec, "subnets", `[]`, Create},
		{NetworkSpec, "created_at", `"2020-01-01T00:00:00Z"`, Create},
		{NetworkSpec, "updated_at", `"2020-01-01T00:00:00Z"`, Update},
		{NetworkSpec, "revision_number", `1`, Update},
		{SubnetSpec, "subnetpool_id", `null`, Update},
		{PortSpec, "status", `"DOWN"`, Create},
		{PortSpec, "binding:vif_type", `"ovs"`, Create},
		{PortSpec, "binding:vif_details", `{}`, Update},
		// Create only.
		{NetworkSpec, "tenant_id", `"p"`, Update},
		{NetworkSpec, "project_id", `"p"`, Update},
		{NetworkSpec, "provider:network_type", `"vlan"`, Update},
		{NetworkSpec, "provider:physical_network", `"physnet1"`, Update},
		{NetworkSpec, "provider:segmentation_id", `5`, Update},
		{NetworkSpec, "segments", `[]`, Update},
		{SubnetSpec, "network_id", `"` + netID + `"`, Update},
		{SubnetSpec, "ip_version", `4`, Update},
		{SubnetSpec, "cidr", `"10.0.0.0/24"`, Update},
		{SubnetSpec, "ipv6_ra_mode", `"slaac"`, Update},
		{SubnetSpec, "ipv6_address_mode", `"slaac"`, Update},
		{PortSpec, "network_id", `"` + netID + `"`, Update},
		{PortSpec, "tenant_id", `"p"`, Update},
	}
	for _, tc := range tests {
		extra := ""
		if tc.op == Create && tc.spec != NetworkSpec {
			// Give the required attributes, so the one under test is refused.
			extra = `"network_id": "` + netID + `", "ip_version": 4, "cidr": "10.0.0.0/24", `
			if tc.spec == PortSpec {
				extra = `"network_id": "` + netID + `", `
			}
		}
		body := fmt.Sprintf(`{%q: {%s%q: %s}}`, tc.spec.Singular, extra, tc.attr, tc.val)
		_, _, err := decode(tc.spec, body, tc.op)
		want := "Attribute '" + tc.attr + "' not allowed in POST"
		if tc.op == Update {
			want = "Cannot update read-only attribute " + tc.attr
		}
		wantAPIErr(t, err, 400, want)
	}
	// id may not be given on create either, even a valid one.
	_, _, err := decode(NetworkSpec, `{"network": {"id": "`+netID+`"}}`, Create)
	wantAPIErr(t, err, 400, "Attribute 'id' not allowed in POST")
}

func TestDecodeRequired(t *testing.T) {
	t.Parallel()
	full := map[*Spec]map[string]string{
		// cidr is optional: a subnet pool may provide it.
		SubnetSpec: {"network_id": `"` + netID + `"`, "ip_version": `4`},
		PortSpec:   {"network_id": `"` + netID + `"`},
	}
	for spec, attrs := range full {
		for missing := range attrs {
			var parts []string
			for k, v := range attrs {
				if k != missing {
					parts = append(parts, fmt.Sprintf("%q: %s", k, v))
				}
			}
			body := fmt.Sprintf(`{%q: {%s}}`, spec.Singular, strings.Join(parts, ", "))
			_, _, err := decode(spec, body, Create)
			wantAPIErr(t, err, 400, "Failed to parse request. Required attribute '"+missing+"' not specified")
		}
		// Updates need nothing.
		if _, _, err := decode(spec, `{"`+spec.Singular+`": {}}`, Update); err != nil {
			t.Errorf("empty %s update: %v", spec.Singular, err)
		}
		// All present: fine.
		var parts []string
		for k, v := range attrs {
			parts = append(parts, fmt.Sprintf("%q: %s", k, v))
		}
		body := fmt.Sprintf(`{%q: {%s}}`, spec.Singular, strings.Join(parts, ", "))
		if _, _, err := decode(spec, body, Create); err != nil {
			t.Errorf("create %s: %v", body, err)
		}
	}
	// Networks require nothing.
	decodeOne(t, NetworkSpec, `{"network": {}}`, Create)
	// Required attributes given as null are given, and invalid.
	_, _, err := decode(PortSpec, `{"port": {"network_id": null}}`, Create)
	wantAPIErr(t, err, 400, "Invalid input for network_id. Reason: 'None' is not a valid UUID.")
}

func TestDecodeProjectTenant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want string // project_id, or "" when absent
		err  string
	}{
		{`{"network": {"tenant_id": "p1"}}`, "p1", ""},
		{`{"network": {"project_id": "p1"}}`, "p1", ""},
		{`{"network": {"tenant_id": "p1", "project_id": "p1"}}`, "p1", ""},
		{`{"network": {}}`, "", ""},
		{`{"network": {"tenant_id": "p1", "project_id": "p2"}}`, "", "'project_id' and 'tenant_id' do not match"},
		{`{"network": {"tenant_id": "", "project_id": "p2"}}`, "", "'project_id' and 'tenant_id' do not match"},
		{`{"network": {"tenant_id": 1}}`, "", "Invalid input for tenant_id. Reason: '1' is not a valid string."},
		{`{"network": {"project_id": null}}`, "", "Invalid input for project_id. Reason: 'None' is not a valid string."},
		{`{"network": {"project_id": "` + strings.Repeat("p", 256) + `"}}`, "", "~exceeds maximum length of 255"},
	}
	for _, tc := range tests {
		items, _, err := decode(NetworkSpec, tc.body, Create)
		if tc.err != "" {
			wantAPIErr(t, err, 400, tc.err)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		f := items[0]
		if f.Has("tenant_id") {
			t.Errorf("%s: tenant_id kept in fields %v; it must be folded into project_id", tc.body, f)
		}
		got, has := f["project_id"]
		if tc.want == "" {
			if has {
				t.Errorf("%s: project_id = %v, want none", tc.body, got)
			}
		} else if got != tc.want {
			t.Errorf("%s: project_id = %v, want %s", tc.body, got, tc.want)
		}
	}
}

func TestFieldsHas(t *testing.T) {
	t.Parallel()
	f := Fields{"a": nil, "b": ""}
	if !f.Has("a") || !f.Has("b") || f.Has("c") {
		t.Errorf("Has wrong on %v", f)
	}
}

func TestAdminOnlyGiven(t *testing.T) {
	t.Parallel()
	f := decodeOne(t, NetworkSpec, `{"network": {"segments": [], "name": "x", "provider:network_type": "vxlan", "provider:segmentation_id": 7, "shared": true}}`, Create)
	got := NetworkSpec.AdminOnlyGiven(f)
	if want := []string{"provider:network_type", "provider:segmentation_id", "segments"}; !slices.Equal(got, want) {
		t.Errorf("AdminOnlyGiven = %v, want %v", got, want)
	}
	f = decodeOne(t, PortSpec, `{"port": {"binding:profile": {}, "binding:host_id": "h", "binding:vnic_type": "normal"}}`, Update)
	if got, want := PortSpec.AdminOnlyGiven(f), []string{"binding:host_id", "binding:profile"}; !slices.Equal(got, want) {
		t.Errorf("AdminOnlyGiven = %v, want %v", got, want)
	}
	if got := PortSpec.AdminOnlyGiven(Fields{"name": "x", "unknown": 1}); len(got) != 0 {
		t.Errorf("AdminOnlyGiven = %v, want none", got)
	}
}

func TestSpecsAreConsistent(t *testing.T) {
	t.Parallel()
	for _, spec := range []*Spec{NetworkSpec, SubnetSpec, PortSpec, SubnetPoolSpec, AddressScopeSpec} {
		seen := map[string]bool{}
		for _, a := range spec.Attrs {
			if seen[a.Name] {
				t.Errorf("%s: attribute %s declared twice", spec.Singular, a.Name)
			}
			seen[a.Name] = true
			if (a.Post || a.Put) && a.Parse == nil {
				t.Errorf("%s: writable attribute %s has no Parse", spec.Singular, a.Name)
			}
			if a.Required && !a.Post {
				t.Errorf("%s: required attribute %s cannot be posted", spec.Singular, a.Name)
			}
			if got, ok := spec.Lookup(a.Name); !ok || got != a {
				t.Errorf("%s: Lookup(%s) = %v, %v", spec.Singular, a.Name, got, ok)
			}
		}
		if _, ok := spec.Lookup("nope"); ok {
			t.Errorf("%s: Lookup(nope) found something", spec.Singular)
		}
	}
}

// TestSpecConcurrentLookup runs first lookups concurrently on a fresh Spec,
// as HTTP handlers do; with -race it catches an unsynchronised lazy index.
func TestSpecConcurrentLookup(t *testing.T) {
	t.Parallel()
	spec := &Spec{Singular: "thing", Plural: "things", Attrs: append(standardAttrs(),
		&Attr{Name: "flag", Post: true, Put: true, Parse: ParseBool})}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"thing": map[string]any{"flag": i%2 == 0, "name": "n"}}
			items, _, err := spec.DecodeBody(body, Create)
			if err != nil || items[0]["flag"] != (i%2 == 0) {
				t.Errorf("DecodeBody = %v, %v", items, err)
			}
			if _, ok := spec.Lookup("flag"); !ok {
				t.Error("Lookup(flag) failed")
			}
		}()
	}
	wg.Wait()
}

package model

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/vland/vland/internal/segments"
)

func TestDecodeNetwork(t *testing.T) {
	t.Parallel()
	f := decodeOne(t, NetworkSpec, `{"network": {
		"name": "net1", "description": "d", "admin_state_up": "False", "shared": 1,
		"router:external": "yes", "mtu": "1400", "port_security_enabled": false,
		"tenant_id": "proj"}}`, Create)
	want := Fields{
		"name": "net1", "description": "d", "admin_state_up": false, "shared": true,
		"router:external": true, "mtu": int64(1400), "port_security_enabled": false,
		"project_id": "proj",
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("fields = %#v\nwant %#v", f, want)
	}
}

func TestDecodeNetworkProvider(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want SegmentRequest
		err  string
	}{
		{"vlan", `{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100}`,
			SegmentRequest{"vlan", "physnet1", 100}, ""},
		{"id as string", `{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": "100"}`,
			SegmentRequest{"vlan", "physnet1", 100}, ""},
		{"nulls", `{"provider:network_type": "vxlan", "provider:physical_network": null, "provider:segmentation_id": null}`,
			SegmentRequest{"vxlan", "", -1}, ""},
		{"type only", `{"provider:network_type": "flat"}`, SegmentRequest{"flat", "", -1}, ""},
		{"id only", `{"provider:segmentation_id": 0}`, SegmentRequest{"", "", 0}, ""},
		{"max vni", `{"provider:segmentation_id": 16777215}`, SegmentRequest{"", "", segments.MaxVNI}, ""},

		{"id too large", `{"provider:segmentation_id": 16777216}`, SegmentRequest{},
			"Invalid input for provider:segmentation_id. Reason: '16777216' is too large - must be no larger than '16777215'."},
		{"id negative", `{"provider:segmentation_id": -1}`, SegmentRequest{},
			"Invalid input for provider:segmentation_id. Reason: '-1' is too small - must be at least '0'."},
		{"id float", `{"provider:segmentation_id": 1.5}`, SegmentRequest{},
			"Invalid input for provider:segmentation_id. Reason: '1.5' is not an integer."},
		{"type null", `{"provider:network_type": null}`, SegmentRequest{},
			"Invalid input for provider:network_type. Reason: 'None' is not a valid string."},
		{"physnet number", `{"provider:physical_network": 1}`, SegmentRequest{},
			"Invalid input for provider:physical_network. Reason: '1' is not a valid string."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			items, _, err := decode(NetworkSpec, `{"network": `+tc.body+`}`, Create)
			if tc.err != "" {
				wantAPIErr(t, err, 400, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The service reads the decoded fields back with SegmentFromFields.
			sr, err := SegmentFromFields(items[0])
			if err != nil {
				t.Fatalf("SegmentFromFields(%v): %v", items[0], err)
			}
			if sr != tc.want {
				t.Errorf("segment = %+v, want %+v", sr, tc.want)
			}
		})
	}
}

func TestDecodeNetworkSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		segs string
		want []SegmentRequest
		err  string
	}{
		{"two", `[{"provider:network_type": "vlan", "provider:physical_network": "p1", "provider:segmentation_id": 5},
			{"provider:network_type": "vxlan", "provider:segmentation_id": null}]`,
			[]SegmentRequest{{"vlan", "p1", 5}, {"vxlan", "", -1}}, ""},
		{"empty element", `[{}]`, []SegmentRequest{{"", "", -1}}, ""},
		{"empty list", `[]`, nil, ""},

		{"not a list", `{"provider:network_type": "vlan"}`, nil, `Invalid input for segments. Reason: '{"provider:network_type":"vlan"}' is not a list.`},
		{"null", `null`, nil, "Invalid input for segments. Reason: 'None' is not a list."},
		{"element not a dict", `["vlan"]`, nil, "Invalid input for segments. Reason: 'vlan' is not a dictionary."},
		{"unknown key", `[{"provider:network_type": "vlan", "mtu": 1500}]`, nil,
			"~Validation of dictionary's keys failed. Expected keys: ['provider:network_type', 'provider:physical_network', 'provider:segmentation_id'] Provided keys: ['mtu', 'provider:network_type']"},
		{"bad id", `[{"provider:network_type": "vxlan", "provider:segmentation_id": "x"}]`, nil, "Invalid input for segments. Reason: 'x' is not an integer."},
		{"bad type", `[{"provider:network_type": 5}]`, nil, "Invalid input for segments. Reason: '5' is not a valid string."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			items, _, err := decode(NetworkSpec, `{"network": {"segments": `+tc.segs+`}}`, Create)
			if tc.err != "" {
				wantAPIErr(t, err, 400, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := items[0]["segments"].([]SegmentRequest)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("segments = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSegmentFromFieldsErrors(t *testing.T) {
	t.Parallel()
	for _, m := range []map[string]any{
		{"provider:network_type": 1},
		{"provider:physical_network": true},
		{"provider:segmentation_id": "abc"},
		{"provider:segmentation_id": json.Number("-3")},
	} {
		if sr, err := SegmentFromFields(m); err == nil {
			t.Errorf("SegmentFromFields(%v) = %+v, want an error", m, sr)
		}
	}
	sr, err := SegmentFromFields(map[string]any{})
	if err != nil || sr != (SegmentRequest{SegmentationID: -1}) {
		t.Errorf("SegmentFromFields({}) = %+v, %v", sr, err)
	}
}

func TestNetworkApply(t *testing.T) {
	t.Parallel()
	n := &Network{Standard: Standard{Name: "old", Description: "old"}, AdminStateUp: true, MTU: 1500}
	n.Apply(decodeOne(t, NetworkSpec, `{"network": {"name": "new", "admin_state_up": false, "mtu": 1400, "shared": "true", "router:external": 1, "port_security_enabled": "on"}}`, Update))
	if n.Name != "new" || n.Description != "old" || n.AdminStateUp || n.MTU != 1400 || !n.Shared || !n.External || !n.PortSecurityEnabled {
		t.Errorf("after Apply: %+v", n)
	}
	n.Apply(Fields{})
	if n.Name != "new" || n.MTU != 1400 {
		t.Errorf("empty Apply changed the network: %+v", n)
	}
	n.Apply(decodeOne(t, NetworkSpec, `{"network": {"description": ""}}`, Update))
	if n.Description != "" {
		t.Errorf("description = %q", n.Description)
	}
}

func sp(s string) *string { return &s }
func up(u uint32) *uint32 { return &u }

func testNetwork() *Network {
	return &Network{
		Standard: Standard{
			ID: netID, ProjectID: "proj", Name: "net1", Description: "d",
			CreatedAt: "2024-01-02T03:04:05Z", UpdatedAt: "2024-01-02T03:04:06Z", RevisionNumber: 3,
		},
		AdminStateUp: true, MTU: 1450, Status: "ACTIVE", PortSecurityEnabled: true,
	}
}

const netViewBase = `
	"id": "` + netID + `", "project_id": "proj", "tenant_id": "proj",
	"name": "net1", "description": "d", "tags": [],
	"created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-02T03:04:06Z", "revision_number": 3,
	"admin_state_up": true, "shared": false, "router:external": false, "mtu": 1450,
	"status": "ACTIVE", "subnets": [], "port_security_enabled": true, "availability_zone_hints": [], "availability_zones": [], "dns_domain": "",
	"ipv4_address_scope": null, "ipv6_address_scope": null`

func TestNetworkView(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Network)
		want string
	}{
		{"no segments", func(*Network) {}, `{` + netViewBase + `}`},
		{"vxlan", func(n *Network) {
			n.Segments = []segments.Segment{{NetworkType: "vxlan", SegmentationID: up(1234)}}
		}, `{` + netViewBase + `, "provider:network_type": "vxlan", "provider:physical_network": null, "provider:segmentation_id": 1234}`},
		{"flat", func(n *Network) {
			n.Segments = []segments.Segment{{NetworkType: "flat", PhysicalNetwork: sp("physnet1")}}
		}, `{` + netViewBase + `, "provider:network_type": "flat", "provider:physical_network": "physnet1", "provider:segmentation_id": null}`},
		{"local", func(n *Network) {
			n.Segments = []segments.Segment{{NetworkType: "local"}}
		}, `{` + netViewBase + `, "provider:network_type": "local", "provider:physical_network": null, "provider:segmentation_id": null}`},
		{"multi", func(n *Network) {
			n.Segments = []segments.Segment{
				{NetworkType: "vlan", PhysicalNetwork: sp("physnet1"), SegmentationID: up(100)},
				{NetworkType: "vxlan", SegmentationID: up(16777215)},
			}
		}, `{` + netViewBase + `, "segments": [
			{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100},
			{"provider:network_type": "vxlan", "provider:physical_network": null, "provider:segmentation_id": 16777215}]}`},
		{"subnets tags flags", func(n *Network) {
			n.Subnets = []string{subID, subID2}
			n.Tags = []string{"a", "b"}
			n.Shared, n.External, n.AdminStateUp, n.PortSecurityEnabled = true, true, false, false
			n.Status = "DOWN"
		}, `{"id": "` + netID + `", "project_id": "proj", "tenant_id": "proj",
			"name": "net1", "description": "d", "tags": ["a", "b"],
			"created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-02T03:04:06Z", "revision_number": 3,
			"admin_state_up": false, "shared": true, "router:external": true, "mtu": 1450,
			"status": "DOWN", "subnets": ["` + subID + `", "` + subID2 + `"], "port_security_enabled": false, "availability_zone_hints": [], "availability_zones": [], "dns_domain": "",
			"ipv4_address_scope": null, "ipv6_address_scope": null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := testNetwork()
			tc.mod(n)
			jsonEqual(t, n.View(), tc.want)
		})
	}
}

func TestNetworkAdminOnlyViewsAreRendered(t *testing.T) {
	t.Parallel()
	n := testNetwork()
	n.Segments = []segments.Segment{{NetworkType: "vxlan", SegmentationID: up(1)}}
	v := n.View()
	n.Segments = append(n.Segments, segments.Segment{NetworkType: "vxlan", SegmentationID: up(2)})
	multi := n.View()
	for _, k := range NetworkAdminOnlyViews {
		_, a := v[k]
		_, b := multi[k]
		if !a && !b {
			t.Errorf("admin-only view %q is never rendered", k)
		}
	}
}

func TestDecodeAsNetwork(t *testing.T) {
	t.Parallel()
	n := testNetwork()
	n.Segments = []segments.Segment{{NetworkType: "vlan", PhysicalNetwork: sp("physnet1"), SegmentationID: up(42)}}
	n.Subnets = []string{subID}
	data, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeAs[Network]()(data)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := v.(*Cached)
	if !ok {
		t.Fatalf("DecodeAs returned %T", v)
	}
	got, ok := c.Obj.(*Network)
	if !ok {
		t.Fatalf("Obj is %T", c.Obj)
	}
	if !reflect.DeepEqual(got, n) {
		t.Errorf("round trip = %+v\nwant %+v", got, n)
	}
	if !reflect.DeepEqual(c.View, n.View()) {
		t.Errorf("cached view = %v\nwant %v", c.View, n.View())
	}
	if c.Obj.Std() != &got.Standard {
		t.Error("Std() does not return the embedded Standard")
	}
	if _, err := DecodeAs[Network]()([]byte(`{"mtu": "x"}`)); err == nil {
		t.Error("DecodeAs of bad JSON: no error")
	}
}

func TestStandardTouch(t *testing.T) {
	t.Parallel()
	s := Standard{RevisionNumber: 4, UpdatedAt: "2000-01-01T00:00:00Z"}
	s.Touch()
	if s.RevisionNumber != 5 || s.UpdatedAt == "2000-01-01T00:00:00Z" || len(s.UpdatedAt) != len(TimeFormat) {
		t.Errorf("after Touch: %+v", s)
	}
	if s.UpdatedAt[len(s.UpdatedAt)-1] != 'Z' {
		t.Errorf("UpdatedAt %q is not UTC", s.UpdatedAt)
	}
}

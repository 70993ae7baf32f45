package model

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vland/vland/internal/apierr"
)

// ruleFrom decodes a rule create body and builds the rule.
func ruleFrom(t *testing.T, body string) (*SecurityGroupRule, error) {
	t.Helper()
	items, _, err := decode(SecurityGroupRuleSpec, `{"security_group_rule": `+body+`}`, Create)
	if err != nil {
		return nil, err
	}
	return NewSecurityGroupRule(items[0])
}

// TestRuleValidationMatchesNeutron runs rule bodies through the attribute
// map and NewSecurityGroupRule: each invalid combination is refused with
// Neutron's error type, status and message, each valid one normalised as
// Neutron stores it.
func TestRuleValidationMatchesNeutron(t *testing.T) {
	base := `"security_group_id": "` + sgID + `", "direction": "ingress"`
	errCases := []struct {
		name, body string
		status     int
		typ, msg   string
	}{
		{"no direction", `{"security_group_id": "` + sgID + `"}`, 400, "HTTPBadRequest", "Failed to parse request. Required attribute 'direction' not specified"},
		{"bad direction", `{"security_group_id": "` + sgID + `", "direction": "up"}`, 400, "HTTPBadRequest", "Invalid input for direction. Reason: 'up' is not in ['ingress', 'egress']."},
		{"no group", `{"direction": "egress"}`, 400, "HTTPBadRequest", "Failed to parse request. Required attribute 'security_group_id' not specified"},
		{"unknown protocol", `{` + base + `, "protocol": "foo"}`, 400, "SecurityGroupRuleInvalidProtocol",
			"Security group rule protocol foo not supported. Only protocol values (None, 'any', 'ah', 'dccp', 'egp', 'esp', 'gre', 'hopopt', 'icmp', 'igmp', 'ip', 'ipip', 'ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', 'ospf', 'pgm', 'rsvp', 'sctp', 'tcp', 'udp', 'udplite', 'vrrp') and integer representations [0 to 255] are supported."},
		{"protocol 256", `{` + base + `, "protocol": 256}`, 400, "SecurityGroupRuleInvalidProtocol", "~protocol 256 not supported"},
		{"protocol -1", `{` + base + `, "protocol": "-1"}`, 400, "SecurityGroupRuleInvalidProtocol", "~protocol -1 not supported"},
		{"protocol bool", `{` + base + `, "protocol": true}`, 400, "SecurityGroupRuleInvalidProtocol", "~protocol true not supported"},
		{"ethertype", `{` + base + `, "ethertype": "IPv5"}`, 400, "SecurityGroupRuleInvalidEtherType", "Security group rule for ethertype 'IPv5' not supported. Allowed values are ['IPv4', 'IPv6']."},
		{"port not a number", `{` + base + `, "protocol": "tcp", "port_range_min": "x"}`, 400, "SecurityGroupInvalidPortValue", "Invalid value for port x"},
		{"port too large", `{` + base + `, "protocol": "tcp", "port_range_min": 65536}`, 400, "SecurityGroupInvalidPortValue", "Invalid value for port 65536"},
		{"port negative", `{` + base + `, "protocol": "tcp", "port_range_max": -1}`, 400, "SecurityGroupInvalidPortValue", "Invalid value for port -1"},
		{"ports without protocol", `{` + base + `, "port_range_min": 22, "port_range_max": 22}`, 400, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given."},
		{"ports with any", `{` + base + `, "protocol": "any", "port_range_min": 22}`, 400, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given."},
		{"min > max", `{` + base + `, "protocol": "tcp", "port_range_min": 23, "port_range_max": 22}`, 400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max"},
		{"min only", `{` + base + `, "protocol": "udp", "port_range_min": 53}`, 400, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max"},
		{"port zero", `{` + base + `, "protocol": "6", "port_range_min": 0, "port_range_max": 10}`, 400, "SecurityGroupInvalidPortValue", "Invalid value for port 0"},
		{"icmp type 256", `{` + base + `, "protocol": "icmp", "port_range_min": 256}`, 400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP type (port_range_min) 256. It must be 0 to 255."},
		{"icmp code 300", `{` + base + `, "protocol": "icmp", "port_range_min": 8, "port_range_max": 300}`, 400, "SecurityGroupInvalidIcmpValue", "Invalid value for ICMP code (port_range_max) 300. It must be 0 to 255."},
		{"icmp code without type", `{` + base + `, "protocol": "icmp", "port_range_max": 0}`, 400, "SecurityGroupMissingIcmpType", "ICMP code (port-range-max) 0 is provided but ICMP type (port-range-min) is missing."},
		{"ports for gre", `{` + base + `, "protocol": "gre", "port_range_min": 1, "port_range_max": 2}`, 400, "SecurityGroupInvalidProtocolForPort", "Ports cannot be specified for protocol 47. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."},
		{"bad prefix", `{` + base + `, "remote_ip_prefix": "10.0.0.0/33"}`, 400, "InvalidCIDR", "Invalid CIDR 10.0.0.0/33 given as IP prefix."},
		{"v6 prefix v4 rule", `{` + base + `, "remote_ip_prefix": "2001:db8::/64"}`, 400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype IPv4 for CIDR 2001:db8::/64"},
		{"v4 prefix v6 rule", `{` + base + `, "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}`, 400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype IPv6 for CIDR 10.0.0.0/8"},
		{"ipv6-icmp on IPv4", `{` + base + `, "protocol": "ipv6-icmp"}`, 400, "SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype IPv4 for protocol ipv6-icmp."},
		{"58 on IPv4", `{` + base + `, "protocol": 58}`, 400, "SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype IPv4 for protocol 58."},
		{"prefix and group", `{` + base + `, "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "` + sgID2 + `"}`, 400, "SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided."},
		{"group and address group", `{` + base + `, "remote_address_group_id": "` + sgID + `", "remote_group_id": "` + sgID2 + `"}`, 400, "SecurityGroupMultipleRemoteEntites", "~Only one of"},
		{"unknown attribute", `{` + base + `, "name": "x"}`, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'name'"},
		{"read-only", `{` + base + `, "normalized_cidr": "10.0.0.0/8"}`, 400, "HTTPBadRequest", "Attribute 'normalized_cidr' not allowed in POST"},
		{"long group id", `{"security_group_id": "` + sgID + `x", "direction": "ingress"}`, 400, "HTTPBadRequest", "~exceeds maximum length of 36"},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ruleFrom(t, c.body)
			var e *apierr.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want %d %s", err, c.status, c.typ)
			}
			okMsg := e.Message == c.msg || strings.HasPrefix(c.msg, "~") && strings.Contains(e.Message, c.msg[1:])
			if e.Status != c.status || e.Type != c.typ || !okMsg {
				t.Errorf("got %d %s %q, want %d %s %q", e.Status, e.Type, e.Message, c.status, c.typ, c.msg)
			}
		})
	}

	good := []struct {
		name, body string
		want       map[string]any // view attributes
	}{
		{"defaults", `{` + base + `}`, map[string]any{"ethertype": "IPv4", "protocol": nil, "port_range_min": nil, "remote_ip_prefix": nil, "normalized_cidr": nil}},
		{"protocol by name, case", `{` + base + `, "protocol": "TCP", "port_range_min": "22", "port_range_max": 22}`, map[string]any{"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}},
		{"protocol number", `{` + base + `, "protocol": 6}`, map[string]any{"protocol": "6"}},
		{"any is none", `{` + base + `, "protocol": "any"}`, map[string]any{"protocol": nil}},
		{"null protocol", `{` + base + `, "protocol": null}`, map[string]any{"protocol": nil}},
		{"full range is none", `{` + base + `, "protocol": "udp", "port_range_min": 1, "port_range_max": 65535}`, map[string]any{"port_range_min": nil, "port_range_max": nil}},
		{"ethertype case", `{` + base + `, "ethertype": "ipv6"}`, map[string]any{"ethertype": "IPv6"}},
		{"icmp on IPv6 is ipv6-icmp", `{` + base + `, "ethertype": "IPv6", "protocol": "icmp", "port_range_min": 128}`, map[string]any{"protocol": "ipv6-icmp", "port_range_min": 128, "port_range_max": nil}},
		{"icmpv6 alias", `{` + base + `, "ethertype": "IPv6", "protocol": "icmpv6"}`, map[string]any{"protocol": "ipv6-icmp"}},
		{"1 on IPv6 is 58", `{` + base + `, "ethertype": "IPv6", "protocol": "1"}`, map[string]any{"protocol": "58"}},
		{"icmp type and code", `{` + base + `, "protocol": "icmp", "port_range_min": 8, "port_range_max": 0}`, map[string]any{"port_range_min": 8, "port_range_max": 0}},
		{"address is a host prefix", `{` + base + `, "remote_ip_prefix": "10.1.2.3"}`, map[string]any{"remote_ip_prefix": "10.1.2.3/32", "normalized_cidr": "10.1.2.3/32"}},
		{"host bits kept, normalised apart", `{` + base + `, "remote_ip_prefix": "10.1.2.3/24"}`, map[string]any{"remote_ip_prefix": "10.1.2.3/24", "normalized_cidr": "10.1.2.0/24"}},
		{"IPv6 prefix", `{` + base + `, "ethertype": "IPv6", "remote_ip_prefix": "2001:DB8::1/64"}`, map[string]any{"remote_ip_prefix": "2001:db8::1/64", "normalized_cidr": "2001:db8::/64"}},
		{"empty prefix", `{` + base + `, "remote_ip_prefix": ""}`, map[string]any{"remote_ip_prefix": nil}},
		{"remote group", `{` + base + `, "remote_group_id": "` + sgID2 + `"}`, map[string]any{"remote_group_id": sgID2, "remote_address_group_id": nil}},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			r, err := ruleFrom(t, c.body)
			if err != nil {
				t.Fatal(err)
			}
			// Through JSON and back, as the store keeps it.
			data, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back SecurityGroupRule
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			v := back.View()
			for k, want := range c.want {
				if got := v[k]; got != want {
					t.Errorf("%s = %#v, want %#v (stored %s)", k, got, want, data)
				}
			}
		})
	}
}

// TestRuleKeysFindDuplicatesAsNeutron: rules matching the same traffic
// have one key whatever their spelling; rules that differ in anything
// Neutron compares do not.
func TestRuleKeysFindDuplicatesAsNeutron(t *testing.T) {
	base := `"security_group_id": "` + sgID + `", "direction": "ingress"`
	key := func(body string) string {
		r, err := ruleFrom(t, `{`+base+body+`}`)
		if err != nil {
			t.Fatal(err)
		}
		return r.Key()
	}
	same := [][]string{
		{`, "protocol": "tcp", "port_range_min": 22, "port_range_max": 22`, `, "protocol": "6", "port_range_min": "22", "port_range_max": 22`},
		{``, `, "protocol": "any"`, `, "remote_ip_prefix": "0.0.0.0/0"`},
		{`, "ethertype": "IPv6", "protocol": "icmpv6"`, `, "ethertype": "IPv6", "protocol": 58`},
		{`, "protocol": "udp"`, `, "protocol": "udp", "port_range_min": 1, "port_range_max": 65535`},
	}
	for _, set := range same {
		for _, b := range set[1:] {
			if key(set[0]) != key(b) {
				t.Errorf("%s and %s have different keys", set[0], b)
			}
		}
	}
	distinct := []string{``, `, "ethertype": "IPv6"`, `, "protocol": "tcp"`, `, "protocol": "tcp", "port_range_min": 22, "port_range_max": 22`,
		`, "protocol": "tcp", "port_range_min": 22, "port_range_max": 23`, `, "remote_ip_prefix": "10.0.0.0/8"`,
		`, "remote_group_id": "` + sgID2 + `"`, `, "remote_address_group_id": "` + sgID2 + `"`}
	var keys []string
	for _, b := range distinct {
		keys = append(keys, key(b))
	}
	egress, err := ruleFrom(t, `{"security_group_id": "`+sgID+`", "direction": "egress"}`)
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, egress.Key())
	slices.Sort(keys)
	if len(slices.Compact(keys)) != len(distinct)+1 {
		t.Errorf("distinct rules share keys")
	}
}

// TestDefaultRulesAreNeutrons: a default group starts with egress and
// ingress-from-itself for both ether types, another group with egress only.
func TestDefaultRulesAreNeutrons(t *testing.T) {
	g := &SecurityGroup{Standard: Standard{ID: sgID}, IsDefault: true}
	got := map[string]bool{}
	for _, r := range DefaultRules(g) {
		if !r.BelongsToDefault || r.Protocol != "" || r.PortRangeMin != nil || r.RemoteIPPrefix.IsValid() {
			t.Errorf("default rule %+v", r)
		}
		got[r.Direction+"/"+r.EtherType+"/"+r.RemoteGroupID] = true
	}
	want := map[string]bool{"egress/IPv4/": true, "egress/IPv6/": true, "ingress/IPv4/" + sgID: true, "ingress/IPv6/" + sgID: true}
	if len(got) != 4 || !mapsEqual(got, want) {
		t.Errorf("default group rules %v, want %v", got, want)
	}
	g.IsDefault = false
	if rules := DefaultRules(g); len(rules) != 2 || rules[0].Direction != Egress || rules[1].Direction != Egress {
		t.Errorf("new group rules %+v", rules)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestSecurityGroupView: Neutron's attributes, rules embedded.
func TestSecurityGroupView(t *testing.T) {
	g := &SecurityGroup{Standard: Standard{ID: sgID, ProjectID: "p", Name: "web", Tags: []string{}}, Stateful: true}
	g.Rules = DefaultRules(g)
	v := g.View()
	for _, k := range []string{"id", "name", "description", "project_id", "tenant_id", "stateful", "shared", "security_group_rules",
		"tags", "created_at", "updated_at", "revision_number"} {
		if _, ok := v[k]; !ok {
			t.Errorf("view lacks %s", k)
		}
	}
	if _, ok := v["is_default"]; ok {
		t.Error("view shows is_default")
	}
	if rules := v["security_group_rules"].([]any); len(rules) != 2 {
		t.Errorf("rules %v", rules)
	}
	rv := g.Rules[0].View()
	for _, k := range []string{"name", "tags"} {
		if _, ok := rv[k]; ok {
			t.Errorf("rule view has %s", k)
		}
	}
}

// TestSubnetListNormalises: address group addresses as neutron-lib's
// subnet_list validator takes them, host bits cleared.
func TestSubnetListNormalises(t *testing.T) {
	v, err := ParseSubnetList([]any{"10.0.0.1/24", "2001:db8::5/64", "192.168.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8::/64"), netip.MustParsePrefix("192.168.1.0/24")}
	if !slices.Equal(v.([]netip.Prefix), want) {
		t.Errorf("got %v, want %v", v, want)
	}
	for in, msg := range map[string]string{
		`["10.0.0.1"]`:                 "'10.0.0.1' isn't a recognized IP subnet cidr, '10.0.0.1/32' is recommended",
		`["nope/8"]`:                   "'nope/8' is not a valid IP subnet",
		`["10.0.0.0/8", "10.0.0.0/8"]`: "Duplicate items in the list: '10.0.0.0/8'",
		`"10.0.0.0/8"`:                 "'10.0.0.0/8' is not a list",
		`[5]`:                          "'5' is not a valid IP subnet",
	} {
		var raw any
		d := json.NewDecoder(strings.NewReader(in))
		d.UseNumber()
		if err := d.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSubnetList(raw); err == nil || err.Error() != msg {
			t.Errorf("%s: got %v, want %q", in, err, msg)
		}
	}
}

// FuzzSecurityGroupRule: whatever a rule body holds, decoding and building
// the rule either succeeds with a rule that passes its own checks again or
// fails with a 4xx API error; it never panics.
func FuzzSecurityGroupRule(f *testing.F) {
	for _, s := range []string{
		`{"security_group_rule": {"security_group_id": "` + sgID + `", "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}}`,
		`{"security_group_rule": {"security_group_id": "` + sgID + `", "direction": "egress", "ethertype": "ipv6", "protocol": "1", "port_range_min": "128"}}`,
		`{"security_group_rule": {"security_group_id": "` + sgID + `", "direction": "ingress", "remote_ip_prefix": "::ffff:10.0.0.1/120"}}`,
		`{"security_group_rule": {"security_group_id": "x", "direction": "ingress", "protocol": 1.5, "port_range_min": 1e30}}`,
		`{"security_group_rules": [{"security_group_id": "` + sgID + `", "direction": "ingress", "protocol": [], "ethertype": {}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := DecodeJSON(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		items, _, err := SecurityGroupRuleSpec.DecodeBody(body, Create)
		if err != nil {
			return
		}
		for _, it := range items {
			r, err := NewSecurityGroupRule(it)
			if err != nil {
				var e *apierr.Error
				if !errors.As(err, &e) || e.Status < 400 || e.Status >= 500 {
					t.Fatalf("input %q: error %v", data, err)
				}
				continue
			}
			again := *r
			if err := again.validate(); err != nil || again.Key() != r.Key() {
				t.Fatalf("input %q: normalised rule %+v fails its checks (%v) or changes", data, r, err)
			}
		}
	})
}

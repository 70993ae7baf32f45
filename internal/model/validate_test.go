package model

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// parseCase is one input to a Parse function: the JSON text of the value,
// and either the typed result or the reason for refusing it.
type parseCase struct {
	in   string // JSON
	want any    // result when err == ""
	err  string // exact reason, or "~fragment"
}

func runParse(t *testing.T, name string, parse func(any) (any, error), cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		var v any
		dec := json.NewDecoder(strings.NewReader(tc.in))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%s: bad test JSON %s: %v", name, tc.in, err)
		}
		got, err := parse(v)
		if tc.err != "" {
			if err == nil {
				t.Errorf("%s(%s) = %#v, want error %q", name, tc.in, got, tc.err)
				continue
			}
			if sub, ok := strings.CutPrefix(tc.err, "~"); ok {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("%s(%s) error %q, want it to contain %q", name, tc.in, err, sub)
				}
			} else if err.Error() != tc.err {
				t.Errorf("%s(%s) error %q\n  want %q", name, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s(%s): %v", name, tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s(%s) = %#v, want %#v", name, tc.in, got, tc.want)
		}
	}
}

func TestParseBool(t *testing.T) {
	t.Parallel()
	// neutron-lib's convert_to_boolean is oslo's bool_from_string(strict=True).
	runParse(t, "ParseBool", ParseBool, []parseCase{
		{`true`, true, ""},
		{`false`, false, ""},
		{`"true"`, true, ""},
		{`"True"`, true, ""},
		{`"TRUE"`, true, ""},
		{`"false"`, false, ""},
		{`"False"`, false, ""},
		{`"1"`, true, ""},
		{`"0"`, false, ""},
		{`1`, true, ""},
		{`0`, false, ""},
		{`-0`, false, ""},
		{`"t"`, true, ""},
		{`"f"`, false, ""},
		{`"yes"`, true, ""},
		{`"Yes"`, true, ""},
		{`"no"`, false, ""},
		{`"y"`, true, ""},
		{`"n"`, false, ""},
		{`"on"`, true, ""},
		{`"off"`, false, ""},
		{`" true "`, true, ""},
		{`"\tfalse\n"`, false, ""},

		{`2`, nil, "'2' cannot be converted to boolean"},
		{`-1`, nil, "'-1' cannot be converted to boolean"},
		{`1.0`, nil, "'1.0' cannot be converted to boolean"},
		{`1e0`, nil, "'1e0' cannot be converted to boolean"},
		{`"2"`, nil, "'2' cannot be converted to boolean"},
		{`""`, nil, "'' cannot be converted to boolean"},
		{`"maybe"`, nil, "'maybe' cannot be converted to boolean"},
		{`"truee"`, nil, "'truee' cannot be converted to boolean"},
		{`"1.0"`, nil, "'1.0' cannot be converted to boolean"},
		{`null`, nil, "'None' cannot be converted to boolean"},
		{`[]`, nil, "'[]' cannot be converted to boolean"},
		{`{}`, nil, "'{}' cannot be converted to boolean"},
		{`[true]`, nil, "'[true]' cannot be converted to boolean"},
	})
}

func TestParseInt(t *testing.T) {
	t.Parallel()
	runParse(t, "ParseInt(68,65535)", ParseInt(68, 65535), []parseCase{
		{`1500`, int64(1500), ""},
		{`"1500"`, int64(1500), ""},
		{`68`, int64(68), ""},
		{`65535`, int64(65535), ""},
		{`67`, nil, "'67' is too small - must be at least '68'"},
		{`-5`, nil, "'-5' is too small - must be at least '68'"},
		{`65536`, nil, "'65536' is too large - must be no larger than '65535'"},
		{`"99999"`, nil, "'99999' is too large - must be no larger than '65535'"},
		{`1500.5`, nil, "'1500.5' is not an integer"},
		{`1e3`, nil, "'1e3' is not an integer"},
		{`"1500.0"`, nil, "'1500.0' is not an integer"},
		{`"abc"`, nil, "'abc' is not an integer"},
		{`""`, nil, "'' is not an integer"},
		{`99999999999999999999`, nil, "'99999999999999999999' is not an integer"},
		{`true`, nil, "'true' is not an integer"},
		{`null`, nil, "'None' is not an integer"},
		{`[1500]`, nil, "'[1500]' is not an integer"},
		{`{"a": 1}`, nil, `'{"a":1}' is not an integer`},
	})
}

func TestParseString(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 255)
	runParse(t, "ParseString(255)", ParseString(255), []parseCase{
		{`""`, "", ""},
		{`"net1"`, "net1", ""},
		{`"` + long + `"`, long, ""},
		// The limit counts characters, as Python does, not bytes.
		{`"` + strings.Repeat("é", 255) + `"`, strings.Repeat("é", 255), ""},
		{`"` + long + `a"`, nil, "'" + long + "a' exceeds maximum length of 255"},
		{`"` + strings.Repeat("é", 256) + `"`, nil, "~exceeds maximum length of 255"},
		{`1`, nil, "'1' is not a valid string"},
		{`true`, nil, "'true' is not a valid string"},
		{`null`, nil, "'None' is not a valid string"},
		{`["a"]`, nil, `'["a"]' is not a valid string`},
	})
	runParse(t, "ParseString(0)", ParseString(0), []parseCase{
		{`"` + strings.Repeat("a", 5000) + `"`, strings.Repeat("a", 5000), ""},
	})
}

func TestParseUUID(t *testing.T) {
	t.Parallel()
	runParse(t, "ParseUUID", ParseUUID, []parseCase{
		{`"` + netID + `"`, netID, ""},
		{`"` + strings.ToUpper(netID) + `"`, netID, ""}, // canonical: lower case
		{`"00000000-0000-0000-0000-000000000000"`, "00000000-0000-0000-0000-000000000000", ""},
		{`"` + netID[:35] + `"`, nil, "'" + netID[:35] + "' is not a valid UUID"},
		{`"` + netID + `0"`, nil, "~is not a valid UUID"},
		{`"` + strings.ReplaceAll(netID, "-", "") + `"`, nil, "~is not a valid UUID"},
		{`"{` + netID + `}"`, nil, "~is not a valid UUID"},
		{`"urn:uuid:` + netID + `"`, nil, "~is not a valid UUID"},
		{`"4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6g"`, nil, "~is not a valid UUID"},
		{`"4e9c1c4a0b6e-4e8b-9d1b-1a2b3c4d-5e6f"`, nil, "~is not a valid UUID"},
		{`" ` + netID[1:] + `"`, nil, "~is not a valid UUID"},
		{`""`, nil, "'' is not a valid UUID"},
		{`1`, nil, "'1' is not a valid UUID"},
		{`null`, nil, "'None' is not a valid UUID"},
	})
	runParse(t, "ParseUUIDOrNull", ParseUUIDOrNull, []parseCase{
		{`null`, "", ""},
		{`"` + netID + `"`, netID, ""},
		{`""`, nil, "'' is not a valid UUID"},
	})
	runParse(t, "ParseUUIDList", ParseUUIDList, []parseCase{
		{`[]`, []string{}, ""},
		{`["` + sgID + `", "` + sgID2 + `"]`, []string{sgID, sgID2}, ""},
		{`["` + sgID + `", "` + sgID + `"]`, nil, "Duplicate items in the list: '" + sgID + "'"},
		// Duplicates are found after canonicalisation.
		{`["` + sgID + `", "` + strings.ToUpper(sgID) + `"]`, nil, "Duplicate items in the list: '" + sgID + "'"},
		{`["` + sgID + `", "x"]`, nil, "'x' is not a valid UUID"},
		{`"` + sgID + `"`, nil, "'" + sgID + "' is not a list"},
		{`null`, nil, "'None' is not a list"},
		{`{}`, nil, "'{}' is not a list"},
	})
}

func TestParseIP(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr
	runParse(t, "ParseIP", ParseIP, []parseCase{
		{`"10.0.0.1"`, a("10.0.0.1"), ""},
		{`"0.0.0.0"`, a("0.0.0.0"), ""},
		{`"255.255.255.255"`, a("255.255.255.255"), ""},
		{`"2001:db8::1"`, a("2001:db8::1"), ""},
		{`"2001:DB8:0:0:0:0:0:1"`, a("2001:db8::1"), ""},
		{`"::"`, a("::"), ""},
		{`"::ffff:10.0.0.1"`, a("10.0.0.1"), ""}, // IPv4-mapped becomes IPv4

		{`"010.0.0.1"`, nil, "'010.0.0.1' is not a valid IP address"}, // ambiguous octal
		{`"10.0.0"`, nil, "~is not a valid IP address"},
		{`"10.0.0.256"`, nil, "~is not a valid IP address"},
		{`"10.0.0.1/24"`, nil, "~is not a valid IP address"},
		{`" 10.0.0.1"`, nil, "~is not a valid IP address"},
		{`"10.0.0.1 "`, nil, "~is not a valid IP address"},
		{`"fe80::1%eth0"`, nil, "'fe80::1%eth0' is not a valid IP address"},
		{`"2001:db8:::1"`, nil, "~is not a valid IP address"},
		{`"0x0a000001"`, nil, "~is not a valid IP address"},
		{`"10"`, nil, "~is not a valid IP address"},
		{`""`, nil, "'' is not a valid IP address"},
		{`167772161`, nil, "'167772161' is not a valid IP address"},
		{`null`, nil, "'None' is not a valid IP address"},
		{`["10.0.0.1"]`, nil, `'["10.0.0.1"]' is not a valid IP address`},
	})
	runParse(t, "ParseIPOrNull", ParseIPOrNull, []parseCase{
		{`null`, netip.Addr{}, ""},
		{`"10.0.0.1"`, a("10.0.0.1"), ""},
		{`""`, nil, "'' is not a valid IP address"},
	})
}

func TestParseCIDR(t *testing.T) {
	t.Parallel()
	p := netip.MustParsePrefix
	runParse(t, "ParseCIDR", ParseCIDR, []parseCase{
		{`"10.0.0.0/24"`, p("10.0.0.0/24"), ""},
		{`"10.0.0.0/8"`, p("10.0.0.0/8"), ""},
		{`"10.0.0.4/32"`, p("10.0.0.4/32"), ""},
		{`"0.0.0.0/0"`, p("0.0.0.0/0"), ""},
		{`"2001:db8::/64"`, p("2001:db8::/64"), ""},
		{`"2001:DB8::/64"`, p("2001:db8::/64"), ""},
		{`"2001:db8::1/128"`, p("2001:db8::1/128"), ""},

		// Host bits set.
		{`"10.0.0.1/24"`, nil, "'10.0.0.1/24' isn't a recognized IP subnet cidr, '10.0.0.0/24' is recommended"},
		{`"10.0.0.255/23"`, nil, "'10.0.0.255/23' isn't a recognized IP subnet cidr, '10.0.0.0/23' is recommended"},
		{`"2001:db8::1/64"`, nil, "'2001:db8::1/64' isn't a recognized IP subnet cidr, '2001:db8::/64' is recommended"},

		{`"10.0.0.0/33"`, nil, "'10.0.0.0/33' is not a valid IP subnet"},
		{`"2001:db8::/129"`, nil, "'2001:db8::/129' is not a valid IP subnet"},
		{`"10.0.0.0/-1"`, nil, "~is not a valid IP subnet"},
		{`"10.0.0.0/024"`, nil, "~is not a valid IP subnet"},
		{`"10.0.0/24"`, nil, "~is not a valid IP subnet"},
		{`"10.0.0.0"`, nil, "~is not a valid IP subnet"},
		{`" 10.0.0.0/24"`, nil, "~is not a valid IP subnet"},
		{`"10.0.0.0/24 "`, nil, "~is not a valid IP subnet"},
		{`"fe80::%eth0/64"`, nil, "~is not a valid IP subnet"},
		{`""`, nil, "'' is not a valid IP subnet"},
		{`24`, nil, "'24' is not a valid IP subnet"},
		{`null`, nil, "'None' is not a valid IP subnet"},
	})
	runParse(t, "ParseIPOrCIDR", ParseIPOrCIDR, []parseCase{
		{`"10.0.0.5"`, p("10.0.0.5/32"), ""},
		{`"2001:db8::5"`, p("2001:db8::5/128"), ""},
		{`"10.0.0.0/24"`, p("10.0.0.0/24"), ""},
		{`"10.0.0.5/24"`, p("10.0.0.0/24"), ""},
		{`"::ffff:10.0.0.5"`, p("10.0.0.5/32"), ""},
		{`"10.0.0.0/33"`, nil, "'10.0.0.0/33' is not a valid IP subnet"},
		{`"fe80::1%eth0"`, nil, "~is not a valid IP subnet"},
		{`"x"`, nil, "'x' is not a valid IP subnet"},
		{`null`, nil, "'None' is not a valid IP subnet"},
		{`5`, nil, "'5' is not a valid IP subnet"},
	})
}

func TestParseMAC(t *testing.T) {
	t.Parallel()
	runParse(t, "ParseMAC", ParseMAC, []parseCase{
		{`"fa:16:3e:11:22:33"`, "fa:16:3e:11:22:33", ""},
		{`"FA:16:3E:AB:CD:EF"`, "fa:16:3e:ab:cd:ef", ""},
		{`"fa-16-3e-11-22-33"`, "fa:16:3e:11:22:33", ""},
		{`"fa16.3e11.2233"`, "fa:16:3e:11:22:33", ""},
		{`"02:00:00:00:00:00"`, "02:00:00:00:00:00", ""}, // locally administered unicast
		{`"00:00:00:00:00:01"`, "00:00:00:00:00:01", ""},
		{`"fe:ff:ff:ff:ff:ff"`, "fe:ff:ff:ff:ff:ff", ""},

		{`"00:00:00:00:00:00"`, nil, "'00:00:00:00:00:00' is not a valid MAC address"},
		{`"ff:ff:ff:ff:ff:ff"`, nil, "'ff:ff:ff:ff:ff:ff' is not a valid MAC address"},
		{`"01:00:5e:00:00:01"`, nil, "'01:00:5e:00:00:01' is not a valid MAC address"}, // IPv4 multicast
		{`"33:33:00:00:00:01"`, nil, "~is not a valid MAC address"},                    // IPv6 multicast
		{`"fb:16:3e:11:22:33"`, nil, "~is not a valid MAC address"},                    // group bit
		{`"fa:16:3e:11:22"`, nil, "~is not a valid MAC address"},
		{`"fa:16:3e:11:22:33:44:55"`, nil, "~is not a valid MAC address"}, // EUI-64
		{`"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"`, nil, "~is not a valid MAC address"},
		{`"fa:16:3e:11:22:3g"`, nil, "~is not a valid MAC address"},
		{`"fa:16:3e:11:22:33 "`, nil, "~is not a valid MAC address"},
		{`"fa:16:3e:11-22-33"`, nil, "~is not a valid MAC address"},
		{`""`, nil, "'' is not a valid MAC address"},
		{`null`, nil, "'None' is not a valid MAC address"},
		{`123`, nil, "'123' is not a valid MAC address"},
	})
}

func TestParseDict(t *testing.T) {
	t.Parallel()
	runParse(t, "ParseDict", ParseDict, []parseCase{
		{`{}`, map[string]any{}, ""},
		{`null`, map[string]any{}, ""},
		{`{"a": {"b": [1]}}`, map[string]any{"a": map[string]any{"b": []any{json.Number("1")}}}, ""},
		{`[]`, nil, "'[]' is not a dictionary"},
		{`"a"`, nil, "'a' is not a dictionary"},
		{`1`, nil, "'1' is not a dictionary"},
	})
}

func TestParseOneOf(t *testing.T) {
	t.Parallel()
	runParse(t, "ParseOneOf", ParseOneOf("a", "b"), []parseCase{
		{`"a"`, "a", ""},
		{`"b"`, "b", ""},
		{`"A"`, nil, "'A' is not in ['a', 'b']"},
		{`""`, nil, "'' is not in ['a', 'b']"},
		{`null`, nil, "'None' is not in ['a', 'b']"},
		{`1`, nil, "'1' is not in ['a', 'b']"},
	})
	runParse(t, "ParseOneOfOrNull", ParseOneOfOrNull("a", "b"), []parseCase{
		{`null`, "", ""},
		{`"a"`, "a", ""},
		{`""`, nil, "'' is not in ['a', 'b']"},
	})
}

func TestShow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    any
		want string
	}{
		{nil, "None"},
		{"x", "x"},
		{json.Number("1.50"), "1.50"},
		{true, "true"},
		{[]any{"a", json.Number("1")}, `["a",1]`},
		{map[string]any{"k": nil}, `{"k":null}`},
		{func() {}, "~0x"}, // unmarshalable: falls back to fmt
	}
	for _, tc := range tests {
		got := show(tc.v)
		if sub, ok := strings.CutPrefix(tc.want, "~"); ok {
			if !strings.Contains(got, sub) {
				t.Errorf("show(%#v) = %q", tc.v, got)
			}
		} else if got != tc.want {
			t.Errorf("show(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestInvalidAttrMessages checks validation errors reach the client worded
// as Neutron's: "Invalid input for <attr>. Reason: <reason>."
func TestInvalidAttrMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec *Spec
		body string
		op   Op
		msg  string
	}{
		{NetworkSpec, `{"network": {"admin_state_up": "maybe"}}`, Create, "Invalid input for admin_state_up. Reason: 'maybe' cannot be converted to boolean."},
		{NetworkSpec, `{"network": {"shared": 2}}`, Update, "Invalid input for shared. Reason: '2' cannot be converted to boolean."},
		{NetworkSpec, `{"network": {"router:external": null}}`, Create, "Invalid input for router:external. Reason: 'None' cannot be converted to boolean."},
		{NetworkSpec, `{"network": {"port_security_enabled": []}}`, Create, "Invalid input for port_security_enabled. Reason: '[]' cannot be converted to boolean."},
		{NetworkSpec, `{"network": {"mtu": 10}}`, Create, "Invalid input for mtu. Reason: '10' is too small - must be at least '68'."},
		{NetworkSpec, `{"network": {"mtu": "big"}}`, Update, "Invalid input for mtu. Reason: 'big' is not an integer."},
		{NetworkSpec, `{"network": {"name": 5}}`, Create, "Invalid input for name. Reason: '5' is not a valid string."},
		{NetworkSpec, `{"network": {"description": "` + strings.Repeat("d", 256) + `"}}`, Update, "~Reason: '" + strings.Repeat("d", 256) + "' exceeds maximum length of 255."},
		{SubnetSpec, `{"subnet": {"network_id": "x", "ip_version": 4, "cidr": "10.0.0.0/24"}}`, Create, "Invalid input for network_id. Reason: 'x' is not a valid UUID."},
		{SubnetSpec, `{"subnet": {"network_id": "` + netID + `", "ip_version": 5, "cidr": "10.0.0.0/24"}}`, Create, "Invalid input for ip_version. Reason: 5 is not in [4, 6]."},
		{SubnetSpec, `{"subnet": {"network_id": "` + netID + `", "ip_version": "x", "cidr": "10.0.0.0/24"}}`, Create, "Invalid input for ip_version. Reason: 'x' is not an integer."},
		{SubnetSpec, `{"subnet": {"network_id": "` + netID + `", "ip_version": 4, "cidr": "10.0.0.1/24"}}`, Create, "Invalid input for cidr. Reason: '10.0.0.1/24' isn't a recognized IP subnet cidr, '10.0.0.0/24' is recommended."},
		{SubnetSpec, `{"subnet": {"gateway_ip": "10.0.0.256"}}`, Update, "Invalid input for gateway_ip. Reason: '10.0.0.256' is not a valid IP address."},
		{SubnetSpec, `{"subnet": {"enable_dhcp": "nope"}}`, Update, "Invalid input for enable_dhcp. Reason: 'nope' cannot be converted to boolean."},
		{PortSpec, `{"port": {"mac_address": "01:00:5e:00:00:01"}}`, Update, "Invalid input for mac_address. Reason: '01:00:5e:00:00:01' is not a valid MAC address."},
		{PortSpec, `{"port": {"binding:vnic_type": "fast"}}`, Update, "~Invalid input for binding:vnic_type. Reason: 'fast' is not in ['normal', 'direct',"},
		{PortSpec, `{"port": {"binding:profile": []}}`, Update, "Invalid input for binding:profile. Reason: '[]' is not a dictionary."},
		{PortSpec, `{"port": {"device_id": 1}}`, Update, "Invalid input for device_id. Reason: '1' is not a valid string."},
	}
	for _, tc := range tests {
		_, _, err := decode(tc.spec, tc.body, tc.op)
		wantAPIErr(t, err, 400, tc.msg)
	}
}

package model

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestDecodePort(t *testing.T) {
	t.Parallel()
	f := decodeOne(t, PortSpec, `{"port": {
		"network_id": "`+strings.ToUpper(netID)+`", "name": "p", "admin_state_up": "0",
		"mac_address": "FA-16-3E-11-22-33", "device_id": "vm1", "device_owner": "compute:nova",
		"fixed_ips": [{"subnet_id": "`+subID+`"}, {"ip_address": "10.0.0.5"}, {"subnet_id": "`+subID+`", "ip_address": "10.0.0.6"}],
		"binding:host_id": "host1", "binding:vnic_type": "direct", "binding:profile": {"pci_slot": "0000:00:01.0"},
		"port_security_enabled": "True",
		"allowed_address_pairs": [{"ip_address": "10.0.0.100"}, {"ip_address": "10.1.0.0/16", "mac_address": "fa:16:3e:00:00:01"}],
		"security_groups": ["`+sgID+`"]}}`, Create)
	want := Fields{
		"network_id": netID, "name": "p", "admin_state_up": false,
		"mac_address": "fa:16:3e:11:22:33", "device_id": "vm1", "device_owner": "compute:nova",
		"fixed_ips": []FixedIPRequest{
			{SubnetID: subID},
			{IPAddress: netip.MustParseAddr("10.0.0.5")},
			{SubnetID: subID, IPAddress: netip.MustParseAddr("10.0.0.6")},
		},
		"binding:host_id": "host1", "binding:vnic_type": "direct",
		"binding:profile":       map[string]any{"pci_slot": "0000:00:01.0"},
		"port_security_enabled": true,
		"allowed_address_pairs": []AddressPair{
			{IPAddress: netip.MustParsePrefix("10.0.0.100/32")},
			{IPAddress: netip.MustParsePrefix("10.1.0.0/16"), MACAddress: "fa:16:3e:00:00:01"},
		},
		"security_groups": []string{sgID},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("fields = %#v\nwant %#v", f, want)
	}
}

func TestDecodePortAttributes(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		attr string
		val  string // JSON
		want any
		err  string // full message, or "~fragment"
	}{
		{"fixed_ips empty", "fixed_ips", `[]`, []FixedIPRequest{}, ""},
		{"fixed_ips subnet twice", "fixed_ips", `[{"subnet_id": "` + subID + `"}, {"subnet_id": "` + subID + `"}]`,
			[]FixedIPRequest{{SubnetID: subID}, {SubnetID: subID}}, ""},
		{"fixed_ips v6", "fixed_ips", `[{"ip_address": "2001:db8::5"}]`, []FixedIPRequest{{IPAddress: a("2001:db8::5")}}, ""},
		{"fixed_ips null", "fixed_ips", `null`, nil, "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: 'None'."},
		{"fixed_ips object", "fixed_ips", `{"subnet_id": "` + subID + `"}`, nil, "~Invalid data format for fixed IP"},
		{"fixed_ips string element", "fixed_ips", `["10.0.0.5"]`, nil, "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '10.0.0.5'."},
		{"fixed_ips empty element", "fixed_ips", `[{}]`, nil, "Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '{}'."},
		{"fixed_ips extra key", "fixed_ips", `[{"subnet_id": "` + subID + `", "mac": "x"}]`, nil, "~Invalid data format for fixed IP"},
		{"fixed_ips bad subnet", "fixed_ips", `[{"subnet_id": "sub1"}]`, nil, "Invalid input for fixed_ips. Reason: 'sub1' is not a valid UUID."},
		{"fixed_ips null subnet", "fixed_ips", `[{"subnet_id": null}]`, nil, "Invalid input for fixed_ips. Reason: 'None' is not a valid UUID."},
		{"fixed_ips bad ip", "fixed_ips", `[{"ip_address": "10.0.0.300"}]`, nil, "Invalid input for fixed_ips. Reason: '10.0.0.300' is not a valid IP address."},
		{"fixed_ips cidr", "fixed_ips", `[{"ip_address": "10.0.0.5/24"}]`, nil, "~'10.0.0.5/24' is not a valid IP address"},
		// neutron-lib's validate_fixed_ips refuses an address given twice.
		{"fixed_ips duplicate ip", "fixed_ips", `[{"ip_address": "10.0.0.5"}, {"subnet_id": "` + subID + `", "ip_address": "10.0.0.5"}]`, nil,
			"Invalid input for fixed_ips. Reason: Duplicate IP address '10.0.0.5'."},
		{"fixed_ips duplicate ip other spelling", "fixed_ips", `[{"ip_address": "2001:db8::5"}, {"ip_address": "2001:DB8:0::5"}]`, nil,
			"~Duplicate IP address '2001:DB8:0::5'"},

		{"mac null", "mac_address", `null`, "", ""}, // port-mac-address-regenerate
		{"mac zero", "mac_address", `"00:00:00:00:00:00"`, nil, "Invalid input for mac_address. Reason: '00:00:00:00:00:00' is not a valid MAC address."},

		{"pairs null", "allowed_address_pairs", `null`, []AddressPair{}, ""},
		{"pairs empty", "allowed_address_pairs", `[]`, []AddressPair{}, ""},
		{"pairs v6", "allowed_address_pairs", `[{"ip_address": "2001:db8::/64"}, {"ip_address": "2001:db8::9"}]`,
			[]AddressPair{{IPAddress: p("2001:db8::/64")}, {IPAddress: p("2001:db8::9/128")}}, ""},
		{"pairs same ip other mac", "allowed_address_pairs", `[{"ip_address": "10.0.0.9", "mac_address": "fa:16:3e:00:00:01"}, {"ip_address": "10.0.0.9", "mac_address": "fa:16:3e:00:00:02"}]`,
			[]AddressPair{{p("10.0.0.9/32"), "fa:16:3e:00:00:01"}, {p("10.0.0.9/32"), "fa:16:3e:00:00:02"}}, ""},
		{"pairs mac null", "allowed_address_pairs", `[{"ip_address": "10.0.0.9", "mac_address": null}]`, []AddressPair{{IPAddress: p("10.0.0.9/32")}}, ""},
		{"pairs not list", "allowed_address_pairs", `{"ip_address": "10.0.0.9"}`, nil, "Invalid input for allowed_address_pairs. Reason: Allowed address pairs must be a list."},
		{"pairs duplicate", "allowed_address_pairs", `[{"ip_address": "10.0.0.9"}, {"ip_address": "10.0.0.9"}]`, nil, "~Duplicate address detected"},
		{"pairs duplicate mac spelling", "allowed_address_pairs", `[{"ip_address": "10.0.0.9", "mac_address": "fa:16:3e:00:00:01"}, {"ip_address": "10.0.0.9", "mac_address": "FA-16-3E-00-00-01"}]`, nil, "~Duplicate address detected"},
		{"pairs missing ip", "allowed_address_pairs", `[{"mac_address": "fa:16:3e:00:00:01"}]`, nil, "~Validation of dictionary's keys failed"},
		{"pairs extra key", "allowed_address_pairs", `[{"ip_address": "10.0.0.9", "vlan": 5}]`, nil, "~Validation of dictionary's keys failed"},
		{"pairs element string", "allowed_address_pairs", `["10.0.0.9"]`, nil, "~'10.0.0.9' is not a dictionary"},
		{"pairs bad ip", "allowed_address_pairs", `[{"ip_address": "10.0.0.0/33"}]`, nil, "~'10.0.0.0/33' is not a valid IP subnet"},
		{"pairs ip null", "allowed_address_pairs", `[{"ip_address": null}]`, nil, "~'None' is not a valid IP subnet"},
		{"pairs multicast mac", "allowed_address_pairs", `[{"ip_address": "10.0.0.9", "mac_address": "01:00:5e:00:00:01"}]`, nil, "~'01:00:5e:00:00:01' is not a valid MAC address"},

		{"sgs null", "security_groups", `null`, []string{}, ""},
		{"sgs empty", "security_groups", `[]`, []string{}, ""},
		{"sgs two", "security_groups", `["` + sgID + `", "` + sgID2 + `"]`, []string{sgID, sgID2}, ""},
		{"sgs duplicate", "security_groups", `["` + sgID + `", "` + sgID + `"]`, nil, "Invalid input for security_groups. Reason: Duplicate items in the list: '" + sgID + "'."},
		{"sgs name", "security_groups", `["default"]`, nil, "Invalid input for security_groups. Reason: 'default' is not a valid UUID."},
		{"sgs string", "security_groups", `"` + sgID + `"`, nil, "~is not a list"},

		{"vnic normal", "binding:vnic_type", `"normal"`, "normal", ""},
		{"vnic vdpa", "binding:vnic_type", `"vdpa"`, "vdpa", ""},
		{"vnic accelerator", "binding:vnic_type", `"accelerator-direct"`, "accelerator-direct", ""},
		{"vnic null", "binding:vnic_type", `null`, nil, "~'None' is not in ['normal',"},
		{"profile null", "binding:profile", `null`, map[string]any{}, ""},
		{"host_id", "binding:host_id", `"compute-1"`, "compute-1", ""},
		{"host_id null", "binding:host_id", `null`, nil, "~'None' is not a valid string"},
		{"device_owner long", "device_owner", `"` + strings.Repeat("o", 256) + `"`, nil, "~exceeds maximum length of 255"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := `{"port": {"network_id": "` + netID + `", "` + tc.attr + `": ` + tc.val + `}}`
			items, _, err := decode(PortSpec, body, Create)
			if tc.err != "" {
				wantAPIErr(t, err, 400, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := items[0][tc.attr]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %#v, want %#v", tc.attr, got, tc.want)
			}
			// Updates accept the same values.
			upd := `{"port": {"` + tc.attr + `": ` + tc.val + `}}`
			items, _, err = decode(PortSpec, upd, Update)
			if err != nil {
				t.Fatalf("update %s: %v", upd, err)
			}
			if got := items[0][tc.attr]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("update: %s = %#v, want %#v", tc.attr, got, tc.want)
			}
		})
	}
}

func testPort() *Port {
	return &Port{
		Standard: Standard{
			ID: "11111111-2222-4333-8444-555555555555", ProjectID: "proj", Name: "p",
			CreatedAt: "2024-01-02T03:04:05Z", UpdatedAt: "2024-01-02T03:04:05Z", RevisionNumber: 2,
		},
		NetworkID: netID, AdminStateUp: true, MACAddress: "fa:16:3e:11:22:33",
		FixedIPs: []FixedIP{{SubnetID: subID, IPAddress: netip.MustParseAddr("10.0.0.5")}},
		DeviceID: "vm1", DeviceOwner: "compute:nova", Status: StatusActive,
		HostID: "host1", VIFType: "ovs", VNICType: "normal", PortSecurityEnabled: true,
	}
}

const portViewBase = `
	"id": "11111111-2222-4333-8444-555555555555", "project_id": "proj", "tenant_id": "proj",
	"name": "p", "description": "", "tags": [],
	"created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-02T03:04:05Z", "revision_number": 2,
	"network_id": "` + netID + `", "admin_state_up": true, "mac_address": "fa:16:3e:11:22:33",
	"device_id": "vm1", "device_owner": "compute:nova", "status": "ACTIVE",
	"binding:host_id": "host1", "binding:vif_type": "ovs", "binding:vnic_type": "normal",
	"port_security_enabled": true`

func TestPortView(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Port)
		want string
	}{
		{"minimal", func(*Port) {}, `{` + portViewBase + `,
			"fixed_ips": [{"subnet_id": "` + subID + `", "ip_address": "10.0.0.5"}],
			"binding:vif_details": {}, "binding:profile": {},
			"allowed_address_pairs": [], "security_groups": [], "extra_dhcp_opts": [], "dns_name": "", "dns_assignment": [{"hostname": "host-10-0-0-5", "ip_address": "10.0.0.5", "fqdn": "host-10-0-0-5.openstacklocal."}]}`},
		{"full", func(p *Port) {
			p.FixedIPs = append(p.FixedIPs, FixedIP{SubnetID: subID2, IPAddress: netip.MustParseAddr("2001:db8::f816:3eff:fe11:2233")})
			p.VIFDetails = map[string]any{"port_filter": true}
			p.Profile = map[string]any{"local_link_information": []any{}}
			p.AllowedAddressPairs = []AddressPair{
				{IPAddress: netip.MustParsePrefix("10.0.0.100/32")},
				{IPAddress: netip.MustParsePrefix("10.1.0.0/16"), MACAddress: "fa:16:3e:00:00:01"},
				{IPAddress: netip.MustParsePrefix("2001:db8::9/128")},
			}
			p.SecurityGroups = []string{sgID}
		}, `{` + portViewBase + `,
			"fixed_ips": [{"subnet_id": "` + subID + `", "ip_address": "10.0.0.5"},
				{"subnet_id": "` + subID2 + `", "ip_address": "2001:db8::f816:3eff:fe11:2233"}],
			"binding:vif_details": {"port_filter": true}, "binding:profile": {"local_link_information": []},
			"allowed_address_pairs": [
				{"ip_address": "10.0.0.100", "mac_address": "fa:16:3e:11:22:33"},
				{"ip_address": "10.1.0.0/16", "mac_address": "fa:16:3e:00:00:01"},
				{"ip_address": "2001:db8::9", "mac_address": "fa:16:3e:11:22:33"}],
			"security_groups": ["` + sgID + `"], "extra_dhcp_opts": [], "dns_name": "",
			"dns_assignment": [{"hostname": "host-10-0-0-5", "ip_address": "10.0.0.5", "fqdn": "host-10-0-0-5.openstacklocal."},
				{"hostname": "host-2001-db8--f816-3eff-fe11-2233", "ip_address": "2001:db8::f816:3eff:fe11:2233", "fqdn": "host-2001-db8--f816-3eff-fe11-2233.openstacklocal."}]}`},
		{"no fixed ips", func(p *Port) { p.FixedIPs = nil }, `{` + portViewBase + `,
			"fixed_ips": [], "binding:vif_details": {}, "binding:profile": {},
			"allowed_address_pairs": [], "security_groups": [], "extra_dhcp_opts": [], "dns_name": "", "dns_assignment": []}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testPort()
			tc.mod(p)
			jsonEqual(t, p.View(), tc.want)
		})
	}
}

func TestPortAdminOnlyViewsAreRendered(t *testing.T) {
	t.Parallel()
	v := testPort().View()
	for _, k := range PortAdminOnlyViews {
		if _, ok := v[k]; !ok {
			t.Errorf("admin-only view %q is not rendered", k)
		}
	}
}

func TestDecodeAsPort(t *testing.T) {
	t.Parallel()
	p := testPort()
	p.AllowedAddressPairs = []AddressPair{{IPAddress: netip.MustParsePrefix("10.1.0.0/16"), MACAddress: "fa:16:3e:00:00:01"}}
	p.SecurityGroups = []string{sgID}
	p.Profile = map[string]any{"a": "b"}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeAs[Port]()(data)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*Cached).Obj.(*Port)
	if !reflect.DeepEqual(got, p) {
		t.Errorf("round trip = %+v\nwant %+v", got, p)
	}
}

package model

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"github.com/vland/vland/internal/ipam"
)

func TestDecodeSubnet(t *testing.T) {
	t.Parallel()
	f := decodeOne(t, SubnetSpec, `{"subnet": {
		"network_id": "`+netID+`", "ip_version": 4, "cidr": "10.0.0.0/24", "name": "s",
		"gateway_ip": "10.0.0.1", "enable_dhcp": "true",
		"allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.20"}, {"end": "10.0.0.40", "start": "10.0.0.30"}],
		"dns_nameservers": ["8.8.8.8", "2001:4860:4860::8888"],
		"host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}],
		"project_id": "proj"}}`, Create)
	want := Fields{
		"network_id": netID, "ip_version": 4, "cidr": netip.MustParsePrefix("10.0.0.0/24"), "name": "s",
		"gateway_ip": netip.MustParseAddr("10.0.0.1"), "enable_dhcp": true,
		"allocation_pools": []ipam.Pool{
			{Start: netip.MustParseAddr("10.0.0.10"), End: netip.MustParseAddr("10.0.0.20")},
			{Start: netip.MustParseAddr("10.0.0.30"), End: netip.MustParseAddr("10.0.0.40")},
		},
		"dns_nameservers": []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("2001:4860:4860::8888")},
		"host_routes":     []HostRoute{{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParseAddr("10.0.0.254")}},
		"project_id":      "proj",
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("fields = %#v\nwant %#v", f, want)
	}
}

func TestDecodeSubnetAttributes(t *testing.T) {
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
		{"ip_version 6", "ip_version", `6`, 6, ""},
		{"ip_version string", "ip_version", `"4"`, 4, ""},
		{"ip_version 0", "ip_version", `0`, nil, "Invalid input for ip_version. Reason: 0 is not in [4, 6]."},
		{"ip_version huge", "ip_version", `4294967300`, nil, "Invalid input for ip_version. Reason: 4294967300 is not in [4, 6]."},
		{"ip_version float", "ip_version", `4.0`, nil, "Invalid input for ip_version. Reason: '4.0' is not an integer."},
		{"ip_version null", "ip_version", `null`, nil, "Invalid input for ip_version. Reason: 'None' is not an integer."},

		{"gateway null", "gateway_ip", `null`, netip.Addr{}, ""},
		{"gateway v6", "gateway_ip", `"2001:db8::1"`, a("2001:db8::1"), ""},
		{"gateway empty", "gateway_ip", `""`, nil, "Invalid input for gateway_ip. Reason: '' is not a valid IP address."},
		{"gateway cidr", "gateway_ip", `"10.0.0.1/24"`, nil, "~is not a valid IP address"},

		{"pools empty", "allocation_pools", `[]`, []ipam.Pool{}, ""},
		{"pools v6", "allocation_pools", `[{"start": "2001:db8::10", "end": "2001:db8::ff"}]`,
			[]ipam.Pool{{Start: a("2001:db8::10"), End: a("2001:db8::ff")}}, ""},
		// Order and bounds are ipam's business, not the decoder's.
		{"pools reversed", "allocation_pools", `[{"start": "10.0.0.20", "end": "10.0.0.10"}]`,
			[]ipam.Pool{{Start: a("10.0.0.20"), End: a("10.0.0.10")}}, ""},
		{"pools null", "allocation_pools", `null`, nil, "Invalid input for allocation_pools. Reason: Invalid data format for IP pool: 'None'."},
		{"pools object", "allocation_pools", `{"start": "10.0.0.2", "end": "10.0.0.9"}`, nil, "~Invalid data format for IP pool"},
		{"pools missing end", "allocation_pools", `[{"start": "10.0.0.2"}]`, nil,
			`Invalid input for allocation_pools. Reason: Invalid data format for IP pool: '{"start":"10.0.0.2"}'.`},
		{"pools extra key", "allocation_pools", `[{"start": "10.0.0.2", "end": "10.0.0.9", "step": 1}]`, nil, "~Invalid data format for IP pool"},
		{"pools element string", "allocation_pools", `["10.0.0.2-10.0.0.9"]`, nil, "~Invalid data format for IP pool: '10.0.0.2-10.0.0.9'"},
		{"pools bad start", "allocation_pools", `[{"start": "10.0.0", "end": "10.0.0.9"}]`, nil, "Invalid input for allocation_pools. Reason: '10.0.0' is not a valid IP address."},
		{"pools bad end", "allocation_pools", `[{"start": "10.0.0.2", "end": null}]`, nil, "Invalid input for allocation_pools. Reason: 'None' is not a valid IP address."},

		{"dns empty", "dns_nameservers", `[]`, []netip.Addr{}, ""},
		{"dns null", "dns_nameservers", `null`, []netip.Addr{}, ""}, // convert_none_to_empty_list
		{"dns duplicate", "dns_nameservers", `["8.8.8.8", "1.1.1.1", "8.8.8.8"]`, nil, "Invalid input for dns_nameservers. Reason: Duplicate nameserver '8.8.8.8'."},
		{"dns duplicate v6 spelling", "dns_nameservers", `["2001:db8::1", "2001:DB8:0::1"]`, nil, "~Duplicate nameserver '2001:DB8:0::1'"},
		{"dns hostname", "dns_nameservers", `["ns1.example.com"]`, nil,
			"Invalid input for dns_nameservers. Reason: 'ns1.example.com' is not a valid nameserver. 'ns1.example.com' is not a valid IP address."},
		{"dns number", "dns_nameservers", `[8]`, nil, "~'8' is not a valid nameserver."},
		{"dns string", "dns_nameservers", `"8.8.8.8"`, nil, "Invalid input for dns_nameservers. Reason: Invalid data format for nameserver: '8.8.8.8'."},

		{"routes empty", "host_routes", `[]`, []HostRoute{}, ""},
		{"routes null", "host_routes", `null`, []HostRoute{}, ""}, // convert_none_to_empty_list
		{"routes two", "host_routes", `[{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}, {"destination": "2001:db8::/32", "nexthop": "2001:db8::1"}]`,
			[]HostRoute{{p("0.0.0.0/0"), a("10.0.0.1")}, {p("2001:db8::/32"), a("2001:db8::1")}}, ""},
		{"routes same destination other nexthop", "host_routes", `[{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}, {"destination": "0.0.0.0/0", "nexthop": "10.0.0.2"}]`,
			[]HostRoute{{p("0.0.0.0/0"), a("10.0.0.1")}, {p("0.0.0.0/0"), a("10.0.0.2")}}, ""},
		{"routes duplicate", "host_routes", `[{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}, {"nexthop": "10.0.0.1", "destination": "0.0.0.0/0"}]`, nil,
			`Invalid input for host_routes. Reason: Duplicate hostroute '{"destination":"0.0.0.0/0","nexthop":"10.0.0.1"}'.`},
		{"routes host bits", "host_routes", `[{"destination": "192.168.1.1/16", "nexthop": "10.0.0.1"}]`, nil, "~isn't a recognized IP subnet cidr, '192.168.0.0/16' is recommended"},
		{"routes bad nexthop", "host_routes", `[{"destination": "192.168.0.0/16", "nexthop": "10.0.0.1/32"}]`, nil, "~'10.0.0.1/32' is not a valid IP address"},
		{"routes missing nexthop", "host_routes", `[{"destination": "192.168.0.0/16"}]`, nil, "~Invalid data format for hostroute"},
		{"routes extra key", "host_routes", `[{"destination": "192.168.0.0/16", "nexthop": "10.0.0.1", "metric": 5}]`, nil, "~Invalid data format for hostroute"},
		{"routes not list", "host_routes", `{"destination": "192.168.0.0/16", "nexthop": "10.0.0.1"}`, nil, "~Invalid data format for hostroute"},

		{"ra mode", "ipv6_ra_mode", `"slaac"`, "slaac", ""},
		{"ra mode null", "ipv6_ra_mode", `null`, "", ""},
		{"address mode stateful", "ipv6_address_mode", `"dhcpv6-stateful"`, "dhcpv6-stateful", ""},
		{"address mode stateless", "ipv6_address_mode", `"dhcpv6-stateless"`, "dhcpv6-stateless", ""},
		{"address mode bad", "ipv6_address_mode", `"SLAAC"`, nil,
			"Invalid input for ipv6_address_mode. Reason: 'SLAAC' is not in ['slaac', 'dhcpv6-stateful', 'dhcpv6-stateless']."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := `{"subnet": {"network_id": "` + netID + `", "ip_version": 4, "cidr": "10.0.0.0/24", "` + tc.attr + `": ` + tc.val + `}}`
			items, _, err := decode(SubnetSpec, body, Create)
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
		})
	}
}

func testSubnet() *Subnet {
	return &Subnet{
		Standard: Standard{
			ID: subID, ProjectID: "proj", Name: "s",
			CreatedAt: "2024-01-02T03:04:05Z", UpdatedAt: "2024-01-02T03:04:05Z", RevisionNumber: 1,
		},
		NetworkID: netID, IPVersion: 4, CIDR: netip.MustParsePrefix("10.0.0.0/24"),
		GatewayIP:       netip.MustParseAddr("10.0.0.1"),
		AllocationPools: []ipam.Pool{{Start: netip.MustParseAddr("10.0.0.2"), End: netip.MustParseAddr("10.0.0.254")}},
		EnableDHCP:      true,
	}
}

const subnetViewBase = `
	"id": "` + subID + `", "project_id": "proj", "tenant_id": "proj", "name": "s", "description": "", "tags": [],
	"created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-02T03:04:05Z", "revision_number": 1,
	"network_id": "` + netID + `", "subnetpool_id": null, "service_types": []`

func TestSubnetView(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Subnet)
		want string
	}{
		{"v4 defaults", func(*Subnet) {}, `{` + subnetViewBase + `, "ip_version": 4, "cidr": "10.0.0.0/24",
			"gateway_ip": "10.0.0.1", "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.254"}],
			"enable_dhcp": true, "dns_nameservers": [], "host_routes": [],
			"ipv6_ra_mode": null, "ipv6_address_mode": null}`},
		{"no gateway no pools", func(s *Subnet) {
			s.GatewayIP = netip.Addr{}
			s.AllocationPools = nil
			s.EnableDHCP = false
		}, `{` + subnetViewBase + `, "ip_version": 4, "cidr": "10.0.0.0/24",
			"gateway_ip": null, "allocation_pools": [],
			"enable_dhcp": false, "dns_nameservers": [], "host_routes": [],
			"ipv6_ra_mode": null, "ipv6_address_mode": null}`},
		{"v6 slaac with extras", func(s *Subnet) {
			s.IPVersion = 6
			s.CIDR = netip.MustParsePrefix("2001:db8::/64")
			s.GatewayIP = netip.MustParseAddr("2001:db8::1")
			s.AllocationPools = []ipam.Pool{
				{Start: netip.MustParseAddr("2001:db8::2"), End: netip.MustParseAddr("2001:db8::ff")},
				{Start: netip.MustParseAddr("2001:db8::1:0"), End: netip.MustParseAddr("2001:db8::ffff:ffff:ffff:ffff")},
			}
			s.IPv6RAMode, s.IPv6AddressMode = SLAAC, SLAAC
			s.DNSNameservers = []netip.Addr{netip.MustParseAddr("2001:4860:4860::8888"), netip.MustParseAddr("8.8.8.8")}
			s.HostRoutes = []HostRoute{{netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParseAddr("2001:db8::fe")}}
		}, `{` + subnetViewBase + `, "ip_version": 6, "cidr": "2001:db8::/64",
			"gateway_ip": "2001:db8::1",
			"allocation_pools": [{"start": "2001:db8::2", "end": "2001:db8::ff"}, {"start": "2001:db8::1:0", "end": "2001:db8::ffff:ffff:ffff:ffff"}],
			"enable_dhcp": true, "dns_nameservers": ["2001:4860:4860::8888", "8.8.8.8"],
			"host_routes": [{"destination": "2001:db8:1::/48", "nexthop": "2001:db8::fe"}],
			"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := testSubnet()
			tc.mod(s)
			jsonEqual(t, s.View(), tc.want)
		})
	}
}

func TestSubnetAutoAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version int
		mode    string
		want    bool
	}{
		{6, SLAAC, true},
		{6, DHCPv6Stateless, true},
		{6, DHCPv6Stateful, false},
		{6, "", false},
		{4, SLAAC, false}, // cannot happen, but must not claim SLAAC for IPv4
	}
	for _, tc := range tests {
		s := &Subnet{IPVersion: tc.version, IPv6AddressMode: tc.mode}
		if got := s.AutoAddress(); got != tc.want {
			t.Errorf("AutoAddress(v%d, %q) = %v, want %v", tc.version, tc.mode, got, tc.want)
		}
	}
}

func TestDecodeAsSubnet(t *testing.T) {
	t.Parallel()
	s := testSubnet()
	s.GatewayIP = netip.Addr{}
	s.DNSNameservers = []netip.Addr{netip.MustParseAddr("1.1.1.1")}
	s.HostRoutes = []HostRoute{{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.0.0.9")}}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeAs[Subnet]()(data)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*Cached).Obj.(*Subnet)
	if !reflect.DeepEqual(got, s) {
		t.Errorf("round trip = %+v\nwant %+v", got, s)
	}
	if v.(*Cached).View["gateway_ip"] != nil {
		t.Errorf("null gateway came back as %v", v.(*Cached).View["gateway_ip"])
	}
}

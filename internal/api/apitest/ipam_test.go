package apitest

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// fixedIP is a fixed_ips element of a raw port request.
func fixedIP(subnetID, ip string) map[string]any {
	m := map[string]any{}
	if subnetID != "" {
		m["subnet_id"] = subnetID
	}
	if ip != "" {
		m["ip_address"] = ip
	}
	return m
}

// TestExplicitAddresses: a port may ask for addresses; one in use is a 409
// IpAddressAlreadyAllocated, one outside every subnet a 400, the gateway a
// 409; fixed_ips [] gives no address; several addresses on one port work.
func TestExplicitAddresses(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("explicit"), "10.30.0.0/24")
	sn2 := createSubnet(t, c, n.ID, "10.31.0.0/24")

	p := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{fixedIP("", "10.30.0.50")}})
	if len(p.FixedIPs) != 1 || p.FixedIPs[0] != (ports.IP{SubnetID: sn.ID, IPAddress: "10.30.0.50"}) {
		t.Errorf("explicit address port = %+v", p.FixedIPs)
	}
	for _, tc := range []struct {
		name   string
		ips    []any
		status int
		typ    string
	}{
		{"InUse", []any{fixedIP("", "10.30.0.50")}, http.StatusConflict, "IpAddressAlreadyAllocated"},
		{"InUseWithSubnet", []any{fixedIP(sn.ID, "10.30.0.50")}, http.StatusConflict, "IpAddressAlreadyAllocated"},
		{"Gateway", []any{fixedIP("", "10.30.0.1")}, http.StatusConflict, "IpAddressAlreadyAllocated"},
		{"NotInAnySubnet", []any{fixedIP("", "192.168.99.5")}, http.StatusBadRequest, "InvalidIpForNetwork"},
		{"NotInNamedSubnet", []any{fixedIP(sn.ID, "10.31.0.5")}, http.StatusBadRequest, "InvalidIpForSubnet"},
		{"NetworkAddress", []any{fixedIP("", "10.30.0.0")}, http.StatusBadRequest, "InvalidIpForSubnet"},
		{"BroadcastAddress", []any{fixedIP("", "10.30.0.255")}, http.StatusBadRequest, "InvalidIpForSubnet"},
		{"UnknownSubnet", []any{fixedIP("8d3fbb57-4c2d-4a52-9d8a-2a1d0f0a0a0a", "")}, http.StatusBadRequest, "InvalidInput"},
		{"SameAddressTwice", []any{fixedIP("", "10.30.0.60"), fixedIP("", "10.30.0.60")}, http.StatusBadRequest, "HTTPBadRequest"},
		{"TooMany", []any{fixedIP(sn.ID, ""), fixedIP(sn.ID, ""), fixedIP(sn.ID, ""), fixedIP(sn.ID, ""), fixedIP(sn.ID, ""), fixedIP(sn.ID, "")}, http.StatusBadRequest, "InvalidInput"},
		{"NotAList", nil, http.StatusBadRequest, "HTTPBadRequest"},
		{"BadAddress", []any{fixedIP("", "10.30.0.300")}, http.StatusBadRequest, "HTTPBadRequest"},
		{"EmptyElement", []any{map[string]any{}}, http.StatusBadRequest, "HTTPBadRequest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := rawPort{"network_id": n.ID, "fixed_ips": tc.ips}
			if tc.ips == nil {
				body["fixed_ips"] = "10.30.0.70"
			}
			_, err := ports.Create(ctx, c, body).Extract()
			if tc.name == "SameAddressTwice" {
				// Neutron's fixed_ips validator: 400 "Invalid input for
				// fixed_ips. Reason: Duplicate IP address '...'".
				if e := neutronError(t, err); e.Status != http.StatusBadRequest || e.Type != "HTTPBadRequest" && e.Type != "InvalidInput" {
					t.Errorf("got %d %s (%s), want 400 HTTPBadRequest or InvalidInput", e.Status, e.Type, e.Message)
				}
				return
			}
			wantError(t, err, tc.status, tc.typ)
		})
	}

	none := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{}})
	if len(none.FixedIPs) != 0 {
		t.Errorf("fixed_ips [] gave %+v", none.FixedIPs)
	}
	multi := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{
		fixedIP(sn.ID, ""), fixedIP("", "10.30.0.51"), fixedIP(sn2.ID, "10.31.0.9"), fixedIP(sn2.ID, ""),
	}})
	if len(multi.FixedIPs) != 4 || multi.FixedIPs[0].SubnetID != sn.ID || multi.FixedIPs[1].IPAddress != "10.30.0.51" ||
		multi.FixedIPs[2].IPAddress != "10.31.0.9" || multi.FixedIPs[3].SubnetID != sn2.ID || multi.FixedIPs[3].IPAddress == "10.31.0.9" {
		t.Errorf("four fixed IPs = %+v", multi.FixedIPs)
	}
	// A port without fixed_ips on a two-subnet IPv4 network gets one address.
	def := createPort(t, c, rawPort{"network_id": n.ID})
	if len(def.FixedIPs) != 1 {
		t.Errorf("default port on two IPv4 subnets = %+v, want one address", def.FixedIPs)
	}
	// An update may keep an address (named by its subnet) and add another.
	var two port
	must(t, ports.Update(ctx, c, def.ID, update(rawPort{"fixed_ips": []any{fixedIP(def.FixedIPs[0].SubnetID, ""), fixedIP("", "10.31.0.20")}})).ExtractInto(&two))
	if len(two.FixedIPs) != 2 || two.FixedIPs[0] != def.FixedIPs[0] || two.FixedIPs[1].IPAddress != "10.31.0.20" {
		t.Errorf("port after adding an address = %+v, want %+v and 10.31.0.20", two.FixedIPs, def.FixedIPs[0])
	}
	// An update to an address in use is refused and changes nothing.
	_, err := ports.Update(ctx, c, none.ID, update(rawPort{"fixed_ips": []any{fixedIP("", "10.30.0.51")}})).Extract()
	wantError(t, err, http.StatusConflict, "IpAddressAlreadyAllocated")
	var still port
	must(t, ports.Get(ctx, c, none.ID).ExtractInto(&still))
	if len(still.FixedIPs) != 0 {
		t.Errorf("refused update left fixed IPs %+v", still.FixedIPs)
	}
}

// TestSmallSubnetIsExhausted: a /29 has five pool addresses; the sixth port
// is a 409 IpAddressGenerationFailure, and a deleted port's address is
// handed out again.
func TestSmallSubnetIsExhausted(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("small"), "10.32.0.0/29")
	if !slices.Equal(sn.AllocationPools, []subnets.AllocationPool{{Start: "10.32.0.2", End: "10.32.0.6"}}) {
		t.Fatalf("/29 pools = %+v", sn.AllocationPools)
	}
	seen := map[string]bool{}
	var last port
	for range 5 {
		last = createPort(t, c, rawPort{"network_id": n.ID})
		ip := last.FixedIPs[0].IPAddress
		if seen[ip] {
			t.Errorf("address %s handed out twice", ip)
		}
		seen[ip] = true
	}
	_, err := ports.Create(ctx, c, rawPort{"network_id": n.ID}).Extract()
	wantError(t, err, http.StatusConflict, "IpAddressGenerationFailure")

	must(t, ports.Delete(ctx, c, last.ID).ExtractErr())
	again := createPort(t, c, rawPort{"network_id": n.ID})
	if again.FixedIPs[0].IPAddress != last.FixedIPs[0].IPAddress {
		t.Errorf("after freeing %s the next port got %s", last.FixedIPs[0].IPAddress, again.FixedIPs[0].IPAddress)
	}

	// With a second IPv4 subnet, new ports fall through to it.
	sn2 := createSubnet(t, c, n.ID, "10.32.1.0/29")
	next := createPort(t, c, rawPort{"network_id": n.ID})
	if len(next.FixedIPs) != 1 || next.FixedIPs[0].SubnetID != sn2.ID {
		t.Errorf("port on a network whose first subnet is full got %+v, want an address of %s", next.FixedIPs, sn2.ID)
	}
}

// eui64 computes the SLAAC address of mac in prefix independently of the
// server: the MAC with ff:fe in the middle and the universal/local bit
// flipped.
func eui64(t *testing.T, prefix, mac string) string {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	must(t, err)
	p := netip.MustParsePrefix(prefix)
	b := p.Addr().As16()
	b[8], b[9], b[10], b[11] = hw[0]^0x02, hw[1], hw[2], 0xff
	b[12], b[13], b[14], b[15] = 0xfe, hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b).String()
}

// TestIPv6AddressModes: SLAAC ports get the EUI-64 address of their MAC and
// may not ask for one; DHCPv6-stateful ports get a pool address.
func TestIPv6AddressModes(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, v4 := netWithSubnet(t, c, uniq("v6"), "10.33.0.0/24")
	slaac, err := subnets.Create(ctx, c, subnets.CreateOpts{
		NetworkID: n.ID, CIDR: "2001:db8:33::/64", IPVersion: gophercloud.IPv6,
		IPv6AddressMode: "slaac", IPv6RAMode: "slaac",
	}).Extract()
	must(t, err)
	if slaac.GatewayIP != "2001:db8:33::1" || slaac.IPv6AddressMode != "slaac" {
		t.Errorf("slaac subnet = %+v", slaac)
	}

	// A port on a v4+SLAAC network gets an address of each, the SLAAC one
	// the EUI-64 address of its generated MAC.
	d := createPort(t, c, rawPort{"network_id": n.ID})
	if len(d.FixedIPs) != 2 || !slices.Contains(d.FixedIPs, ports.IP{SubnetID: slaac.ID, IPAddress: eui64(t, "2001:db8:33::/64", d.MACAddress)}) {
		t.Errorf("port with MAC %s on v4+slaac got %+v", d.MACAddress, d.FixedIPs)
	}
	g := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{fixedIP(slaac.ID, "")}})
	if len(g.FixedIPs) != 1 || g.FixedIPs[0].IPAddress != eui64(t, "2001:db8:33::/64", g.MACAddress) {
		t.Errorf("slaac port with MAC %s got %+v", g.MACAddress, g.FixedIPs)
	}
	// A port with a chosen MAC gets the EUI-64 address of that MAC.
	p := createPort(t, c, rawPort{"network_id": n.ID, "mac_address": "fa:16:3e:12:34:56"})
	want := map[string]string{v4.ID: "", slaac.ID: eui64(t, "2001:db8:33::/64", "fa:16:3e:12:34:56")}
	if want[slaac.ID] != "2001:db8:33:0:f816:3eff:fe12:3456" {
		t.Fatalf("test's own EUI-64 is wrong: %s", want[slaac.ID])
	}
	if len(p.FixedIPs) != 2 {
		t.Errorf("port on v4+slaac = %+v, want two addresses", p.FixedIPs)
	}
	for _, ip := range p.FixedIPs {
		switch ip.SubnetID {
		case v4.ID:
		case slaac.ID:
			if ip.IPAddress != want[slaac.ID] {
				t.Errorf("slaac address = %s, want %s", ip.IPAddress, want[slaac.ID])
			}
		default:
			t.Errorf("address on unknown subnet: %+v", ip)
		}
	}
	// Neutron: ipam AllocationOnAutoAddressSubnet, an InvalidInput (400).
	_, err = ports.Create(ctx, c, rawPort{"network_id": n.ID, "fixed_ips": []any{fixedIP(slaac.ID, "2001:db8:33::99")}}).Extract()
	wantError(t, err, http.StatusBadRequest, "AllocationOnAutoAddressSubnet")

	// SLAAC needs a /64.
	_, err = subnets.Create(ctx, c, rawSubnet{"network_id": n.ID, "cidr": "2001:db8:34::/80", "ip_version": 6, "ipv6_address_mode": "slaac"}).Extract()
	wantError(t, err, http.StatusBadRequest, "InvalidInput")
	// Mismatched modes.
	_, err = subnets.Create(ctx, c, rawSubnet{"network_id": n.ID, "cidr": "2001:db8:35::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "dhcpv6-stateful"}).Extract()
	wantError(t, err, http.StatusBadRequest, "InvalidInput")
	// IPv6 modes on an IPv4 subnet.
	_, err = subnets.Create(ctx, c, rawSubnet{"network_id": n.ID, "cidr": "10.34.0.0/24", "ip_version": 4, "ipv6_address_mode": "slaac"}).Extract()
	wantError(t, err, http.StatusBadRequest, "InvalidInput")

	n6 := createNet(t, c, rawNet{"name": uniq("v6-stateful")})
	stateful, err := subnets.Create(ctx, c, subnets.CreateOpts{
		NetworkID: n6.ID, CIDR: "2001:db8:36::/64", IPVersion: gophercloud.IPv6,
		IPv6AddressMode: "dhcpv6-stateful", IPv6RAMode: "dhcpv6-stateful",
	}).Extract()
	must(t, err)
	prefix := netip.MustParsePrefix("2001:db8:36::/64")
	seen := map[string]bool{}
	for range 3 {
		p := createPort(t, c, rawPort{"network_id": n6.ID})
		if len(p.FixedIPs) != 1 || p.FixedIPs[0].SubnetID != stateful.ID {
			t.Fatalf("stateful port = %+v", p.FixedIPs)
		}
		a := netip.MustParseAddr(p.FixedIPs[0].IPAddress)
		if !prefix.Contains(a) || a.String() == stateful.GatewayIP || seen[a.String()] || a.String() == eui64(t, "2001:db8:36::/64", p.MACAddress) {
			t.Errorf("stateful address %s (MAC %s) not a fresh pool address", a, p.MACAddress)
		}
		seen[a.String()] = true
	}
	explicit := createPort(t, c, rawPort{"network_id": n6.ID, "fixed_ips": []any{fixedIP("", "2001:db8:36::abcd")}})
	if explicit.FixedIPs[0].IPAddress != "2001:db8:36::abcd" {
		t.Errorf("explicit stateful address = %+v", explicit.FixedIPs)
	}
}

// TestSLAACAddressFollowsTheMAC: as Neutron's update_port_with_ips, an
// admin's MAC change recomputes the port's EUI-64 address (rather than
// refusing the port's own SLAAC address as an explicit request).
func TestSLAACAddressFollowsTheMAC(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n := createNet(t, c, rawNet{"name": uniq("slaac-mac")})
	slaac, err := subnets.Create(ctx, c, rawSubnet{"network_id": n.ID, "cidr": "2001:db8:37::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}).Extract()
	must(t, err)
	p := createPort(t, c, rawPort{"network_id": n.ID})
	var up port
	must(t, ports.Update(ctx, shared.admin.net(t), p.ID, update(rawPort{"mac_address": "fa:16:3e:37:00:01"})).ExtractInto(&up))
	want := ports.IP{SubnetID: slaac.ID, IPAddress: eui64(t, "2001:db8:37::/64", "fa:16:3e:37:00:01")}
	if up.MACAddress != "fa:16:3e:37:00:01" || len(up.FixedIPs) != 1 || up.FixedIPs[0] != want {
		t.Errorf("after the MAC change the port has %s %+v, want %+v", up.MACAddress, up.FixedIPs, want)
	}
}

// TestSLAACSubnetAddsAddressesToExistingPorts: as Neutron's
// add_auto_addrs_on_network_ports, creating a SLAAC subnet gives every
// port already on the network its EUI-64 address there.
func TestSLAACSubnetAddsAddressesToExistingPorts(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, _ := netWithSubnet(t, c, uniq("slaac-late"), "10.38.0.0/24")
	p := createPort(t, c, rawPort{"network_id": n.ID})
	slaac, err := subnets.Create(ctx, c, rawSubnet{"network_id": n.ID, "cidr": "2001:db8:38::/64", "ip_version": 6, "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac"}).Extract()
	must(t, err)
	var got port
	must(t, ports.Get(ctx, c, p.ID).ExtractInto(&got))
	want := ports.IP{SubnetID: slaac.ID, IPAddress: eui64(t, "2001:db8:38::/64", p.MACAddress)}
	if len(got.FixedIPs) != 2 || !slices.Contains(got.FixedIPs, want) {
		t.Errorf("existing port after a SLAAC subnet was added has %+v, want also %+v", got.FixedIPs, want)
	}
}

// TestBulkSubnetCreateChecksOverlapWithinTheRequest: two overlapping
// subnets for one network in one bulk request are refused like two
// separate requests would be, and neither is created.
func TestBulkSubnetCreateChecksOverlapWithinTheRequest(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n := createNet(t, c, rawNet{"name": uniq("bulk-overlap")})
	r := shared.raw(t, shared.a, http.MethodPost, "/v2.0/subnets", jsonBody(t, map[string]any{"subnets": []any{
		map[string]any{"network_id": n.ID, "ip_version": 4, "cidr": "10.48.0.0/24"},
		map[string]any{"network_id": n.ID, "ip_version": 4, "cidr": "10.48.0.0/25"},
	}}))
	wantRaw(t, r, http.StatusBadRequest, "InvalidInput")
	if got := getNet(t, c, n.ID); len(got.Subnets) != 0 {
		t.Errorf("network has subnets %v after a refused bulk create", got.Subnets)
	}
}

// TestSubnetValidation: overlapping CIDRs on one network, pools outside the
// CIDR, overlapping pools, a gateway inside a pool and mismatched versions
// are refused with Neutron's types.
func TestSubnetValidation(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("subval"), "10.40.0.0/24")
	pool := func(s, e string) map[string]any { return map[string]any{"start": s, "end": e} }
	for _, tc := range []struct {
		name   string
		body   rawSubnet
		status int
		typ    string
	}{
		{"OverlappingCIDR", rawSubnet{"cidr": "10.40.0.128/25"}, http.StatusBadRequest, "InvalidInput"},
		{"EnclosingCIDR", rawSubnet{"cidr": "10.40.0.0/16"}, http.StatusBadRequest, "InvalidInput"},
		{"PoolOutsideCIDR", rawSubnet{"cidr": "10.41.0.0/24", "allocation_pools": []any{pool("10.42.0.2", "10.42.0.9")}}, http.StatusBadRequest, "OutOfBoundsAllocationPool"},
		{"PoolIncludesBroadcast", rawSubnet{"cidr": "10.41.0.0/24", "allocation_pools": []any{pool("10.41.0.2", "10.41.0.255")}}, http.StatusBadRequest, "OutOfBoundsAllocationPool"},
		{"PoolStartAfterEnd", rawSubnet{"cidr": "10.41.0.0/24", "allocation_pools": []any{pool("10.41.0.9", "10.41.0.2")}}, http.StatusBadRequest, "InvalidAllocationPool"},
		{"OverlappingPools", rawSubnet{"cidr": "10.41.0.0/24", "allocation_pools": []any{pool("10.41.0.2", "10.41.0.20"), pool("10.41.0.10", "10.41.0.30")}}, http.StatusConflict, "OverlappingAllocationPools"},
		{"GatewayInPool", rawSubnet{"cidr": "10.41.0.0/24", "gateway_ip": "10.41.0.5", "allocation_pools": []any{pool("10.41.0.2", "10.41.0.20")}}, http.StatusConflict, "GatewayConflictWithAllocationPools"},
		{"GatewayIsBroadcast", rawSubnet{"cidr": "10.41.0.0/24", "gateway_ip": "10.41.0.255"}, http.StatusBadRequest, "InvalidInput"},
		{"VersionMismatch", rawSubnet{"cidr": "2001:db8:41::/64", "ip_version": 4}, http.StatusBadRequest, "InvalidInput"},
		{"BadVersion", rawSubnet{"cidr": "10.41.0.0/24", "ip_version": 5}, http.StatusBadRequest, "HTTPBadRequest"},
		{"HostBitsSet", rawSubnet{"cidr": "10.41.0.1/24"}, http.StatusBadRequest, "HTTPBadRequest"},
		{"NotACIDR", rawSubnet{"cidr": "10.41.0.0/33"}, http.StatusBadRequest, "HTTPBadRequest"},
		{"NotAnAddress", rawSubnet{"cidr": "banana"}, http.StatusBadRequest, "HTTPBadRequest"},
		{"TooManyNameservers", rawSubnet{"cidr": "10.41.0.0/24", "dns_nameservers": []any{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"}}, http.StatusBadRequest, "DNSNameServersExhausted"},
		{"DuplicateNameserver", rawSubnet{"cidr": "10.41.0.0/24", "dns_nameservers": []any{"192.0.2.1", "192.0.2.1"}}, http.StatusBadRequest, "HTTPBadRequest"},
		// Without a cidr a subnet needs a pool (subnet_allocation).
		{"MissingCIDR", rawSubnet{"cidr": nil}, http.StatusBadRequest, "BadRequest"},
		{"MissingNetwork", rawSubnet{"network_id": nil}, http.StatusBadRequest, "HTTPBadRequest"},
		{"UnknownNetwork", rawSubnet{"cidr": "10.41.0.0/24", "network_id": "8d3fbb57-4c2d-4a52-9d8a-2a1d0f0a0a0a"}, http.StatusNotFound, "NetworkNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := rawSubnet{"network_id": n.ID, "ip_version": 4}
			for k, v := range tc.body {
				if v == nil {
					delete(body, k)
				} else {
					body[k] = v
				}
			}
			_, err := subnets.Create(ctx, c, body).Extract()
			wantError(t, err, tc.status, tc.typ)
		})
	}
	if got := getNet(t, c, n.ID); !slices.Equal(got.Subnets, []string{sn.ID}) {
		t.Errorf("refused creates changed the network's subnets: %v", got.Subnets)
	}

	// The same rules on update.
	gw := "10.40.0.10"
	_, err := subnets.Update(ctx, c, sn.ID, subnets.UpdateOpts{GatewayIP: &gw}).Extract()
	wantError(t, err, http.StatusConflict, "GatewayConflictWithAllocationPools")
	_, err = subnets.Update(ctx, c, sn.ID, subnets.UpdateOpts{AllocationPools: []subnets.AllocationPool{{Start: "10.40.0.2", End: "10.40.1.9"}}}).Extract()
	wantError(t, err, http.StatusBadRequest, "OutOfBoundsAllocationPool")
	_, err = subnets.Update(ctx, c, sn.ID, update(rawSubnet{"cidr": "10.40.0.0/23"})).Extract()
	wantError(t, err, http.StatusBadRequest, "HTTPBadRequest")
	got, err := subnets.Get(ctx, c, sn.ID).Extract()
	must(t, err)
	if got.GatewayIP != "10.40.0.1" || got.CIDR != "10.40.0.0/24" || len(got.AllocationPools) != 1 || got.AllocationPools[0].End != "10.40.0.254" {
		t.Errorf("refused updates changed the subnet: %+v", got)
	}
	// No gateway: the pool may then start at .1.
	none, err := subnets.Create(ctx, c, rawSubnet{"network_id": n.ID, "ip_version": 4, "cidr": "10.43.0.0/24", "gateway_ip": nil}).Extract()
	must(t, err)
	if none.GatewayIP != "" || len(none.AllocationPools) != 1 || none.AllocationPools[0].Start != "10.43.0.1" {
		t.Errorf("gateway-less subnet = %+v", none)
	}
}

// TestDeleteInUse: a subnet with addresses allocated and a network with
// ports cannot be deleted (409); once the ports are gone they can.
func TestDeleteInUse(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("inuse"), "10.44.0.0/24")
	p := createPort(t, c, rawPort{"network_id": n.ID})
	wantError(t, subnets.Delete(ctx, c, sn.ID).ExtractErr(), http.StatusConflict, "SubnetInUse")
	wantError(t, networks.Delete(ctx, c, n.ID).ExtractErr(), http.StatusConflict, "NetworkInUse")
	// An address-less port keeps the network but not the subnet in use.
	q := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{}})
	must(t, ports.Delete(ctx, c, p.ID).ExtractErr())
	must(t, subnets.Delete(ctx, c, sn.ID).ExtractErr())
	wantError(t, networks.Delete(ctx, c, n.ID).ExtractErr(), http.StatusConflict, "NetworkInUse")
	must(t, ports.Delete(ctx, c, q.ID).ExtractErr())
	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
}

// TestServicePortsDoNotBlockDelete: DHCP ports belong to the network's
// services; deleting their subnet takes their address on it, deleting the
// network takes them along. A user's port still blocks both.
func TestServicePortsDoNotBlockDelete(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("dhcp"), "10.46.0.0/24")
	sn2 := createSubnet(t, c, n.ID, "10.47.0.0/24")
	dhcp := createPort(t, c, rawPort{"network_id": n.ID, "device_owner": "network:dhcp", "fixed_ips": []any{fixedIP(sn.ID, ""), fixedIP(sn2.ID, "")}})
	user := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{fixedIP(sn2.ID, "")}})

	must(t, subnets.Delete(ctx, c, sn.ID).ExtractErr())
	var got port
	must(t, ports.Get(ctx, c, dhcp.ID).ExtractInto(&got))
	if len(got.FixedIPs) != 1 || got.FixedIPs[0] != dhcp.FixedIPs[1] {
		t.Errorf("DHCP port after its subnet's deletion has %+v, want only %+v", got.FixedIPs, dhcp.FixedIPs[1])
	}
	wantError(t, subnets.Delete(ctx, c, sn2.ID).ExtractErr(), http.StatusConflict, "SubnetInUse")
	wantError(t, networks.Delete(ctx, c, n.ID).ExtractErr(), http.StatusConflict, "NetworkInUse")
	must(t, ports.Delete(ctx, c, user.ID).ExtractErr())
	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
	wantError(t, ports.Get(ctx, c, dhcp.ID).Err, http.StatusNotFound, "PortNotFound")
	wantError(t, subnets.Get(ctx, c, sn2.ID).Err, http.StatusNotFound, "SubnetNotFound")
	if left := listPorts(t, c, ports.ListOpts{NetworkID: n.ID}); len(left) != 0 {
		t.Errorf("ports left on the deleted network: %v", portIDs(left))
	}
}

// TestMACAddresses: a MAC is unique within a network, not across networks;
// invalid MACs are 400s; only admins may change a port's MAC.
func TestMACAddresses(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n := createNet(t, c, rawNet{"name": uniq("mac")})
	other := createNet(t, c, rawNet{"name": uniq("mac-other")})
	p := createPort(t, c, rawPort{"network_id": n.ID, "mac_address": "FA:16:3E:AA:BB:CC"})
	if p.MACAddress != "fa:16:3e:aa:bb:cc" {
		t.Errorf("mac = %s, want it normalised to fa:16:3e:aa:bb:cc", p.MACAddress)
	}
	_, err := ports.Create(ctx, c, rawPort{"network_id": n.ID, "mac_address": "fa:16:3e:aa:bb:cc"}).Extract()
	wantError(t, err, http.StatusConflict, "MacAddressInUse")
	if q := createPort(t, c, rawPort{"network_id": other.ID, "mac_address": "fa:16:3e:aa:bb:cc"}); q.MACAddress != "fa:16:3e:aa:bb:cc" {
		t.Errorf("port on another network asking for the same MAC got %q", q.MACAddress)
	}
	for _, bad := range []any{"fa:16:3e:aa:bb", "01:00:5e:00:00:01", "00:00:00:00:00:00", "zz:16:3e:aa:bb:cc", 42} {
		_, err := ports.Create(ctx, c, rawPort{"network_id": n.ID, "mac_address": bad}).Extract()
		wantError(t, err, http.StatusBadRequest, "HTTPBadRequest")
	}
	_, err = ports.Update(ctx, c, p.ID, update(rawPort{"mac_address": "fa:16:3e:aa:bb:dd"})).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")

	// The admin's MAC change frees the old MAC for another port.
	var up port
	must(t, ports.Update(ctx, shared.admin.net(t), p.ID, update(rawPort{"mac_address": "fa:16:3e:aa:bb:dd"})).ExtractInto(&up))
	if up.MACAddress != "fa:16:3e:aa:bb:dd" {
		t.Errorf("mac after admin update = %s", up.MACAddress)
	}
	if q := createPort(t, c, rawPort{"network_id": n.ID, "mac_address": "fa:16:3e:aa:bb:cc"}); q.MACAddress != "fa:16:3e:aa:bb:cc" {
		t.Errorf("port asking for the freed MAC got %q", q.MACAddress)
	}
	_, err = ports.Create(ctx, c, rawPort{"network_id": n.ID, "mac_address": "fa:16:3e:aa:bb:dd"}).Extract()
	wantError(t, err, http.StatusConflict, "MacAddressInUse")
}

// TestBulkPortCreateIsAllOrNothing: a bulk create with one invalid item
// creates none of the ports and allocates none of their addresses.
func TestBulkPortCreateIsAllOrNothing(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, _ := netWithSubnet(t, c, uniq("bulk"), "10.45.0.0/24")
	count := func() int { return len(listPorts(t, c, ports.ListOpts{NetworkID: n.ID})) }
	bulk := func(items ...map[string]any) rawResult {
		list := make([]any, len(items))
		for i, it := range items {
			list[i] = it
		}
		return shared.raw(t, shared.a, http.MethodPost, "/v2.0/ports", jsonBody(t, map[string]any{"ports": list}))
	}
	ok := map[string]any{"network_id": n.ID, "fixed_ips": []any{fixedIP("", "10.45.0.10")}}

	r := bulk(ok, map[string]any{"network_id": n.ID, "fixed_ips": []any{fixedIP("", "10.99.0.1")}})
	wantRaw(t, r, http.StatusBadRequest, "InvalidIpForNetwork")
	r = bulk(ok, map[string]any{"network_id": n.ID, "mac_address": "not-a-mac"})
	wantRaw(t, r, http.StatusBadRequest, "HTTPBadRequest")
	r = bulk(ok, map[string]any{"network_id": n.ID, "fixed_ips": []any{fixedIP("", "10.45.0.10")}})
	wantRaw(t, r, http.StatusConflict, "IpAddressAlreadyAllocated")
	r = bulk(ok, map[string]any{"network_id": "8d3fbb57-4c2d-4a52-9d8a-2a1d0f0a0a0a"})
	wantRaw(t, r, http.StatusNotFound, "NetworkNotFound")
	if got := count(); got != 0 {
		t.Fatalf("failed bulk creates left %d ports", got)
	}
	// The address the failed requests named is still free.
	createPort(t, c, rawPort(ok))

	r = bulk(map[string]any{"network_id": n.ID, "name": "b1"}, map[string]any{"port": map[string]any{"network_id": n.ID, "name": "b2"}})
	if r.status != http.StatusCreated {
		t.Fatalf("valid bulk create = %d %s", r.status, r.body)
	}
	var body struct {
		Ports []port `json:"ports"`
	}
	decode(t, r, &body)
	if len(body.Ports) != 2 || body.Ports[0].Name != "b1" || body.Ports[1].Name != "b2" ||
		body.Ports[0].FixedIPs[0].IPAddress == body.Ports[1].FixedIPs[0].IPAddress {
		t.Errorf("bulk-created ports = %+v", body.Ports)
	}
	if got := count(); got != 3 {
		t.Errorf("%d ports after a good bulk create, want 3", got)
	}
}

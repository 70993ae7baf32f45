package agent

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/l2"
)

// IDs of the translation tests.
const (
	tNet     = "5e2c8a41-7d3b-4f6e-9a1c-2b3d4e5f6a7b"
	tNetDown = "6f3d9b52-8e4c-4a7f-8b2d-3c4e5f6a7b8c"
	tNetOff  = "7a4eac63-9f5d-4b8a-9c3e-4d5f6a7b8c9d"
	tS4      = "s4-aaaa"
	tS4b     = "s4-bbbb"
	tS4off   = "s4-off"
	tS6      = "s6-aaaa"
	tSOther  = "s4-other"
	tDHCP    = "dddddddd-0000-4000-8000-000000000001"
	tVM1     = "11111111-0000-4000-8000-000000000001"
	tVM2     = "22222222-0000-4000-8000-000000000002"
	tVM3     = "33333333-0000-4000-8000-000000000003"
	tVM4     = "44444444-0000-4000-8000-000000000004"
	tOther   = "55555555-0000-4000-8000-000000000005"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func fixed(subnet, addr string) agentapi.FixedIP {
	return agentapi.FixedIP{SubnetID: subnet, IPAddress: ip(addr)}
}

// translationView is a host serving DHCP for tNet, with subnets of every
// kind, ports with and without DHCP addresses, and DHCP ports that must not
// be served (remote, or on an admin-down network).
func translationView() (map[string]agentapi.Network, map[string]agentapi.Subnet, map[string]agentapi.Port) {
	nets := map[string]agentapi.Network{
		tNet:     {ID: tNet, Type: "vxlan", SegmentationID: 7, MTU: 1450, AdminStateUp: true},
		tNetDown: {ID: tNetDown, Type: "vxlan", SegmentationID: 8, MTU: 1450, AdminStateUp: false},
		tNetOff:  {ID: tNetOff, Type: "vxlan", SegmentationID: 9, MTU: 1400, AdminStateUp: true},
	}
	subnets := map[string]agentapi.Subnet{
		tS4: {ID: tS4, NetworkID: tNet, IPVersion: 4, CIDR: pfx("10.0.0.0/24"), GatewayIP: ip("10.0.0.1"), EnableDHCP: true,
			HostRoutes: []agentapi.HostRoute{
				{Destination: pfx("172.16.0.0/12"), NextHop: ip("10.0.0.254")},
				{Destination: pfx("fd99::/64"), NextHop: ip("fd00::99")},
			}},
		tS4b:    {ID: tS4b, NetworkID: tNet, IPVersion: 4, CIDR: pfx("10.1.0.0/24"), EnableDHCP: true, DNSNameservers: []netip.Addr{ip("8.8.8.8"), ip("2001:db8::53")}},
		tS4off:  {ID: tS4off, NetworkID: tNet, IPVersion: 4, CIDR: pfx("10.2.0.0/24"), GatewayIP: ip("10.2.0.1"), EnableDHCP: false},
		tS6:     {ID: tS6, NetworkID: tNet, IPVersion: 6, CIDR: pfx("fd00::/64"), GatewayIP: ip("fd00::1"), EnableDHCP: true},
		tSOther: {ID: tSOther, NetworkID: tNetDown, IPVersion: 4, CIDR: pfx("10.9.0.0/24"), EnableDHCP: true},
	}
	ports := map[string]agentapi.Port{
		tDHCP: {ID: tDHCP, NetworkID: tNet, MACAddress: "fa:16:3e:00:00:02", DeviceOwner: OwnerDHCP, Local: true, Host: "net1",
			FixedIPs: []agentapi.FixedIP{fixed(tS4, "10.0.0.2"), fixed(tS4b, "10.1.0.2"), fixed(tS6, "fd00::2")}},
		tVM1: {ID: tVM1, NetworkID: tNet, MACAddress: "FA:16:3E:00:00:10", DeviceOwner: "compute:nova", Host: "c1", VTEP: ip("10.250.0.11"),
			FixedIPs: []agentapi.FixedIP{fixed(tS6, "fd00::10"), fixed(tS4, "10.0.0.10"), fixed(tS4b, "10.1.0.10")},
			DNSName:  "web",
			ExtraDHCPOpts: []agentapi.DHCPOpt{
				{OptName: "tftp-server", OptValue: "10.0.0.99", IPVersion: 4},
				{OptName: "bootfile-name", OptValue: "pxelinux.0"},
				{OptName: "dns-server", OptValue: "[fd00::53]", IPVersion: 6},
			}},
		// Unbound: it is served all the same, from its DHCP-enabled subnet.
		tVM2: {ID: tVM2, NetworkID: tNet, MACAddress: "fa:16:3e:00:00:20",
			FixedIPs: []agentapi.FixedIP{fixed(tS4off, "10.2.0.5"), fixed(tS4b, "10.1.0.7")}},
		// Only in a subnet without DHCP, and IPv6.
		tVM3: {ID: tVM3, NetworkID: tNet, MACAddress: "fa:16:3e:00:00:30",
			FixedIPs: []agentapi.FixedIP{fixed(tS4off, "10.2.0.6"), fixed(tS6, "fd00::30")}},
		// No usable MAC.
		tVM4: {ID: tVM4, NetworkID: tNet, MACAddress: "not-a-mac", FixedIPs: []agentapi.FixedIP{fixed(tS4, "10.0.0.40")}},
		// A DHCP port on an admin-down network, and a remote one.
		tOther: {ID: tOther, NetworkID: tNetDown, MACAddress: "fa:16:3e:00:00:50", DeviceOwner: OwnerDHCP, Local: true,
			FixedIPs: []agentapi.FixedIP{fixed(tSOther, "10.9.0.2")}},
		"66666666-0000-4000-8000-000000000006": {ID: "66666666-0000-4000-8000-000000000006", NetworkID: tNetOff,
			MACAddress: "fa:16:3e:00:00:60", DeviceOwner: OwnerDHCP, Host: "net2", VTEP: ip("10.250.0.102")},
	}
	return nets, subnets, ports
}

func TestDHCPServicesFromView(t *testing.T) {
	nets, subnets, ports := translationView()
	cfg := dhcpConfig{LeaseTime: 2 * time.Hour, Domain: "example.test"}
	svcs := dhcpServices(nets, subnets, ports, cfg)
	if len(svcs) != 1 {
		t.Fatalf("%d services, want only tNet's: %+v", len(svcs), svcs)
	}
	s := svcs[0]
	if s.NetworkID != tNet || s.PortID != tDHCP || s.MAC.String() != "fa:16:3e:00:00:02" || s.MTU != 1450 {
		t.Errorf("service %s port %s mac %s mtu %d", s.NetworkID, s.PortID, s.MAC, s.MTU)
	}
	if want := []netip.Prefix{pfx("10.0.0.2/24"), pfx("10.1.0.2/24"), pfx("fd00::2/64")}; !slices.Equal(s.Addrs, want) {
		t.Errorf("addrs %v, want %v", s.Addrs, want)
	}
	if want := []netip.Prefix{pfx("10.0.0.2/24"), pfx("10.1.0.2/24")}; !slices.Equal(s.Table.Servers, want) {
		t.Errorf("servers %v, want %v", s.Table.Servers, want)
	}
	if err := s.Table.Validate(); err != nil {
		t.Errorf("table does not validate: %v", err)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range s.Table.Hosts {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"fa:16:3e:00:00:10", "fa:16:3e:00:00:20"}; !slices.Equal(keys, want) {
		t.Fatalf("hosts %v, want %v (VM1 and the unbound VM2; not the DHCP port, VM3 without a DHCPv4 address, VM4 without a MAC)", keys, want)
	}
	vm1 := s.Table.Hosts["fa:16:3e:00:00:10"]
	want1 := dhcp.Reservation{
		MAC: mustMAC("fa:16:3e:00:00:10"), IP: ip("10.0.0.10"), Prefix: pfx("10.0.0.0/24"), Router: ip("10.0.0.1"),
		DNS:        []netip.Addr{ip("10.0.0.2")},
		HostRoutes: []dhcp.Route{{Dst: pfx("172.16.0.0/12"), NextHop: ip("10.0.0.254")}},
		MTU:        1450, DomainName: "example.test", Hostname: "web", LeaseTime: 2 * time.Hour,
		ExtraOptions: []dhcp.Option{{Name: "tftp-server", Value: "10.0.0.99"}, {Name: "bootfile-name", Value: "pxelinux.0"}},
	}
	if !reflect.DeepEqual(vm1, want1) {
		t.Errorf("VM1 reservation\n got %+v\nwant %+v", vm1, want1)
	}
	vm2 := s.Table.Hosts["fa:16:3e:00:00:20"]
	want2 := dhcp.Reservation{
		MAC: mustMAC("fa:16:3e:00:00:20"), IP: ip("10.1.0.7"), Prefix: pfx("10.1.0.0/24"),
		DNS: []netip.Addr{ip("8.8.8.8")}, MTU: 1450, DomainName: "example.test", Hostname: "host-10-1-0-7", LeaseTime: 2 * time.Hour,
	}
	if !reflect.DeepEqual(vm2, want2) {
		t.Errorf("VM2 reservation (no gateway, the subnet's IPv4 name server)\n got %+v\nwant %+v", vm2, want2)
	}
	// The same view gives the same services.
	if again := dhcpServices(nets, subnets, ports, cfg); !reflect.DeepEqual(again, svcs) {
		t.Error("dhcpServices is not deterministic")
	}
}

func TestDHCPServicesEdgeCases(t *testing.T) {
	nets, subnets, ports := translationView()
	cfg := dhcpConfig{Domain: DefaultDNSDomain}

	// dns_nameservers = [0.0.0.0] sends no DNS option at all.
	sn := subnets[tS4]
	sn.DNSNameservers = []netip.Addr{ip("0.0.0.0")}
	subnets[tS4] = sn
	s := dhcpServices(nets, subnets, ports, cfg)[0]
	if r := s.Table.Hosts["fa:16:3e:00:00:10"]; r.DNS != nil || r.LeaseTime != 0 || r.DomainName != "openstacklocal" {
		t.Errorf("reservation with dns 0.0.0.0: dns %v lease %v domain %q", r.DNS, r.LeaseTime, r.DomainName)
	}

	// A subnet the view does not hold yet: the DHCP port's address there is
	// left out until it arrives, and so are the ports only in it.
	delete(subnets, tS4b)
	s = dhcpServices(nets, subnets, ports, cfg)[0]
	if want := []netip.Prefix{pfx("10.0.0.2/24"), pfx("fd00::2/64")}; !slices.Equal(s.Addrs, want) {
		t.Errorf("addrs without subnet %s: %v, want %v", tS4b, s.Addrs, want)
	}
	if _, ok := s.Table.Hosts["fa:16:3e:00:00:20"]; ok {
		t.Error("VM2 is served though its only DHCP subnet is unknown")
	}

	// DHCP disabled on every IPv4 subnet: the service stays (the namespace
	// is the network's), with nothing to serve.
	for id, sn := range subnets {
		sn.EnableDHCP = false
		subnets[id] = sn
	}
	s = dhcpServices(nets, subnets, ports, cfg)[0]
	if len(s.Table.Servers) != 0 || len(s.Table.Hosts) != 0 {
		t.Errorf("table without DHCP subnets: %+v", s.Table)
	}

	// No local DHCP port: no service.
	d := ports[tDHCP]
	d.Local = false
	ports[tDHCP] = d
	if svcs := dhcpServices(nets, subnets, ports, cfg); len(svcs) != 0 {
		t.Errorf("services without a local DHCP port: %+v", svcs)
	}
}

// TestDesiredWiresDHCPTap: the DHCP port's tap is a local tap of the L2
// plan, and the DHCP port is known as one.
func TestDesiredWiresDHCPTap(t *testing.T) {
	nets, subnets, ports := translationView()
	a := &Agent{networks: nets, subnets: subnets, ports: ports, synced: true, dhcp: dhcpConfig{Domain: DefaultDNSDomain}}
	d := a.desired()
	tap := l2.TapName(tDHCP)
	if d.taps[tap] != tDHCP {
		t.Errorf("taps %v lack the DHCP port's %s", d.taps, tap)
	}
	found := false
	for _, n := range d.l2.Networks {
		if n.ID == tNet {
			found = slices.Contains(n.Taps, tap)
		}
	}
	if !found {
		t.Errorf("L2 plan of %s lacks %s: %+v", tNet, tap, d.l2.Networks)
	}
	if d.dhcpPorts[tDHCP] != tNet || d.dhcpPorts[tOther] != tNetDown || len(d.dhcpPorts) != 2 {
		t.Errorf("dhcp ports %v", d.dhcpPorts)
	}
	if len(d.dhcp) != 1 || d.dhcp[0].NetworkID != tNet {
		t.Errorf("services %+v", d.dhcp)
	}
}

func TestNormalizeDomainAndLease(t *testing.T) {
	for in, want := range map[string]string{"": "openstacklocal", "openstacklocal.": "openstacklocal", " example.org. ": "example.org"} {
		if got := normalizeDomain(in); got != want {
			t.Errorf("normalizeDomain(%q) = %q, want %q", in, got, want)
		}
	}
	for d, want := range map[time.Duration]int64{0: 86400, -1: -1, 90 * time.Second: 90} {
		if got := leaseSeconds(d); got != want {
			t.Errorf("leaseSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

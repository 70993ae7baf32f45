package agent

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/dhcp6"
	"github.com/vland/vland/internal/dataplane/qdhcp"
	"github.com/vland/vland/internal/dataplane/ra"
)

// OwnerDHCP is the device_owner of a DHCP port: a local one is a network
// this host serves DHCP for.
const OwnerDHCP = "network:dhcp"

// DefaultDNSDomain is the domain handed out in DHCP option 15 when the
// agent is given none: Neutron's dns_domain default.
const DefaultDNSDomain = "openstacklocal"

// dhcpConfig is what the agent's configuration adds to the view when it
// computes DHCP tables.
type dhcpConfig struct {
	// LeaseTime is offered to every client: 0 means dhcp.DefaultLeaseTime,
	// negative an infinite lease.
	LeaseTime time.Duration
	// Domain is option 15, without a trailing dot.
	Domain string
	// RAInterval is the most time between unsolicited router
	// advertisements; zero is the ra package's default.
	RAInterval time.Duration
}

// dhcpServices translates a host view into the DHCP services the host runs:
// one per local DHCP port (device_owner network:dhcp) of a network that is
// administratively up (Neutron's DHCP agent serves no other), in port ID
// order. The table of each answers every other port of the network that has
// an address in a DHCP-enabled IPv4 subnet, bound or not, with that address
// (the port's first such address when it has several: a server answers a MAC
// with one address) and its subnet's options:
//
//   - Router: the subnet's gateway_ip, none when it has none;
//   - DNS: the subnet's dns_nameservers (IPv4 ones; a lone 0.0.0.0 sends
//     none, as in Neutron), else the DHCP port's own address in the subnet;
//   - HostRoutes: the subnet's IPv4 host_routes;
//   - MTU: the network's; DomainName and LeaseTime: the agent's;
//   - Hostname: the port's dns_name, else host-<address with dashes>;
//   - ExtraOptions: the port's extra_dhcp_opts for IPv4 (ip_version 4, or
//     unset).
//
// The server addresses are the DHCP port's addresses in DHCP-enabled IPv4
// subnets; the device gets all of the port's addresses. Addresses in subnets
// the view does not (yet) hold are left out until it does. It is pure: the
// same view always gives the same services.
func dhcpServices(networks map[string]agentapi.Network, subnets map[string]agentapi.Subnet, ports map[string]agentapi.Port, cfg dhcpConfig) []qdhcp.Service {
	var out []qdhcp.Service
	var byNet map[string][]agentapi.Port // built on first need
	for _, id := range slices.Sorted(maps.Keys(ports)) {
		d := ports[id]
		if !d.Local || d.DeviceOwner != OwnerDHCP {
			continue
		}
		n, ok := networks[d.NetworkID]
		if !ok || !n.AdminStateUp {
			continue
		}
		if byNet == nil {
			byNet = portsByNetwork(ports)
		}
		out = append(out, dhcpService(n, d, subnets, byNet[n.ID], cfg))
	}
	return out
}

// portsByNetwork groups ports by network, each group in ID order.
func portsByNetwork(ports map[string]agentapi.Port) map[string][]agentapi.Port {
	m := map[string][]agentapi.Port{}
	for _, id := range slices.Sorted(maps.Keys(ports)) {
		p := ports[id]
		m[p.NetworkID] = append(m[p.NetworkID], p)
	}
	return m
}

// dhcpService is the service of DHCP port d on network n, whose ports are
// netPorts.
func dhcpService(n agentapi.Network, d agentapi.Port, subnets map[string]agentapi.Subnet, netPorts []agentapi.Port, cfg dhcpConfig) qdhcp.Service {
	mac, _ := net.ParseMAC(d.MACAddress) // an invalid MAC is reported by qdhcp
	s := qdhcp.Service{NetworkID: n.ID, PortID: d.ID, MAC: mac, MTU: n.MTU}
	var servers []netip.Prefix
	serverIn := map[string]netip.Addr{} // subnet ID -> the DHCP port's address there
	for _, f := range d.FixedIPs {
		sn, ok := subnets[f.SubnetID]
		if !ok || sn.NetworkID != n.ID || !sn.CIDR.IsValid() || !f.IPAddress.IsValid() {
			continue
		}
		ip := f.IPAddress.Unmap()
		p := netip.PrefixFrom(ip, sn.CIDR.Bits())
		s.Addrs = append(s.Addrs, p)
		if dhcpV4(sn) && ip.Is4() {
			servers = append(servers, p)
			if _, ok := serverIn[sn.ID]; !ok {
				serverIn[sn.ID] = ip
			}
		}
	}
	var rs []dhcp.Reservation
	for _, p := range netPorts {
		if p.ID == d.ID {
			continue
		}
		if r, ok := reservation(p, n, subnets, serverIn, cfg); ok {
			rs = append(rs, r)
		}
	}
	s.Table = dhcp.NewTable(servers, rs...)
	s.Table6 = dhcpV6Table(n, d, subnets, netPorts, cfg)
	s.RA = advertisement(n, subnets, routedSubnets(netPorts), cfg)
	return s
}

// IPv6 address modes, Neutron's.
const (
	modeSLAAC     = "slaac"
	modeStateful  = "dhcpv6-stateful"
	modeStateless = "dhcpv6-stateless"
)

// dhcpV6 reports whether a subnet is served by DHCPv6: an IPv6 subnet with
// DHCP on and a DHCPv6 address mode (SLAAC hosts need only RAs).
func dhcpV6(sn agentapi.Subnet) bool {
	return sn.EnableDHCP && sn.IPVersion == 6 && (sn.IPv6AddressMode == modeStateful || sn.IPv6AddressMode == modeStateless)
}

// dhcpV6Table is the DHCPv6 table of DHCP port d: every other port with an
// address in a DHCPv6 subnet gets, by MAC, its addresses in the stateful
// ones, and the DNS servers (the subnet's IPv6 dns_nameservers, else the
// DHCP port's address there) and the search domain of the first.
func dhcpV6Table(n agentapi.Network, d agentapi.Port, subnets map[string]agentapi.Subnet, netPorts []agentapi.Port, cfg dhcpConfig) dhcp6.Table {
	var stateful []netip.Prefix
	serverIn := map[string]netip.Addr{}
	for _, f := range d.FixedIPs {
		if sn, ok := subnets[f.SubnetID]; ok && sn.NetworkID == n.ID && dhcpV6(sn) && f.IPAddress.Is6() {
			if _, ok := serverIn[sn.ID]; !ok {
				serverIn[sn.ID] = f.IPAddress
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(subnets)) {
		if sn := subnets[id]; sn.NetworkID == n.ID && dhcpV6(sn) && sn.IPv6AddressMode == modeStateful {
			stateful = append(stateful, sn.CIDR.Masked())
		}
	}
	var rs []dhcp6.Reservation
	for _, p := range netPorts {
		if p.ID == d.ID {
			continue
		}
		mac, err := net.ParseMAC(p.MACAddress)
		if err != nil || len(mac) != 6 {
			continue
		}
		r := dhcp6.Reservation{MAC: mac, LeaseTime: cfg.LeaseTime}
		found := false
		for _, f := range p.FixedIPs {
			sn, ok := subnets[f.SubnetID]
			if !ok || sn.NetworkID != n.ID || !dhcpV6(sn) || !f.IPAddress.Is6() {
				continue
			}
			if !found {
				found = true
				r.DNS = nameservers6(sn, serverIn[sn.ID])
				if cfg.Domain != "" {
					r.DomainSearch = []string{cfg.Domain}
				}
			}
			if sn.IPv6AddressMode == modeStateful {
				r.Addrs = append(r.Addrs, f.IPAddress)
			}
		}
		if found {
			rs = append(rs, r)
		}
	}
	return dhcp6.NewTable(stateful, rs...)
}

// nameservers6 are a subnet's IPv6 DNS servers: its dns_nameservers, none
// for a lone "::", else the DHCP port's own address there.
func nameservers6(sn agentapi.Subnet, server netip.Addr) []netip.Addr {
	if len(sn.DNSNameservers) > 0 {
		var out []netip.Addr
		for _, a := range sn.DNSNameservers {
			if a.Is6() && !a.Is4In6() && !a.IsUnspecified() {
				out = append(out, a)
			}
		}
		return out
	}
	if server.IsValid() {
		return []netip.Addr{server}
	}
	return nil
}

// advertisement is what the DHCP port announces for the network's IPv6
// subnets that have an ipv6_ra_mode (Neutron runs radvd only for those):
// one RA with the flags of every such subnet, its prefix on-link and, for
// slaac and dhcpv6-stateless, autonomous; the network MTU; router lifetime
// zero, since the DHCP port routes nowhere. nil when no subnet wants RAs.
func advertisement(n agentapi.Network, subnets map[string]agentapi.Subnet, routed map[string]bool, cfg dhcpConfig) *ra.Config {
	var list []agentapi.Subnet
	for _, id := range slices.Sorted(maps.Keys(subnets)) {
		if sn := subnets[id]; sn.NetworkID == n.ID && !routed[id] {
			list = append(list, sn)
		}
	}
	c := raConfig(list, 0)
	if c == nil {
		return nil
	}
	c.MTU, c.Interval = n.MTU, cfg.RAInterval
	return c
}

// routedSubnets are the subnets a router has an interface on, among a
// network's ports: their RAs come from the router, as Neutron's radvd.
func routedSubnets(netPorts []agentapi.Port) map[string]bool {
	out := map[string]bool{}
	for _, p := range netPorts {
		if p.DeviceOwner == OwnerRouterInterface || p.DeviceOwner == OwnerRouterInterfaceDistributed {
			for _, f := range p.FixedIPs {
				out[f.SubnetID] = true
			}
		}
	}
	return out
}

// raConfig is the RA for a set of subnets: the flags of every IPv6 subnet
// with an ipv6_ra_mode, its prefix on-link and, for slaac and
// dhcpv6-stateless, autonomous, RDNSS from dns_nameservers; nil when none
// wants RAs. lifetime is the router lifetime (zero: not a router).
func raConfig(list []agentapi.Subnet, lifetime time.Duration) *ra.Config {
	c := ra.Config{RouterLifetime: lifetime}
	for _, sn := range list {
		if sn.IPVersion != 6 || sn.IPv6RAMode == "" || !sn.CIDR.Addr().Is6() {
			continue
		}
		switch sn.IPv6RAMode {
		case modeStateful:
			c.Managed, c.Other = true, true
		case modeStateless:
			c.Other = true
		}
		c.Prefixes = append(c.Prefixes, ra.Prefix{
			Prefix: sn.CIDR.Masked(), OnLink: true,
			Autonomous: sn.IPv6RAMode == modeSLAAC || sn.IPv6RAMode == modeStateless,
		})
		for _, a := range sn.DNSNameservers {
			if a.Is6() && !a.Is4In6() && !a.IsUnspecified() && !slices.Contains(c.DNS, a) {
				c.DNS = append(c.DNS, a)
			}
		}
	}
	if len(c.Prefixes) == 0 {
		return nil
	}
	return &c
}

// dhcpV4 reports whether a subnet is served by DHCPv4.
func dhcpV4(sn agentapi.Subnet) bool {
	return sn.EnableDHCP && sn.IPVersion == 4 && sn.CIDR.Addr().Is4()
}

// reservation is what port p is answered, from its first address in a
// DHCP-enabled IPv4 subnet; ok is false when it has none or no valid MAC.
func reservation(p agentapi.Port, n agentapi.Network, subnets map[string]agentapi.Subnet, serverIn map[string]netip.Addr, cfg dhcpConfig) (dhcp.Reservation, bool) {
	mac, err := net.ParseMAC(p.MACAddress)
	if err != nil || len(mac) != 6 {
		return dhcp.Reservation{}, false
	}
	for _, f := range p.FixedIPs {
		sn, ok := subnets[f.SubnetID]
		ip := f.IPAddress.Unmap()
		if !ok || sn.NetworkID != n.ID || !dhcpV4(sn) || !ip.Is4() {
			continue
		}
		r := dhcp.Reservation{
			MAC: mac, IP: ip, Prefix: sn.CIDR.Masked(), MTU: n.MTU,
			DomainName: cfg.Domain, Hostname: p.DNSName, LeaseTime: cfg.LeaseTime,
		}
		if gw := sn.GatewayIP.Unmap(); gw.Is4() {
			r.Router = gw
		}
		r.DNS = nameservers(sn, serverIn[sn.ID])
		for _, hr := range sn.HostRoutes {
			if hr.Destination.Addr().Is4() {
				r.HostRoutes = append(r.HostRoutes, dhcp.Route{Dst: hr.Destination, NextHop: hr.NextHop.Unmap()})
			}
		}
		if r.Hostname == "" {
			r.Hostname = dhcp.DefaultHostname(ip)
		}
		for _, o := range p.ExtraDHCPOpts {
			if o.IPVersion == 4 || o.IPVersion == 0 {
				r.ExtraOptions = append(r.ExtraOptions, dhcp.Option{Name: o.OptName, Value: o.OptValue})
			}
		}
		return r, true
	}
	return dhcp.Reservation{}, false
}

// nameservers are a subnet's IPv4 DNS servers for DHCP: its
// dns_nameservers, none when that is just 0.0.0.0 (Neutron's way of sending
// no DNS option), else the DHCP port's address in the subnet (where the
// agent will answer DNS).
func nameservers(sn agentapi.Subnet, server netip.Addr) []netip.Addr {
	if len(sn.DNSNameservers) > 0 {
		var out []netip.Addr
		for _, a := range sn.DNSNameservers {
			if a = a.Unmap(); a.Is4() && !a.IsUnspecified() {
				out = append(out, a)
			}
		}
		return out
	}
	if server.IsValid() {
		return []netip.Addr{server}
	}
	return nil
}

// normalizeDomain turns a configured DNS domain into option 15's text:
// the default when empty, without the trailing dot of its FQDN form.
func normalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" {
		return DefaultDNSDomain
	}
	return d
}

package agent

import (
	"net/netip"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/dns"
	"github.com/vland/vland/internal/dataplane/qdhcp"
)

// dnsServices are the DNS services that go with the DHCP services dhcp:
// for each, a server on the DHCP port's addresses (both families) inside
// its qdhcp namespace, answering the names of every port of the network:
//
//   - a port with a dns_name: that name, with all its addresses;
//   - one without: host-<address with dashes> for each address, as Neutron's
//     dns_assignment (and DHCP's hostname option) gives it;
//
// the DHCP port's own names included, under the agent's domain, with
// reverse names for every address. Addresses in subnets the view does not
// hold are left out, as for DHCP. It is pure.
func dnsServices(prefix string, svcs []qdhcp.Service, subnets map[string]agentapi.Subnet, ports map[string]agentapi.Port, cfg dhcpConfig) []dns.Service {
	if len(svcs) == 0 {
		return nil
	}
	byNet := portsByNetwork(ports)
	var out []dns.Service
	for _, s := range svcs {
		var addrs []netip.Addr
		for _, p := range s.Addrs {
			if p.Addr().IsLinkLocalUnicast() {
				continue // the metadata address is no DNS server
			}
			addrs = append(addrs, p.Addr())
		}
		if len(addrs) == 0 {
			continue
		}
		var zones []netip.Prefix
		for _, sn := range subnets {
			if sn.NetworkID == s.NetworkID && sn.CIDR.IsValid() {
				zones = append(zones, sn.CIDR)
			}
		}
		var recs []dns.Record
		for _, p := range byNet[s.NetworkID] {
			recs = append(recs, portRecords(p, s.NetworkID, subnets)...)
		}
		out = append(out, dns.Service{
			NetworkID: s.NetworkID,
			Namespace: qdhcp.NamespaceName(prefix, s.NetworkID),
			Addrs:     addrs,
			Table:     dns.NewTable(cfg.Domain, zones, recs...),
		})
	}
	return out
}

// portRecords are the names of port p on network netID.
func portRecords(p agentapi.Port, netID string, subnets map[string]agentapi.Subnet) []dns.Record {
	var addrs []netip.Addr
	for _, f := range p.FixedIPs {
		sn, ok := subnets[f.SubnetID]
		if !ok || sn.NetworkID != netID || !f.IPAddress.IsValid() {
			continue
		}
		addrs = append(addrs, f.IPAddress.Unmap())
	}
	if len(addrs) == 0 {
		return nil
	}
	if p.DNSName != "" {
		return []dns.Record{{Hostname: p.DNSName, Addrs: addrs}}
	}
	recs := make([]dns.Record, 0, len(addrs))
	for _, a := range addrs {
		recs = append(recs, dns.Record{Hostname: dhcp.DefaultHostname(a), Addrs: []netip.Addr{a}})
	}
	return recs
}

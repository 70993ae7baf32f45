// Package dhcp6 is the DHCPv6 server the vland agent runs beside its DHCPv4
// server in every qdhcp-<netid> namespace whose network has IPv6 subnets in
// the dhcpv6-stateful or dhcpv6-stateless address mode, as Neutron's dnsmasq
// does: stateful clients are given their port's fixed IPv6 address in an
// IA_NA, stateless ones (Information-Request) the DNS servers and search
// domain only. SLAAC subnets need no DHCPv6; their hosts configure
// themselves from router advertisements (package ra).
//
// As in package dhcp, Reply is pure and Server is the thin kernel half: one
// UDP socket on port 547 bound to the DHCP port's device, joined to
// All_DHCP_Relay_Agents_and_Servers (ff02::1:2), answering to the client's
// link-local address. Clients are recognised by MAC: the link-layer address
// in a DUID-LL or DUID-LLT client identifier (what dhclient and systemd send
// by default), else the EUI-64 interface identifier of their link-local
// source address. A client that matches no port gets no answer, and one
// renewing addresses it no longer owns (its port was deleted or its fixed IP
// changed) is told their lifetimes are zero, so it drops them at once.
package dhcp6

// Package dhcp is the DHCPv4 server the vland agent runs in its own process
// for every network it serves, in place of the dnsmasq that Neutron's DHCP
// agent starts per network: one UDP socket inside each qdhcp-<netid>
// namespace, bound to the DHCP port's ns-<portid11> device, answering only
// the MACs of the network's ports with their fixed addresses.
//
// The package has two halves. Reply is pure: a parsed request and a Table of
// static reservations in, the answer out, with dnsmasq's semantics in
// authoritative mode (a client asking for an address that is not its
// reservation, or a port that was deleted, gets a NAK; a stranger's DISCOVER
// gets silence) and with Neutron's options: netmask, broadcast, router
// (omitted when the subnet has no gateway), DNS servers, classless static
// routes (121, and 249 for Windows) with the default route added as RFC 3442
// requires, MTU, domain, hostname, lease, renewal and rebinding times, and a
// port's extra_dhcp_opts by dnsmasq option name or number. Server is the thin
// kernel-facing half: it opens the socket on a thread switched into the
// namespace (the socket stays there), reads datagrams, calls Reply and sends
// the answer, broadcast unless the client already has an address. Its Table
// is swapped atomically, so a port is served as soon as the agent knows it.
//
// Replies are broadcast rather than unicast to the offered address: that
// needs no packet socket, and every client listens for broadcasts until it
// is configured. Reservations are static, so there is no lease database:
// an agent restart loses nothing, and two agents serving the same network
// with the same table give the same answers.
package dhcp

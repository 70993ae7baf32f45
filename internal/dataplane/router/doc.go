// Package router builds the data plane of the Neutron routers placed on a
// vland agent's host, with the names of Neutron's L3 agent so operators'
// habits carry over:
//
//	<prefix>qrouter-<router id>  a named network namespace (bound under
//	                             /run/netns, as `ip netns add` does), with
//	                             lo up, IPv4 and IPv6 forwarding on and
//	                             Neutron's sysctls (arp_ignore=1,
//	                             arp_announce=2, conntrack TCP be_liberal)
//	                             and no IPv6 duplicate address detection
//	qr-<port id11>               inside it, one per router interface: the
//	                             port's MAC, the network MTU and the port's
//	                             fixed IPs (subnet prefix lengths)
//	qg-<port id11>               inside it, the external gateway: the
//	                             gateway port's addresses plus every
//	                             floating IP the router serves as a /32
//	tap<port id11>               the veth peer of each in the host's
//	                             namespace, which the L2 reconcile (package
//	                             l2) enslaves to the network's bridge like
//	                             any local tap (Router.TapNames lists them)
//
// plus static routes (the default route through qg- via the external
// subnet's gateway, onlink when the gateway is outside the subnet; extra
// routes, several next hops for one destination making one multipath
// route) and one nftables table, ip vland-router, that holds the router's
// IPv4 NAT (see nft.go for the rules, after Neutron's iptables chains):
// SNAT of what leaves through qg- to the gateway address (enable_snat), no
// NAT between the router's own subnets, floating IPs (1:1 DNAT and SNAT
// through two maps), port forwardings (DNAT by protocol, address and port
// or port range through maps, at most 131072 elements a router: a range
// mapped to a range takes one per port), hairpin NAT so that VMs reach
// floating IPs of their own network, and the metadata redirect of
// 169.254.169.254:80 to Router.MetadataPort inside the namespace. IPv6
// routes without NAT, as in Neutron.
//
// Manager.Reconcile is level-triggered and idempotent, like qdhcp's: it
// compares each wanted router with the kernel and changes only what
// differs, through netlink and nftables' netlink API (never by forking ip or
// nft), so that a restarted agent finds namespaces, veths and tables that
// are right and leaves them, and established flows keep forwarding. The
// table is rendered in full and compared by a digest kept in the comment
// of the one rule of its "state" chain; when it differs, the whole table is
// replaced in one nftables transaction (add, delete, add anew), so packets
// see the old rules or the new ones, never a mix. A table edited by hand in
// a way that keeps that rule is not noticed: delete the rule or the table
// and the next Reconcile rewrites it.
//
// When the table changes, conntrack entries whose NAT the new table would
// not make (a floating IP removed or moved to another fixed IP, a forward
// gone, SNAT switched off) are deleted, so that the old mapping stops at
// once, open TCP connections included. Floating IPs that appear on qg- or
// change their fixed IP are announced by gratuitous ARP from qg- (three
// times, half a second apart), so that the external network learns their
// new place at once; announcements sent before the L2 code has plugged the
// tap are lost, and the outside then learns the address when it asks.
//
// A Reconcile works on several routers at once (their namespaces are
// independent; most of the time goes to waiting on the kernel), in three
// steps that each finish before the next starts. A router's sysctls are
// read from /proc, the costliest part of a reconcile that changes nothing,
// only when the Manager first sees its namespace, when it creates devices in
// it, and at least once a minute after that; everything else is compared
// with the kernel on every Reconcile.
//
// Namespaces named <prefix>qrouter-* that no router wants are removed,
// their veths (and so their taps) first; before any router is built, every
// existing router first gives up the qg- addresses it no longer serves, so
// that a floating IP moving from one router to another is never held twice.
// The prefix is the agent's --namespace-prefix: empty in production, per
// cluster host in dev clusters, so that each agent owns exactly the
// namespaces that carry its prefix and never touches another's.
//
// A router that cannot be built (an invalid ID, port or MAC) gets an error
// in its Status and is left as it is. Items that cannot be served (a
// floating IP without an IPv4 gateway, colliding forwards, a route the
// kernel refuses) are left out and listed in Status.Skipped; the rest of
// the router is built.
package router

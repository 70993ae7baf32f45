// Package qdhcp builds and runs what a vland agent needs to serve DHCP for
// the networks whose DHCP port is bound to its host, with the names of
// Neutron's DHCP agent so operators' habits carry over:
//
//	<prefix>qdhcp-<network id>   a named network namespace (bound under
//	                             /run/netns, as `ip netns add` does)
//	ns-<port id11>               inside it: the DHCP port's device, with the
//	                             port's MAC, the network MTU and the port's
//	                             fixed IPs (subnet prefix lengths); lo is up
//	tap<port id11>               its veth peer in the host's namespace, which
//	                             the L2 reconcile (package l2) enslaves to the
//	                             network's bridge brq<network id11> like any
//	                             local tap
//
// and, per namespace, a DHCPv4 server of package dhcp answering on
// ns-<port id11> from a Table the agent computes from its host view.
//
// Manager.Reconcile is level-triggered and idempotent, like l2's: it swaps
// the tables of running servers first (a new port is served as soon as the
// agent knows it), then compares each wanted service with the kernel and
// changes only what differs, through netlink (never by forking ip), so a
// restarted agent finds namespaces and veths that are right and leaves them,
// ifindexes and all; only its servers are new, started in the first
// reconcile. Namespaces named <prefix>qdhcp-* that no service wants are
// removed, their servers stopped first. The prefix is the agent's
// --namespace-prefix: empty in production, per cluster host in dev clusters,
// so that each agent owns exactly the namespaces that carry its prefix and
// never touches another's.
//
// A server's socket is bound to its device's ifindex inside the namespace:
// when either is recreated (by hand, or because it was wrong), Reconcile
// restarts the server on the new one.
package qdhcp

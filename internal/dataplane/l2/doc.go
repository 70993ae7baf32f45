// Package l2 converges a host's layer-2 wiring to what the vland agent wants,
// with the Neutron Linux Bridge agent's names so operators' habits carry over:
// a bridge brq<netid11> per network, vxlan-<vni> devices for VXLAN networks,
// <physdev>.<vid> sub-interfaces for VLAN networks, the physical interface for
// flat ones, and tap<portid11> devices enslaved to their network's bridge.
//
// The package has two halves. Render is pure: Desired in, a Plan out (the
// links, FDB and neighbour entries the host should have), tested with golden
// files. Manager.Reconcile reads what the kernel of one network namespace has,
// compares it with the plan, changes the minimum through netlink (never by
// forking ip or bridge) and removes only what it owns: bridges named brq*,
// devices named vxlan-*, VLAN sub-interfaces of its bridges, and the
// permanent FDB and neighbour entries on its vxlan devices. Links are changed
// in place (MTU, master, up) and recreated only when an attribute the kernel
// cannot change differs, so a restarted agent disturbs no flow.
//
// # Remote ports (l2population) and ARP suppression
//
// VXLAN devices are created with nolearning: the kernel learns no remote MAC
// from received packets. Instead, for every remote port the server reports,
// the Manager installs
//
//   - one all-zeros FDB entry per remote VTEP on the vxlan device
//     (00:00:00:00:00:00 dst <vtep>, self permanent, appended so they
//     coexist): broadcast and unknown unicast are replicated to each VTEP
//     that has ports of the network, and to no other;
//   - one FDB entry per remote MAC (<mac> dst <vtep>, self permanent):
//     unicast goes straight to the right host;
//   - one permanent neighbour entry per remote IP on the vxlan device
//     (<ip> lladdr <mac>), with the device's proxy flag set.
//
// The last pair is what answers ARP locally. With IFLA_VXLAN_PROXY set, the
// vxlan driver intercepts every ARP request the bridge forwards to it
// (arp_reduce in drivers/net/vxlan), looks the target up in the neighbour table
// of the vxlan device itself, and, when a reachable or permanent entry exists,
// injects an ARP reply back into the bridge; IPv6 neighbour solicitations are
// handled the same way (neigh_reduce) with entries in the IPv6 table. The
// request never crosses the underlay. This is what Neutron's Linux Bridge
// agent does with arp_responder enabled. A neighbour entry on the bridge does
// not answer ARP for the VMs (measured: with entries only on the bridge and no
// flood entry, remote ARP goes unanswered); the bridge consults its table only
// for its neigh_suppress feature, which also needs neigh_suppress on the port
// and master FDB entries. The consequence, shared with Neutron: with the proxy
// flag an ARP request for an address no remote port announces (for example an
// allowed-address pair the server did not include in Remote.IPs) is dropped
// rather than flooded, so Remote.IPs must list every address of a port.
package l2

// Package secgroup enforces security groups, port security and
// anti-spoofing on a host, with nftables (github.com/google/nftables), in
// two tables vland owns and no one else's: a bridge-family table and an
// inet table, both named "vland-sg".
//
// # Contract
//
// The agent computes a Desired from its host view: every port on the
// host's bridges that the firewall covers (its device tap<id11>, bridge,
// conntrack zone, MAC, fixed IPs, allowed-address pairs, port security,
// security groups), the groups and their rules with Neutron's fields, the
// addresses of every remote group a rule names (cloud-wide, both
// families, pair addresses included) and the prefixes of every address
// group. Then:
//
//	secgroup.EnableBridgeNetfilter(ns)  // once, before the first Reconcile
//	m, err := secgroup.NewManager(secgroup.Options{NetNS: ""})  // "" = the host namespace
//	res, err := m.Reconcile(d)  // level-triggered, idempotent, one transaction
//	m.Resync()                  // the next Reconcile rebuilds the tables whole
//	m.Close()                   // the tables stay: ports stay filtered
//	secgroup.Cleanup(ns)        // tests and dev cluster teardown only
//
// Port.Bridge names the bridge of the port's device: conntrack zones are
// set per bridge. Rule.PortMin/PortMax are pointers, nil for Neutron's
// null, because 0 is a valid ICMP type and code. Remote group members are
// prefixes, as allowed-address pairs may be CIDRs.
//
// Reconcile never refuses a Desired: what it cannot render (a rule with an
// unknown protocol, a port without MAC...) is listed in Result.Skipped; a
// port it cannot protect is rendered drop-all, never open.
//
// # What this kernel allows, and the shape that follows
//
// The bridge family has no conntrack here (ct expressions fail, reject
// is missing, and meta ibrname/obrname are not supported either), while
// bridged IPv4 and IPv6 packets traverse the inet hooks once br_netfilter's
// bridge-nf-call-iptables/ip6tables are on (EnableBridgeNetfilter; the
// switches are per namespace, and this machine's kernel has br_netfilter
// built in, so no modprobe is needed here). In the inet hooks a bridged
// packet's input and output interface are the bridge, not its ports. So:
//
//   - bridge table, prerouting (priority -200, before br_netfilter hands the
//     packet to the inet hooks): a verdict map by input interface jumps to
//     the port's spoof-<port> chain, which sets the packet mark to the
//     port's index (low 16 bits) and applies the stateless anti-spoofing:
//     DHCP server replies (UDP 67->68, 547->546) and router
//     advertisements from a VM dropped; then the frame must come from the
//     port's MAC or an allowed pair's MAC, IPv4 and ARP (sender hardware
//     and protocol address) from the addresses allowed with that MAC,
//     IPv6 from those or the MAC's EUI-64 link-local address; DHCP
//     discovery from 0.0.0.0, ARP probes and DAD/MLD from :: pass; any
//     other ethertype, VLAN-tagged frames included, is dropped.
//   - bridge table, forward (-200): a verdict map by output interface jumps
//     to mark-<port>, which puts the destination port's index in the high
//     16 bits of the mark. Postrouting clears vland's marks, so that a
//     frame leaving by a VXLAN device or a physical interface carries none
//     into the host's routing.
//   - inet table, prerouting at raw priority (-300): for packets entering one
//     of the covered ports' bridges, ct zone set from a map bridge -> zone
//     (each network its zone: identical tenant addresses never share
//     conntrack state; every port of the bridge, the router's and the DHCP
//     port's too, is tracked in it), and notrack for packets from ports
//     whose groups are all stateless.
//   - inet table, forward: at priority 0 a verdict map by the source index
//     jumps to the port's egress-<port> chain; at priority 10 another by
//     the destination index jumps to ingress-<port>. Input (packets to the
//     host itself) passes the egress chains too. Per-packet cost does not
//     grow with the number of ports.
//   - egress-<port>/ingress-<port>: for stateful ports ct state
//     established,related accept and ct state invalid drop (established
//     traffic meets one rule), what Neutron always allows (DHCP client,
//     ICMPv6 neighbour discovery and MLD, router advertisements and DHCPv6
//     replies from link-local sources), a jump to each of the port's
//     groups' chains, then drop.
//   - sg-<group>-ingress/-egress: one rule per security-group rule
//     (duplicates merged), each ending in accept, shared by every port of
//     the group; remote_group_id and remote_address_group_id rules look up
//     named interval sets rg-<group>-4|6 and ag-<id>-4|6 shared by every
//     rule that names them, so a membership change rewrites set elements,
//     not chains.
//
// On a kernel with conntrack in the bridge family the same shape works
// unchanged; it only does not need it.
//
// # Transactions
//
// Every Reconcile is one nftables transaction. The first one of a Manager
// adds, deletes and re-adds both tables and fills them in the same batch:
// an agent restart replaces whatever its predecessor left atomically,
// with no moment in which traffic is unfiltered. Later ones apply the
// difference from the previous Reconcile: set elements one by one,
// security-group chains rule by rule (the handles of rules to delete are
// read from the kernel by their comment, which carries a key of the rule's
// content), other chains flushed and refilled when any of their rules
// changed. Rendering reuses the previous result for every group, set and
// port whose input did not change, so a change to one group costs what
// that group needs. After a failed transaction the kernel keeps its
// previous ruleset and the next Reconcile rebuilds the tables whole.
//
// google/nftables builds the messages, but vland sends the batch itself
// (see transact): its Flush requests an acknowledgement for every message
// and an echo for every new rule and reads them one by one, which for
// 10,000 rules overflows a default socket buffer and costs more than the
// kernel's work, and its one sendmsg fails when the batch outgrows the send
// buffer. Set elements go in several messages of the same batch, because
// one message's element list is an attribute whose 16-bit length the
// library overflows silently past 64 KiB.
//
// # Connections no longer allowed
//
// After a change that takes a permission away (a rule, a set element or a
// port chain removed or rewritten) and after the first Reconcile, the
// Manager lists the host's conntrack table and deletes the entries of the
// covered zones whose connection the current Desired would not let start
// (the Go evaluator in policy.go reads Desired as the renderer does), with
// vishvananda/netlink's ConntrackDeleteFilters. The next packet of a cut
// connection is new to conntrack and meets the rules as they are now. A
// connection another rule still allows is not cut. The connections of an
// address whose port left (or gave the address up) are cut whatever the
// rules say, so that a port that gets the address next inherits none.
// Conntrack reports ports
// of TCP and UDP only; ICMP entries are taken for echo, and a port range
// of another protocol is assumed to match.
//
// # Costs
//
// Measured here (2 shared CPUs, kernel 6.18) at 100 ports, 10,000 rules and
// 10,000 set elements: a cold program about 0.6-0.9 s (a quarter of it the
// kernel's); a rule added to a group a few milliseconds, most of it the
// kernel validating the table's jumps; a set element added under a
// millisecond in the kernel; any deletion 10-15 ms in the kernel's commit
// whatever the table's size (a one-element table costs the same); the
// conntrack check another ~10 ms, for the walk of the conntrack hash table.
// vland bench secgroup measures them.
//
// # Limits
//
//   - The packet mark of bridged traffic on the covered bridges belongs to
//     vland between bridge prerouting and postrouting; at most MaxPorts
//     ports with port security per host.
//   - Stateless ports bypass conntrack both ways as in Neutron, so a
//     stateful port on the same host sees their packets as untracked:
//     it needs a rule for them, which a peer on another host would not.
//   - A group's rules are evaluated in a linear chain for the first packet
//     of a connection (every packet for stateless ports); established
//     traffic of stateful ports never reaches them.
package secgroup

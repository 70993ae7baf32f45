// Package devcluster builds and drives a vland dev cluster: a whole cloud on
// one machine, for demos, tests and newcomers (`vland dev`). It needs root.
//
// # Layout
//
// A cluster named N has a short prefix p ("v" and the first four hex digits
// of SHA-256(N), see [Prefix]) that every namespace it creates and every link
// outside its hosts' namespaces carries, so that clusters and parallel tests
// never collide and are removed completely:
//
//	<p>-fabric           namespace holding the data network: bridge <p>-data
//	<p>-compute1..K      host namespaces; eth1 (10.250.X.11+i/24, the VXLAN
//	<p>-network1..M      endpoint) pairs with <p>-<host> on the fabric bridge
//	<p>-vm-NAME          one namespace per VM; eth0 (the port's MAC and MTU)
//	                     pairs with tap<portid11> inside its host's namespace
//	<p>-HOST-qdhcp-NETID the DHCP namespaces a host's agent makes (its
//	                     --namespace-prefix is <p>-HOST-, so each agent owns
//	                     its own and two network hosts can serve one network)
//
// X is a byte of the same hash, so two clusters' underlays differ too, though
// they could not meet anyway: each fabric is a namespace of its own. Inside
// host namespaces the agent keeps Neutron's names (brq…, vxlan-…, tap…).
//
// The server (`vland server`, builtin identity, embedded etcd) runs in the
// root namespace on a free loopback port; each host has its own `vland agent`
// process in the root namespace that manages the host's namespace through
// --netns, so killing one is a real agent crash. Processes are started
// detached (their own session), logging to <dir>/logs/<name>.log; their pids
// and start times, the server URL, credentials, hosts and VMs are in
// <dir>/state.json, so every `vland dev` command (and [Open]) can take the
// cluster up where `vland dev up` left it. <dir> defaults to
// /var/lib/vland/dev/<N>; /run/vland/dev/<p> records which cluster owns the
// prefix and where its directory is.
//
// # VM addresses
//
// A VM whose port has an address in a DHCP-enabled IPv4 subnet, on a network
// that has a DHCP port (the server schedules one to a network host), gets
// that address, its routes (option 121 included) and the MTU by DHCP from
// Debian's busybox udhcpc, started in the VM's namespace and left running to
// renew like a guest's client (its pid is in state.json; `vm delete` and
// Down end it). udhcpc runs <dir>/dhcp/udhcpc.script, which configures only
// the VM namespace's eth0 (no resolv.conf) and records each lease in
// <dir>/dhcp/<vm>.lease; CreateVM fails, naming the VM and its port, when no
// lease arrives in time. Other addresses (IPv6, subnets without DHCP, and
// networks without a DHCP port or clusters without a network host) are
// configured statically.
//
// # Network safety
//
// Nothing is created in the root namespace but processes: no address, route,
// link, bridge or nftables rule. Links are created directly inside their
// namespaces (a veth's peer is created in its target namespace at once).
// Commands run inside a VM (Exec, Ping) are started or opened on a thread
// switched into the VM's namespace, so their packets stay in the cluster.
//
// # Teardown
//
// [Cluster.Down] and [Down] kill the cluster's processes (those recorded in
// state.json, and any process whose command line names the cluster's
// directory), delete every namespace named <p>-…, every root-namespace link
// named <p>-… (there should be none), and the files the cluster wrote. They
// are idempotent and work from a partial or missing state.json.
package devcluster

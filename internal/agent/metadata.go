package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/metadata"
	"github.com/vland/vland/internal/dataplane/qdhcp"
	"github.com/vland/vland/internal/dataplane/router"
	"github.com/vland/vland/internal/namedns"
)

// The metadata service of a network host, Neutron's metadata agent done in
// the agent itself. A VM on a network attached to a router asks
// 169.254.169.254:80; the router's namespace redirects that to
// MetadataPort, where a listener of this agent identifies the caller by
// (router, source address). A VM on a network without a router reaches
// 169.254.169.254 on the DHCP port, which holds that /32, through the host
// route DHCP hands out (option 121): the listener there identifies callers
// by (network, source address). Either way the caller is found among the
// ports of the host view, never from anything the request says; the
// firewall's anti-spoofing is what makes the source address trustworthy.

// Metadata constants.
const (
	// MetadataPort is where router namespaces redirect metadata requests
	// (Neutron's metadata_port).
	MetadataPort = 9697
	// OwnerRouterInterfaceDistributed is a DVR router's interface port.
	OwnerRouterInterfaceDistributed = "network:router_interface_distributed"
)

// MetadataAddr is the well-known metadata address.
var MetadataAddr = netip.MustParseAddr("169.254.169.254")

// metaIndex is what the metadata Lookup answers from: a snapshot of the
// view, rebuilt after every change and swapped atomically.
type metaIndex struct {
	callers   map[string]map[netip.Addr]string // listener key -> source address -> port id
	ports     map[string]agentapi.Port
	byDevice  map[string][]string // device id -> port ids, sorted
	subnets   map[string]agentapi.Subnet
	networks  map[string]agentapi.Network
	instances map[string]agentapi.Instance
	floating  map[string]netip.Addr // port id -> its floating IP
	groups    map[string]string     // security group id -> name
}

// isolated reports whether a network has no router interface: its DHCP
// namespace serves metadata (Neutron's enable_isolated_metadata).
func isolated(network string, byNet map[string][]agentapi.Port) bool {
	for _, p := range byNet[network] {
		if p.DeviceOwner == OwnerRouterInterface || p.DeviceOwner == OwnerRouterInterfaceDistributed {
			return false
		}
	}
	return true
}

// newMetaIndex indexes the view for the listeners: each router placed here
// answers the ports of the networks it has interfaces on, each DHCP
// service of an isolated network the ports of its network.
func newMetaIndex(v viewMaps, dhcpNets []string) *metaIndex {
	ix := &metaIndex{
		callers: map[string]map[netip.Addr]string{}, ports: v.ports, byDevice: map[string][]string{},
		subnets: v.subnets, networks: v.networks, instances: v.instances, floating: map[string]netip.Addr{},
		groups: map[string]string{},
	}
	for id, g := range v.groups {
		ix.groups[id] = g.Name
	}
	byNet := portsByNetwork(v.ports)
	addNet := func(key, network string) {
		m := ix.callers[key]
		if m == nil {
			m = map[netip.Addr]string{}
			ix.callers[key] = m
		}
		for _, p := range byNet[network] {
			if strings.HasPrefix(p.DeviceOwner, "network:") {
				continue
			}
			for _, f := range p.FixedIPs {
				m[f.IPAddress] = p.ID
			}
		}
	}
	for _, r := range v.routers {
		for _, pid := range r.Interfaces {
			if p, ok := v.ports[pid]; ok {
				addNet(r.ID, p.NetworkID)
			}
		}
		for _, f := range r.FloatingIPs {
			ix.floating[f.PortID] = f.FloatingIP
		}
	}
	for _, n := range dhcpNets {
		addNet(n, n)
	}
	for _, id := range slices.Sorted(maps.Keys(v.ports)) {
		p := v.ports[id]
		if p.DeviceID != "" && !strings.HasPrefix(p.DeviceOwner, "network:") {
			ix.byDevice[p.DeviceID] = append(ix.byDevice[p.DeviceID], id)
		}
	}
	return ix
}

// instance answers a caller: the device of the port with that source
// address, its instance metadata if any was set, and its ports.
func (ix *metaIndex) instance(key string, src netip.Addr) (metadata.Instance, bool) {
	pid, ok := ix.callers[key][src]
	if !ok {
		return metadata.Instance{}, false
	}
	p := ix.ports[pid]
	out := metadata.Instance{ID: p.DeviceID, ProjectID: p.ProjectID, LocalIPv4: src}
	if !src.Is4() {
		out.LocalIPv4 = netip.Addr{}
	}
	// A port may name any device_id, another project's included: the
	// instance's data is answered only to ports of the instance's project.
	if in, ok := ix.instances[p.DeviceID]; ok && (in.ProjectID == "" || in.ProjectID == p.ProjectID) {
		out.Name, out.Hostname, out.AvailabilityZone = in.Name, in.Hostname, in.AvailabilityZone
		out.UserData, out.Meta, out.PublicKeys = in.UserData, in.Meta, in.PublicKeys
		if in.ProjectID != "" {
			out.ProjectID = in.ProjectID
		}
	}
	if out.Hostname == "" {
		out.Hostname = p.DNSName
	}
	if out.Hostname == "" {
		out.Hostname = dhcp.DefaultHostname(src)
	}
	if out.Name == "" {
		out.Name = out.Hostname
	}
	out.PublicIPv4 = ix.floating[pid]
	// The caller's port first: it is the NIC the guest asked through.
	ids := append([]string{pid}, slices.DeleteFunc(slices.Clone(ix.byDevice[p.DeviceID]), func(id string) bool { return id == pid })...)
	for _, id := range ids {
		q := ix.ports[id]
		mac, _ := net.ParseMAC(q.MACAddress)
		mp := metadata.Port{ID: q.ID, MAC: mac, NetworkID: q.NetworkID, MTU: ix.networks[q.NetworkID].MTU, FloatingIP: ix.floating[id]}
		for _, f := range q.FixedIPs {
			sn, ok := ix.subnets[f.SubnetID]
			if !ok {
				continue
			}
			ms := metadata.Subnet{ID: sn.ID, CIDR: sn.CIDR, Gateway: sn.GatewayIP, DNS: sn.DNSNameservers, DHCP: sn.EnableDHCP, IPv6AddressMode: sn.IPv6AddressMode}
			for _, r := range sn.HostRoutes {
				ms.HostRoutes = append(ms.HostRoutes, metadata.Route{Destination: r.Destination, NextHop: r.NextHop})
			}
			mp.FixedIPs = append(mp.FixedIPs, metadata.FixedIP{Address: f.IPAddress, Subnet: ms})
		}
		out.Ports = append(out.Ports, mp)
	}
	for _, g := range p.SecurityGroups {
		if name := ix.groups[g]; name != "" {
			out.SecurityGroups = append(out.SecurityGroups, name)
		}
	}
	return out, true
}

// viewMaps is the part of the agent's state the metadata index reads.
type viewMaps struct {
	networks  map[string]agentapi.Network
	subnets   map[string]agentapi.Subnet
	ports     map[string]agentapi.Port
	routers   map[string]agentapi.Router
	instances map[string]agentapi.Instance
	groups    map[string]agentapi.SecurityGroup
}

// metadataService is the agent's metadata server and its listeners, one per
// router namespace and per isolated network's DHCP namespace.
type metadataService struct {
	log   *slog.Logger
	srv   *metadata.Server
	index atomic.Pointer[metaIndex]

	mu   sync.Mutex
	open map[string]metaListener // by namespace
}

type metaListener struct {
	key, addr string
	inode     uint64
	l         *metadata.Listener
}

func newMetadataService(log *slog.Logger) (*metadataService, error) {
	m := &metadataService{log: log, open: map[string]metaListener{}}
	m.index.Store(&metaIndex{})
	srv, err := metadata.NewServer(metadata.Options{Logger: log, Lookup: metadata.LookupFunc(func(key string, src netip.Addr) (metadata.Instance, bool) {
		return m.index.Load().instance(key, src)
	})})
	if err != nil {
		return nil, err
	}
	m.srv = srv
	return m, nil
}

// metaWant is one listener the host should have.
type metaWant struct{ ns, addr, key string }

// sync opens the listeners of want (again, when their namespace was made
// anew) and closes the others. Namespaces that do not exist yet are
// retried by the next reconcile.
func (m *metadataService) sync(want []metaWant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	wanted := map[string]metaWant{}
	for _, w := range want {
		wanted[w.ns] = w
	}
	for ns, l := range m.open {
		w, ok := wanted[ns]
		ino, err := nsInode(ns)
		if ok && err == nil && ino == l.inode && w.key == l.key && w.addr == l.addr {
			continue
		}
		_ = l.l.Close()
		delete(m.open, ns)
	}
	var errs []error
	for _, ns := range slices.Sorted(maps.Keys(wanted)) {
		if _, ok := m.open[ns]; ok {
			continue
		}
		w := wanted[ns]
		ino, err := nsInode(ns)
		if err != nil {
			continue // not made yet
		}
		l, err := m.srv.Listen(namedns.Path(ns), w.addr, w.key)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata in %s: %w", ns, err))
			continue
		}
		m.open[ns] = metaListener{key: w.key, addr: w.addr, inode: ino, l: l}
		m.log.Info("metadata listener open", "namespace", ns, "addr", w.addr)
	}
	return errors.Join(errs...)
}

func (m *metadataService) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for ns, l := range m.open {
		errs = append(errs, l.l.Close())
		delete(m.open, ns)
	}
	return errors.Join(errs...)
}

// nsInode identifies a named namespace's current incarnation.
func nsInode(ns string) (uint64, error) {
	fi, err := os.Stat(namedns.Path(ns))
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no inode")
	}
	return st.Ino, nil
}

// metadataWants lists the listeners of the routers and isolated DHCP
// services of the host.
func metadataWants(prefix string, routers router.Desired, isolatedNets []string) []metaWant {
	var out []metaWant
	for _, r := range routers.Routers {
		out = append(out, metaWant{ns: router.NamespaceName(prefix, r.ID), addr: fmt.Sprintf("0.0.0.0:%d", MetadataPort), key: r.ID})
	}
	for _, n := range isolatedNets {
		out = append(out, metaWant{ns: qdhcp.NamespaceName(prefix, n), addr: netip.AddrPortFrom(MetadataAddr, 80).String(), key: n})
	}
	return out
}

// dhcpMetadata makes every DHCP service a metadata server too: its
// namespace holds the metadata address (169.254.169.254/32 on the DHCP
// port) for all the network's VMs, and on networks without a router DHCP
// hands out a host route to it through the DHCP port's address (option
// 121), as Neutron's enable_isolated_metadata. Neutron stops serving there
// once a router is attached, which strands every VM whose lease still
// carries the route until it renews (a day by default); vland keeps
// answering them (Neutron's force_metadata, for the existing leases only).
// It returns the networks whose DHCP namespace serves metadata.
func dhcpMetadata(svcs []qdhcp.Service, ports map[string]agentapi.Port) []string {
	byNet := portsByNetwork(ports)
	var out []string
	for i := range svcs {
		s := &svcs[i]
		if !slices.ContainsFunc(s.Addrs, func(p netip.Prefix) bool { return p.Addr().Is4() }) {
			continue // no IPv4 on the DHCP port: nothing to route through
		}
		out = append(out, s.NetworkID)
		s.Addrs = append(s.Addrs, netip.PrefixFrom(MetadataAddr, 32))
		if !isolated(s.NetworkID, byNet) {
			continue
		}
		for key, r := range s.Table.Hosts {
			for _, srv := range s.Table.Servers {
				if srv.Masked().Contains(r.IP) {
					r.HostRoutes = append(slices.Clone(r.HostRoutes), dhcp.Route{Dst: netip.PrefixFrom(MetadataAddr, 32), NextHop: srv.Addr()})
					s.Table.Hosts[key] = r
					break
				}
			}
		}
	}
	return out
}

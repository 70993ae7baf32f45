package l2

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Kind is what a LinkSpec describes.
type Kind string

// Link kinds. Bridges, VXLAN and VLAN devices are owned: the Manager creates
// and deletes them. Taps and physical interfaces belong to someone else: the
// Manager only wires them (master, MTU, up).
const (
	KindBridge   Kind = "bridge"
	KindVXLAN    Kind = "vxlan"
	KindVLAN     Kind = "vlan"
	KindTap      Kind = "tap"
	KindPhysical Kind = "physical"
)

// Plan is the rendering of a Desired state: the kernel objects the host should have.
type Plan struct {
	Networks []NetworkPlan     // sorted by network ID
	TapErrs  map[string]error  // taps left out of the plan, by name
	tapNet   map[string]string // tap name -> network ID, for every tap of Desired
}

// NetworkPlan is what one network needs on the host.
type NetworkPlan struct {
	ID        string
	Type      string
	Bridge    string
	Device    string     // the vxlan or vlan device, also when Err is set (so cleanup spares it)
	Err       error      // the network cannot be built; its links are not rendered
	Links     []LinkSpec // in the order they are wired: bridge, device, ports
	FDB       []FDBSpec  // on the vxlan device
	Neighbors []NeighSpec
}

// LinkSpec is one link as it should be.
type LinkSpec struct {
	Name   string
	Kind   Kind
	Owned  bool   // created and deleted by the Manager
	Master string // bridge the link is enslaved to; empty for the bridge itself
	MTU    int    // 0: not managed

	// VXLAN devices.
	VNI      uint32
	Local    netip.Addr
	Port     int
	Learning bool // always false: remote MACs come from l2population
	Proxy    bool // always true: ARP and ND answered from the device's neighbour table

	// VLAN sub-interfaces.
	Parent string
	VLANID uint32
}

// FDBSpec is a permanent "self" forwarding entry of a vxlan device: frames to
// MAC are sent to the VTEP Dst. The all-zeros MAC is the flood list.
type FDBSpec struct {
	Device string
	MAC    net.HardwareAddr
	Dst    netip.Addr
}

// NeighSpec is a permanent neighbour entry on a vxlan device, from which the
// device answers ARP and neighbour solicitations for remote ports.
type NeighSpec struct {
	Device string
	IP     netip.Addr
	MAC    net.HardwareAddr
}

// zeroMAC is the FDB address that matches broadcast, multicast and unknown unicast.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// Render turns Desired into a Plan. It is pure: the kernel is not consulted,
// so kernel features (such as 802.1Q) are not checked here. Networks that are
// invalid, or that claim an object another network already has (the same
// bridge name, VNI, VLAN or physical interface), carry an Err; the others are
// rendered regardless.
func Render(d Desired) Plan {
	d.LocalIP = d.LocalIP.Unmap()
	if d.VXLANPort == 0 {
		d.VXLANPort = DefaultVXLANPort
	}
	nets := slices.Clone(d.Networks)
	slices.SortStableFunc(nets, func(a, b Network) int { return cmp.Compare(a.ID, b.ID) })

	p := Plan{TapErrs: map[string]error{}, tapNet: map[string]string{}}
	claimed := map[string]string{} // object key -> network ID that has it
	for _, n := range nets {
		np := NetworkPlan{ID: n.ID, Type: n.Type, Bridge: BridgeName(n.ID), Device: deviceName(n)}
		np.Err = n.validate(d)
		if np.Err == nil {
			np.Err = claim(claimed, n)
		}
		taps := p.claimTaps(n)
		if np.Err == nil {
			np.Links, np.FDB, np.Neighbors = renderNetwork(d, n, taps)
		}
		p.Networks = append(p.Networks, np)
	}
	return p
}

// deviceName is the vxlan or vlan device of n, or "" if it has none.
func deviceName(n Network) string {
	switch {
	case n.Type == TypeVXLAN && n.SegmentationID > 0 && n.SegmentationID < 1<<24:
		return VXLANName(n.SegmentationID)
	case n.Type == TypeVLAN && n.PhysicalInterface != "" && n.SegmentationID > 0 && n.SegmentationID < 4095:
		return VLANName(n.PhysicalInterface, n.SegmentationID)
	}
	return ""
}

// claim records the kernel objects n needs and fails if another network has one.
func claim(claimed map[string]string, n Network) error {
	keys := []string{"bridge " + BridgeName(n.ID)}
	switch n.Type {
	case TypeVXLAN:
		keys = append(keys, "link "+VXLANName(n.SegmentationID))
	case TypeFlat:
		keys = append(keys, "link "+n.PhysicalInterface)
	case TypeVLAN:
		keys = append(keys, "link "+VLANName(n.PhysicalInterface, n.SegmentationID))
	}
	for _, k := range keys {
		if other, ok := claimed[k]; ok {
			return fmt.Errorf("%s already belongs to network %s", k, other)
		}
	}
	for _, k := range keys {
		claimed[k] = n.ID
	}
	return nil
}

// claimTaps returns the taps of n that are valid and not already in another
// network; the rest are recorded in TapErrs.
func (p *Plan) claimTaps(n Network) []string {
	var taps []string
	for _, t := range n.Taps {
		if other, ok := p.tapNet[t]; ok {
			if other != n.ID {
				p.TapErrs[t] = fmt.Errorf("listed in networks %s and %s", other, n.ID)
			}
			continue
		}
		p.tapNet[t] = n.ID
		if err := validTapName(t); err != nil {
			p.TapErrs[t] = err
			continue
		}
		taps = append(taps, t)
	}
	slices.Sort(taps)
	return taps
}

// renderNetwork is the links, FDB and neighbour entries of a valid network.
func renderNetwork(d Desired, n Network, taps []string) ([]LinkSpec, []FDBSpec, []NeighSpec) {
	br := BridgeName(n.ID)
	links := []LinkSpec{{Name: br, Kind: KindBridge, Owned: true, MTU: n.MTU}}
	var fdb []FDBSpec
	var neighs []NeighSpec
	switch n.Type {
	case TypeVXLAN:
		dev := VXLANName(n.SegmentationID)
		links = append(links, LinkSpec{
			Name: dev, Kind: KindVXLAN, Owned: true, Master: br, MTU: n.MTU,
			VNI: n.SegmentationID, Local: d.LocalIP, Port: d.VXLANPort, Proxy: true,
		})
		fdb, neighs = renderRemotes(dev, n.Remotes)
	case TypeFlat:
		// The physical interface's MTU is the operator's: it carries other traffic too.
		links = append(links, LinkSpec{Name: n.PhysicalInterface, Kind: KindPhysical, Master: br})
	case TypeVLAN:
		links = append(links, LinkSpec{
			Name: VLANName(n.PhysicalInterface, n.SegmentationID), Kind: KindVLAN, Owned: true,
			Master: br, MTU: n.MTU, Parent: n.PhysicalInterface, VLANID: n.SegmentationID,
		})
	}
	for _, t := range taps {
		links = append(links, LinkSpec{Name: t, Kind: KindTap, Master: br, MTU: n.MTU})
	}
	return links, fdb, neighs
}

// renderRemotes is the flood list (one all-zeros entry per remote VTEP), one
// FDB entry per remote MAC and one neighbour entry per remote address.
func renderRemotes(dev string, remotes []Remote) ([]FDBSpec, []NeighSpec) {
	vteps := map[netip.Addr]bool{}
	macs := map[string]FDBSpec{}
	neighs := map[netip.Addr]NeighSpec{}
	for _, r := range remotes {
		vteps[r.VTEP.Unmap()] = true
		macs[r.MAC.String()] = FDBSpec{Device: dev, MAC: r.MAC, Dst: r.VTEP.Unmap()}
		for _, ip := range r.IPs {
			ip = ip.Unmap()
			neighs[ip] = NeighSpec{Device: dev, IP: ip, MAC: r.MAC}
		}
		// The VXLAN device answers neighbour solicitations itself and drops
		// those it cannot answer, so a remote port's link-local address
		// (the source of its DHCPv6 and router solicitations, where replies
		// go) needs an entry too: the EUI-64 one of its MAC, as a guest
		// makes by default.
		if ll, ok := linkLocal(r.MAC); ok {
			neighs[ll] = NeighSpec{Device: dev, IP: ll, MAC: r.MAC}
		}
	}
	var fdb []FDBSpec
	for _, v := range slices.SortedFunc(maps.Keys(vteps), netip.Addr.Compare) {
		fdb = append(fdb, FDBSpec{Device: dev, MAC: zeroMAC, Dst: v})
	}
	for _, k := range slices.Sorted(maps.Keys(macs)) {
		fdb = append(fdb, macs[k])
	}
	var ns []NeighSpec
	for _, ip := range slices.SortedFunc(maps.Keys(neighs), netip.Addr.Compare) {
		ns = append(ns, neighs[ip])
	}
	return fdb, ns
}

// linkLocal is the modified-EUI-64 IPv6 link-local address of an Ethernet
// MAC (RFC 4291 appendix A).
func linkLocal(mac net.HardwareAddr) (netip.Addr, bool) {
	if len(mac) != 6 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]}), true
}

// Links is every link of the plan, network by network, in wiring order.
func (p Plan) Links() []LinkSpec {
	var out []LinkSpec
	for _, n := range p.Networks {
		out = append(out, n.Links...)
	}
	return out
}

// String renders the plan as text, one object a line, for golden files and logs.
func (p Plan) String() string {
	var b strings.Builder
	for _, n := range p.Networks {
		fmt.Fprintf(&b, "network %s type=%s bridge=%s\n", n.ID, n.Type, n.Bridge)
		if n.Err != nil {
			fmt.Fprintf(&b, "  error: %v\n", n.Err)
		}
		for _, l := range n.Links {
			fmt.Fprintf(&b, "  link %s\n", l)
		}
		for _, f := range n.FDB {
			fmt.Fprintf(&b, "  fdb %s dev %s dst %s self permanent\n", f.MAC, f.Device, f.Dst)
		}
		for _, nb := range n.Neighbors {
			fmt.Fprintf(&b, "  neigh %s lladdr %s dev %s permanent\n", nb.IP, nb.MAC, nb.Device)
		}
	}
	for _, t := range sortedKeys(p.TapErrs) {
		fmt.Fprintf(&b, "tap %s error: %v\n", t, p.TapErrs[t])
	}
	return b.String()
}

// String describes the link the way ip -d link would show its settings.
func (l LinkSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s kind=%s", l.Name, l.Kind)
	if l.Owned {
		b.WriteString(" owned")
	}
	if l.Master != "" {
		fmt.Fprintf(&b, " master=%s", l.Master)
	}
	if l.MTU != 0 {
		fmt.Fprintf(&b, " mtu=%d", l.MTU)
	}
	switch l.Kind {
	case KindVXLAN:
		fmt.Fprintf(&b, " id=%d local=%s dstport=%d", l.VNI, l.Local, l.Port)
		if !l.Learning {
			b.WriteString(" nolearning")
		}
		if l.Proxy {
			b.WriteString(" proxy")
		}
	case KindVLAN:
		fmt.Fprintf(&b, " link=%s id=%d", l.Parent, l.VLANID)
	}
	b.WriteString(" up")
	return b.String()
}

// desiredTaps maps every tap named in Desired, valid or not, to its network.
func (p Plan) desiredTaps() map[string]string { return p.tapNet }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

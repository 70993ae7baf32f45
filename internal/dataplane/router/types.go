package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vland/vland/internal/dataplane/l2"
)

// Name parts, Neutron's.
const (
	// NamespaceInfix follows the agent's prefix in a router namespace's name.
	NamespaceInfix = "qrouter-"
	// InternalPrefix starts the name of a router interface's device.
	InternalPrefix = "qr-"
	// GatewayPrefix starts the name of the external gateway's device.
	GatewayPrefix = "qg-"
)

// TableName is the nftables table (family ip) vland owns in every router
// namespace. Nothing else in the namespace is vland's to program.
const TableName = "vland-router"

// maxLinkName is IFNAMSIZ-1, the kernel's limit on interface names.
const maxLinkName = 15

// maxNamespaceName bounds a namespace name: it is a file name in /run/netns.
const maxNamespaceName = 255

// NamespaceName is the namespace of a router for an agent with the given
// namespace prefix: prefix + "qrouter-" + the full router ID.
func NamespaceName(prefix, routerID string) string {
	return prefix + NamespaceInfix + routerID
}

// InternalDeviceName is a router interface's device inside the namespace:
// "qr-" and the first 11 characters of the port ID.
func InternalDeviceName(portID string) string { return InternalPrefix + id11(portID) }

// GatewayDeviceName is the external gateway's device inside the namespace:
// "qg-" and the first 11 characters of the port ID.
func GatewayDeviceName(portID string) string { return GatewayPrefix + id11(portID) }

// TapName is the host end of a router port's veth pair, the name every local
// port's device has: "tap" and the first 11 characters of the port ID.
func TapName(portID string) string { return l2.TapName(portID) }

// TapNames lists the host-side devices of a router, interfaces first, then
// the gateway's: what the agent's L2 code enslaves to the networks' bridges.
func (r Router) TapNames() []string {
	var out []string
	for _, itf := range r.Interfaces {
		out = append(out, TapName(itf.PortID))
	}
	if r.Gateway != nil {
		out = append(out, TapName(r.Gateway.PortID))
	}
	return out
}

func id11(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// Options configure a Manager.
type Options struct {
	// HostNS is the namespace the taps live in: "" is the caller's own, a
	// bare name one made by `ip netns add`, anything with a '/' a path.
	HostNS string
	// NamespacePrefix goes before "qrouter-" in the names of the namespaces
	// the Manager creates, and the Manager removes every namespace named
	// <NamespacePrefix>qrouter-* that no router wants: give each agent of a
	// machine its own (empty in production).
	NamespacePrefix string
	// Logger receives what the Manager changes; nil means slog.Default().
	Logger *slog.Logger
}

// Desired is every router this host should hold.
type Desired struct {
	Routers []Router
}

// Router is one Neutron router placed on this host.
type Router struct {
	// ID is the router's full UUID; it names the namespace.
	ID string
	// Interfaces are the router's ports on tenant subnets, one device each.
	Interfaces []Interface
	// Gateway is the external gateway port; nil when the router has none
	// (then floating IPs and port forwards cannot be served).
	Gateway *Gateway
	// Routes are the router's extra routes; several with one destination
	// make one multipath (ECMP) route, as Neutron's L3 agent does.
	Routes []Route
	// FloatingIPs are the 1:1 NAT mappings the router serves.
	FloatingIPs []FloatingIP
	// PortForwards are the floating IP port forwardings the router serves.
	PortForwards []PortForward
	// MetadataPort, when not zero, is the TCP port inside the namespace that
	// receives what the router's interfaces get for 169.254.169.254:80
	// (another package serves it); only redirected traffic may reach it.
	MetadataPort uint16
}

// Interface is a router port on a tenant subnet: qr-<port id11> in the
// namespace, its veth peer tap<port id11> in the host namespace.
type Interface struct {
	PortID string
	MAC    net.HardwareAddr
	// Addrs are the port's fixed IPs with their subnets' prefix lengths
	// (10.0.0.1/24): usually the subnets' gateway addresses.
	Addrs []netip.Prefix
	// MTU is the network's; 0 leaves the kernel's default.
	MTU int
}

// Gateway is the router's port on the external network: qg-<port id11> in
// the namespace, its veth peer tap<port id11> in the host namespace.
type Gateway struct {
	PortID string
	MAC    net.HardwareAddr
	// Addrs are the gateway port's fixed IPs with the external subnets'
	// prefix lengths; the first IPv4 one is the address SNAT uses.
	Addrs []netip.Prefix
	MTU   int
	// DefaultGateways are the external subnets' gateways: the first of each
	// family becomes the namespace's default route through qg-.
	DefaultGateways []netip.Addr
	// EnableSNAT makes tenant traffic leaving through qg- take the gateway
	// address (Neutron's enable_snat).
	EnableSNAT bool
}

// Route is an extra route of the router.
type Route struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

// FloatingIP maps a floating (external) IPv4 address 1:1 to a fixed one.
type FloatingIP struct {
	// ID optionally names the floating IP in errors and logs.
	ID         string
	FloatingIP netip.Addr
	FixedIP    netip.Addr
}

// PortForward is Neutron's floating IP port forwarding: (floating IP,
// protocol, external port or range) to (internal IP, internal port or
// range). A range maps to a range of the same length port by port, or to
// one internal port.
type PortForward struct {
	// ID optionally names the forward in errors and logs.
	ID              string
	FloatingIP      netip.Addr
	Protocol        string // "tcp" or "udp"
	ExternalPortMin uint16
	ExternalPortMax uint16 // 0: same as ExternalPortMin
	InternalIP      netip.Addr
	InternalPortMin uint16
	InternalPortMax uint16 // 0: same as InternalPortMin
}

// externalRange returns the external ports with a zero maximum filled in.
func (p PortForward) externalRange() (uint16, uint16) {
	if p.ExternalPortMax == 0 {
		return p.ExternalPortMin, p.ExternalPortMin
	}
	return p.ExternalPortMin, p.ExternalPortMax
}

// internalRange returns the internal ports with a zero maximum filled in.
func (p PortForward) internalRange() (uint16, uint16) {
	if p.InternalPortMax == 0 {
		return p.InternalPortMin, p.InternalPortMin
	}
	return p.InternalPortMin, p.InternalPortMax
}

// String describes the forward for errors and logs.
func (p PortForward) String() string {
	emin, emax := p.externalRange()
	imin, imax := p.internalRange()
	s := fmt.Sprintf("%s %s:%s -> %s:%s", p.Protocol, p.FloatingIP, portRange(emin, emax), p.InternalIP, portRange(imin, imax))
	if p.ID != "" {
		s = p.ID + " (" + s + ")"
	}
	return s
}

func portRange(lo, hi uint16) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// protoNumber is the IP protocol number of a port forward's protocol.
func protoNumber(p string) (uint8, bool) {
	switch p {
	case "tcp":
		return 6, true
	case "udp":
		return 17, true
	}
	return 0, false
}

// validateName checks that a router ID can name a namespace.
func validateName(prefix, id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("router id %q cannot name a namespace", id)
	}
	if n := NamespaceName(prefix, id); len(n) > maxNamespaceName {
		return fmt.Errorf("namespace name %q is longer than %d bytes", n, maxNamespaceName)
	}
	return nil
}

// validatePort checks what a router port needs to become a veth pair.
func validatePort(what, portID string, mac net.HardwareAddr, mtu int, addrs []netip.Prefix) error {
	if portID == "" || strings.ContainsAny(id11(portID), "/: \t\n\r\v\f\x00") {
		return fmt.Errorf("%s port id %q cannot name a device", what, portID)
	}
	if len(TapName(portID)) > maxLinkName || len(InternalDeviceName(portID)) > maxLinkName {
		return fmt.Errorf("%s port id %q gives device names longer than %d characters", what, portID, maxLinkName)
	}
	if len(mac) != 6 || mac[0]&1 == 1 || mac.String() == "00:00:00:00:00:00" {
		return fmt.Errorf("%s port %s: mac %q is not a unicast ethernet address", what, portID, mac)
	}
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		return fmt.Errorf("%s port %s: mtu %d out of range 68..65535", what, portID, mtu)
	}
	for _, a := range addrs {
		if !a.IsValid() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() || a.Addr().Zone() != "" {
			return fmt.Errorf("%s port %s: address %q is not a unicast address with a prefix length", what, portID, a)
		}
	}
	return nil
}

// plan is a router checked and normalized: what Reconcile builds. Items
// that cannot be served (a floating IP without a gateway, a forward that
// collides with another) are left out and reported in skipped.
type plan struct {
	Router
	gw4      netip.Addr                // the gateway's first IPv4 address; invalid without one
	fips     []FloatingIP              // valid, sorted by floating IP
	fwds     []PortForward             // valid, sorted
	routes   []routeSpec               // extra routes grouped by destination, sorted
	external []netip.Addr              // every floating address to hold on qg- (/32), sorted
	fipErrs  map[netip.Addr]error      // floating IPs left out, and why
	skipped  []error                   // everything left out, and why
	byFIP    map[netip.Addr]netip.Addr // floating -> fixed of fips
}

// newPlan validates r. An error means the router cannot be built at all;
// problems with single items go into the plan's skipped list.
func newPlan(prefix string, r Router) (*plan, error) {
	if err := validateName(prefix, r.ID); err != nil {
		return nil, err
	}
	ports := map[string]bool{}
	for _, itf := range r.Interfaces {
		if err := validatePort("interface", itf.PortID, itf.MAC, itf.MTU, itf.Addrs); err != nil {
			return nil, err
		}
		if ports[id11(itf.PortID)] {
			return nil, fmt.Errorf("two router ports named %s", InternalDeviceName(itf.PortID))
		}
		ports[id11(itf.PortID)] = true
	}
	p := &plan{Router: r, fipErrs: map[netip.Addr]error{}, byFIP: map[netip.Addr]netip.Addr{}}
	if g := r.Gateway; g != nil {
		if err := validatePort("gateway", g.PortID, g.MAC, g.MTU, g.Addrs); err != nil {
			return nil, err
		}
		if ports[id11(g.PortID)] {
			return nil, fmt.Errorf("gateway port %s is also an interface", g.PortID)
		}
		for _, a := range g.Addrs {
			if a.Addr().Is4() && !p.gw4.IsValid() {
				p.gw4 = a.Addr()
			}
		}
		for _, gw := range g.DefaultGateways {
			if !gw.IsValid() || gw.IsUnspecified() || gw.IsMulticast() || gw.Zone() != "" {
				return nil, fmt.Errorf("default gateway %q is not a unicast address", gw)
			}
		}
	}
	p.planFloatingIPs()
	p.planPortForwards()
	p.planRoutes()
	return p, nil
}

func (p *plan) skip(err error) { p.skipped = append(p.skipped, err) }

// ownAddr reports whether a is one of the router's own port addresses.
func (p *plan) ownAddr(a netip.Addr) bool {
	for _, itf := range p.Interfaces {
		for _, x := range itf.Addrs {
			if x.Addr() == a {
				return true
			}
		}
	}
	if p.Gateway != nil {
		for _, x := range p.Gateway.Addrs {
			if x.Addr() == a {
				return true
			}
		}
	}
	return false
}

func (p *plan) planFloatingIPs() {
	fixedUsed := map[netip.Addr]netip.Addr{}
	fips := slices.Clone(p.FloatingIPs)
	slices.SortStableFunc(fips, func(a, b FloatingIP) int { return a.FloatingIP.Compare(b.FloatingIP) })
	for _, f := range fips {
		name := f.FloatingIP.String()
		if f.ID != "" {
			name = f.ID + " (" + name + ")"
		}
		var err error
		switch {
		case !f.FloatingIP.Is4() || f.FloatingIP.IsUnspecified() || f.FloatingIP.IsMulticast() || f.FloatingIP.IsLoopback():
			err = fmt.Errorf("floating IP %s: not an IPv4 unicast address (Neutron NATs IPv4 only)", name)
		case !f.FixedIP.Is4() || f.FixedIP.IsUnspecified() || f.FixedIP.IsMulticast():
			err = fmt.Errorf("floating IP %s: fixed IP %q is not an IPv4 unicast address", name, f.FixedIP)
		case !p.gw4.IsValid():
			err = fmt.Errorf("floating IP %s: the router has no external gateway with an IPv4 address", name)
		case p.byFIP[f.FloatingIP].IsValid() || p.fipErrs[f.FloatingIP] != nil:
			err = fmt.Errorf("floating IP %s: given twice", name)
		case fixedUsed[f.FixedIP].IsValid():
			err = fmt.Errorf("floating IP %s: fixed IP %s already has floating IP %s", name, f.FixedIP, fixedUsed[f.FixedIP])
		case p.ownAddr(f.FloatingIP):
			err = fmt.Errorf("floating IP %s: is an address of the router's own ports", name)
		}
		if err != nil {
			if _, seen := p.byFIP[f.FloatingIP]; !seen {
				p.fipErrs[f.FloatingIP] = err
			}
			p.skip(err)
			continue
		}
		p.byFIP[f.FloatingIP] = f.FixedIP
		fixedUsed[f.FixedIP] = f.FloatingIP
		p.fips = append(p.fips, f)
	}
}

// maxForwardElements bounds the map elements a router's forwards expand
// to (a range mapped to a range takes one per port, a range mapped to one
// port takes one): room for every port of two floating IPs, which takes
// the kernel under a second to load.
const maxForwardElements = 1 << 17

// elements is how many map elements a valid forward takes.
func (p PortForward) elements() int {
	emin, emax := p.externalRange()
	imin, imax := p.internalRange()
	if imin == imax {
		return 1
	}
	return int(emax-emin) + 1
}

func (p *plan) planPortForwards() {
	fwds := slices.Clone(p.PortForwards)
	slices.SortStableFunc(fwds, comparePortForwards)
	elements := 0
	for _, f := range fwds {
		err := p.checkPortForward(f)
		if err == nil && elements+f.elements() > maxForwardElements {
			err = fmt.Errorf("the router's forwards would take more than %d map elements (a port range mapped to a range takes one per port)", maxForwardElements)
		}
		if err != nil {
			p.skip(fmt.Errorf("port forwarding %s: %w", f, err))
			continue
		}
		elements += f.elements()
		p.fwds = append(p.fwds, f)
	}
	ext := map[netip.Addr]bool{}
	for _, f := range p.fips {
		ext[f.FloatingIP] = true
	}
	for _, f := range p.fwds {
		ext[f.FloatingIP] = true
	}
	p.external = slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for a := range ext {
			if !yield(a) {
				return
			}
		}
	}, netip.Addr.Compare)
}

func comparePortForwards(a, b PortForward) int {
	if c := a.FloatingIP.Compare(b.FloatingIP); c != 0 {
		return c
	}
	if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
		return c
	}
	amin, _ := a.externalRange()
	bmin, _ := b.externalRange()
	return int(amin) - int(bmin)
}

// checkPortForward validates one forward against the plan so far.
func (p *plan) checkPortForward(f PortForward) error {
	if _, ok := protoNumber(f.Protocol); !ok {
		return fmt.Errorf("protocol %q is neither tcp nor udp", f.Protocol)
	}
	if !f.FloatingIP.Is4() || f.FloatingIP.IsUnspecified() || f.FloatingIP.IsMulticast() {
		return errors.New("the floating IP is not an IPv4 unicast address")
	}
	if !f.InternalIP.Is4() || f.InternalIP.IsUnspecified() || f.InternalIP.IsMulticast() {
		return errors.New("the internal IP is not an IPv4 unicast address")
	}
	if !p.gw4.IsValid() {
		return errors.New("the router has no external gateway with an IPv4 address")
	}
	if _, ok := p.byFIP[f.FloatingIP]; ok {
		return errors.New("the floating IP is associated 1:1 with a port")
	}
	if p.ownAddr(f.FloatingIP) {
		return errors.New("the floating IP is an address of the router's own ports")
	}
	emin, emax := f.externalRange()
	imin, imax := f.internalRange()
	if emin == 0 || imin == 0 || emin > emax || imin > imax {
		return errors.New("ports must be 1-65535 with minimum <= maximum")
	}
	if imin != imax && emax-emin != imax-imin {
		return errors.New("an internal port range must be one port or as long as the external range")
	}
	for _, o := range p.fwds {
		omin, omax := o.externalRange()
		if o.FloatingIP == f.FloatingIP && o.Protocol == f.Protocol && emin <= omax && omin <= emax {
			return fmt.Errorf("collides with %s", o)
		}
	}
	return nil
}

// routeSpec is one kernel route the router wants: a destination and its
// next hops (several: a multipath route).
type routeSpec struct {
	dst      netip.Prefix
	nexthops []nexthop
}

// nexthop is a gateway; dev names the device when the route must go
// through it (the default route through qg-), onlink when the gateway is
// outside the device's subnets.
type nexthop struct {
	gw     netip.Addr
	dev    string
	onlink bool
}

func (p *plan) planRoutes() {
	byDst := map[netip.Prefix][]nexthop{}
	for _, r := range p.Routes {
		dst := r.Destination.Masked()
		switch {
		case !r.Destination.IsValid() || !r.NextHop.IsValid() || r.NextHop.Zone() != "":
			p.skip(fmt.Errorf("route %s via %s: invalid", r.Destination, r.NextHop))
			continue
		case r.Destination.Addr().Is4() != r.NextHop.Is4():
			p.skip(fmt.Errorf("route %s via %s: families differ", r.Destination, r.NextHop))
			continue
		case slices.ContainsFunc(byDst[dst], func(n nexthop) bool { return n.gw == r.NextHop }):
			continue
		}
		byDst[dst] = append(byDst[dst], nexthop{gw: r.NextHop})
	}
	if g := p.Gateway; g != nil {
		seen := map[bool]bool{}
		for _, gw := range g.DefaultGateways {
			if seen[gw.Is4()] {
				continue
			}
			seen[gw.Is4()] = true
			dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if gw.Is6() {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			if len(byDst[dst]) > 0 {
				p.skip(fmt.Errorf("extra route %s replaced by the default route via the external gateway %s", dst, gw))
			}
			onlink := !slices.ContainsFunc(g.Addrs, func(a netip.Prefix) bool { return a.Masked().Contains(gw) })
			byDst[dst] = []nexthop{{gw: gw, dev: GatewayDeviceName(g.PortID), onlink: onlink}}
		}
	}
	for dst, nhs := range byDst {
		slices.SortFunc(nhs, func(a, b nexthop) int { return a.gw.Compare(b.gw) })
		p.routes = append(p.routes, routeSpec{dst: dst, nexthops: nhs})
	}
	slices.SortFunc(p.routes, func(a, b routeSpec) int {
		if c := a.dst.Addr().Compare(b.dst.Addr()); c != 0 {
			return c
		}
		return a.dst.Bits() - b.dst.Bits()
	})
}

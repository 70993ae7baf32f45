package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Network types a Network may have.
const (
	TypeVXLAN = "vxlan"
	TypeFlat  = "flat"
	TypeVLAN  = "vlan"
	TypeLocal = "local"
)

// DefaultVXLANPort is the IANA VXLAN UDP port, used when Desired.VXLANPort is 0.
const DefaultVXLANPort = 4789

// Name prefixes of the links the package names. Links with the first two are
// owned (created and deleted here); taps are only wired.
const (
	BridgePrefix = "brq"
	VXLANPrefix  = "vxlan-"
	TapPrefix    = "tap"
)

// maxLinkName is IFNAMSIZ-1: the kernel's limit on interface names.
const maxLinkName = 15

// ErrVLANUnsupported is the error of a vlan network on a kernel without 802.1Q.
var ErrVLANUnsupported = errors.New("this kernel has no 802.1Q VLAN support")

// Desired is everything the host's L2 wiring should be.
type Desired struct {
	LocalIP   netip.Addr // this host's VXLAN endpoint
	VXLANPort int        // UDP port of VXLAN; 0 means DefaultVXLANPort
	Networks  []Network
}

// Network is one network present on the host.
type Network struct {
	ID                string   // full network UUID; the bridge is "brq"+ID[:11]
	Type              string   // TypeVXLAN, TypeFlat, TypeVLAN or TypeLocal
	SegmentationID    uint32   // VNI or VLAN id
	PhysicalInterface string   // flat/vlan: the mapped host interface
	MTU               int      // 0 leaves MTUs as the kernel chose them
	Taps              []string // local tap devices to enslave ("tap"+portID[:11]); they may not exist yet
	Remotes           []Remote // vxlan: ports of this network on other hosts (l2population)
}

// Remote is a port of a network on another host, as l2population reports it.
type Remote struct {
	MAC  net.HardwareAddr
	IPs  []netip.Addr // every address of the port, including allowed-address pairs
	VTEP netip.Addr   // the VXLAN endpoint of the port's host
}

// Result is what one Reconcile achieved, for the agent's status reports.
type Result struct {
	Networks map[string]NetworkStatus // by network ID
	Taps     map[string]TapStatus     // by tap name, for every tap of Desired
	Stale    error                    // links no network wants that could not be removed
	Changes  []string                 // kernel modifications made, in order; empty when nothing changed
}

// NetworkStatus is the outcome for one network.
type NetworkStatus struct {
	Bridge string
	Err    error // nil when the network is wired as desired
}

// TapStatus is the state of one desired tap after Reconcile.
type TapStatus struct {
	Network string // network ID the tap belongs to
	Exists  bool   // the device is present (a missing tap is not an error: it may appear later)
	Wired   bool   // present, enslaved to the network's bridge, up and at the network's MTU
	Err     error  // why the tap could not be wired, if it exists and is not
}

// Err joins the errors of every network and tap, or is nil when all is wired.
func (r Result) Err() error {
	var errs []error
	for _, id := range sortedKeys(r.Networks) {
		if err := r.Networks[id].Err; err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", id, err))
		}
	}
	for _, name := range sortedKeys(r.Taps) {
		if err := r.Taps[name].Err; err != nil {
			errs = append(errs, fmt.Errorf("tap %s: %w", name, err))
		}
	}
	if r.Stale != nil {
		errs = append(errs, fmt.Errorf("cleanup: %w", r.Stale))
	}
	return errors.Join(errs...)
}

// BridgeName is the bridge of a network: "brq" and the first 11 characters of its ID.
func BridgeName(networkID string) string {
	return BridgePrefix + prefix11(networkID)
}

// VXLANName is the VXLAN device of a VNI.
func VXLANName(vni uint32) string {
	return VXLANPrefix + strconv.FormatUint(uint64(vni), 10)
}

// VLANName is the 802.1Q sub-interface of a physical interface for a VLAN id.
func VLANName(physdev string, vid uint32) string {
	return physdev + "." + strconv.FormatUint(uint64(vid), 10)
}

// TapName is the tap device of a port: "tap" and the first 11 characters of its ID.
func TapName(portID string) string {
	return TapPrefix + prefix11(portID)
}

func prefix11(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// validLinkName reports whether name can be an interface name: the kernel
// refuses empty names, "." and "..", '/', ':' and whitespace.
func validLinkName(name string) error {
	if name == "" || len(name) > maxLinkName || name == "." || name == ".." {
		return fmt.Errorf("invalid interface name %q (1 to %d characters)", name, maxLinkName)
	}
	if strings.ContainsAny(name, "/: \t\n\r\v\f") {
		return fmt.Errorf("invalid interface name %q", name)
	}
	return nil
}

func validTapName(name string) error {
	if err := validLinkName(name); err != nil {
		return err
	}
	if !strings.HasPrefix(name, TapPrefix) || len(name) == len(TapPrefix) {
		return fmt.Errorf("tap name %q does not start with %q", name, TapPrefix)
	}
	return nil
}

// validate checks what Render needs of a network, independently of the others.
func (n Network) validate(d Desired) error {
	if len(n.ID) < 11 {
		return fmt.Errorf("network id %q is shorter than 11 characters", n.ID)
	}
	if err := validLinkName(BridgeName(n.ID)); err != nil {
		return fmt.Errorf("network id %q: %w", n.ID, err)
	}
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		return fmt.Errorf("mtu %d out of range 68..65535", n.MTU)
	}
	switch n.Type {
	case TypeLocal:
	case TypeVXLAN:
		if n.SegmentationID < 1 || n.SegmentationID > 1<<24-1 {
			return fmt.Errorf("vni %d out of range 1..16777215", n.SegmentationID)
		}
		if !d.LocalIP.IsValid() || d.LocalIP.IsUnspecified() {
			return errors.New("vxlan network but no local VTEP address")
		}
		return n.validateRemotes(d.LocalIP)
	case TypeFlat:
		return validPhysical(n.PhysicalInterface)
	case TypeVLAN:
		if n.SegmentationID < 1 || n.SegmentationID > 4094 {
			return fmt.Errorf("vlan id %d out of range 1..4094", n.SegmentationID)
		}
		if err := validPhysical(n.PhysicalInterface); err != nil {
			return err
		}
		return validLinkName(VLANName(n.PhysicalInterface, n.SegmentationID))
	default:
		return fmt.Errorf("unknown network type %q", n.Type)
	}
	return nil
}

// validPhysical refuses interfaces the Manager owns by name: enslaving one of
// them as a physical interface would let cleanup delete it.
func validPhysical(name string) error {
	if name == "" {
		return errors.New("no physical interface")
	}
	if err := validLinkName(name); err != nil {
		return fmt.Errorf("physical interface: %w", err)
	}
	for _, p := range []string{BridgePrefix, VXLANPrefix, TapPrefix} {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("physical interface %q has the reserved prefix %q", name, p)
		}
	}
	return nil
}

// validateRemotes checks remote ports and refuses contradictions (one MAC on
// two VTEPs, one IP with two MACs): the kernel could hold only one of them.
func (n Network) validateRemotes(local netip.Addr) error {
	macVTEP := map[string]netip.Addr{}
	ipMAC := map[netip.Addr]string{}
	for _, r := range n.Remotes {
		if len(r.MAC) != 6 || r.MAC[0]&1 == 1 || isZeroMAC(r.MAC) {
			return fmt.Errorf("remote port mac %q is not a unicast ethernet address", r.MAC)
		}
		if !r.VTEP.IsValid() || r.VTEP.IsUnspecified() || r.VTEP.Is4() != local.Is4() {
			return fmt.Errorf("remote port %s: vtep %q is not a %s unicast address", r.MAC, r.VTEP, family(local))
		}
		if r.VTEP == local {
			return fmt.Errorf("remote port %s: vtep %s is this host", r.MAC, r.VTEP)
		}
		mac := r.MAC.String()
		if v, ok := macVTEP[mac]; ok && v != r.VTEP {
			return fmt.Errorf("remote port %s is on two vteps, %s and %s", mac, v, r.VTEP)
		}
		macVTEP[mac] = r.VTEP
		for _, ip := range r.IPs {
			if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() {
				return fmt.Errorf("remote port %s: address %q is not unicast", mac, ip)
			}
			ip = ip.Unmap()
			if m, ok := ipMAC[ip]; ok && m != mac {
				return fmt.Errorf("remote address %s belongs to two ports, %s and %s", ip, m, mac)
			}
			ipMAC[ip] = mac
		}
	}
	return nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func isZeroMAC(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

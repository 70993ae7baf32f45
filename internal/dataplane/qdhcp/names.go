package qdhcp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/dhcp6"
	"github.com/vland/vland/internal/dataplane/l2"
	"github.com/vland/vland/internal/dataplane/ra"
)

// Name parts, Neutron's.
const (
	// NamespaceInfix follows the agent's prefix in a DHCP namespace's name.
	NamespaceInfix = "qdhcp-"
	// DevicePrefix starts the name of the DHCP port's device inside it.
	DevicePrefix = "ns-"
)

// maxLinkName is IFNAMSIZ-1, the kernel's limit on interface names.
const maxLinkName = 15

// maxNamespaceName bounds a namespace name: it is a file name in /run/netns.
const maxNamespaceName = 255

// NamespaceName is the namespace of a network's DHCP service for an agent
// with the given namespace prefix: prefix + "qdhcp-" + the full network ID.
func NamespaceName(prefix, networkID string) string {
	return prefix + NamespaceInfix + networkID
}

// DeviceName is the DHCP port's device inside the namespace: "ns-" and the
// first 11 characters of the port ID.
func DeviceName(portID string) string {
	return DevicePrefix + id11(portID)
}

// TapName is the host end of the DHCP port's veth pair, the name every local
// port's device has: "tap" and the first 11 characters of the port ID.
func TapName(portID string) string { return l2.TapName(portID) }

func id11(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// Service is one network's DHCP service on this host: the DHCP port bound
// here and what its server answers.
type Service struct {
	// NetworkID is the network's full UUID; it names the namespace.
	NetworkID string
	// PortID is the DHCP port's; it names ns-<id11> and tap<id11>.
	PortID string
	// MAC is the DHCP port's mac_address, given to ns-<id11>.
	MAC net.HardwareAddr
	// MTU is the network's; 0 leaves the kernel's default.
	MTU int
	// Addrs are the DHCP port's fixed IPs with their subnets' prefix
	// lengths (10.0.0.2/24), configured on ns-<id11>.
	Addrs []netip.Prefix
	// Table is what the DHCPv4 server answers from. A table without IPv4
	// server addresses (an IPv6-only network) runs no DHCPv4 server.
	Table dhcp.Table
	// Table6 is what the DHCPv6 server answers from; an empty one runs no
	// DHCPv6 server.
	Table6 dhcp6.Table
	// RA, when set, is announced in router advertisements from the DHCP
	// port (IPv6 subnets with an ipv6_ra_mode and no router to send them).
	RA *ra.Config
}

// serves reports whether the service needs a DHCPv4 server.
func (s Service) serves() bool {
	for _, p := range s.Table.Servers {
		if p.Addr().Is4() {
			return true
		}
	}
	return false
}

// validate checks what Reconcile needs of a service before touching the
// kernel for it.
func (s Service) validate(prefix string) error {
	if s.NetworkID == "" || s.NetworkID == "." || s.NetworkID == ".." || strings.ContainsAny(s.NetworkID, "/\x00") {
		return fmt.Errorf("network id %q cannot name a namespace", s.NetworkID)
	}
	if n := NamespaceName(prefix, s.NetworkID); len(n) > maxNamespaceName {
		return fmt.Errorf("namespace name %q is longer than %d bytes", n, maxNamespaceName)
	}
	if s.PortID == "" || strings.ContainsAny(id11(s.PortID), "/: \t\n\r\v\f\x00") {
		return fmt.Errorf("port id %q cannot name a device", s.PortID)
	}
	if len(TapName(s.PortID)) > maxLinkName || len(DeviceName(s.PortID)) > maxLinkName {
		return fmt.Errorf("port id %q gives device names longer than %d characters", s.PortID, maxLinkName)
	}
	if len(s.MAC) != 6 || s.MAC[0]&1 == 1 || s.MAC.String() == "00:00:00:00:00:00" {
		return fmt.Errorf("mac %q is not a unicast ethernet address", s.MAC)
	}
	if s.MTU != 0 && (s.MTU < 68 || s.MTU > 65535) {
		return fmt.Errorf("mtu %d out of range 68..65535", s.MTU)
	}
	for _, a := range s.Addrs {
		if !a.IsValid() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
			return fmt.Errorf("address %q is not a unicast address with a prefix length", a)
		}
	}
	return nil
}

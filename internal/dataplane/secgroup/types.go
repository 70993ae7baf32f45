package secgroup

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Rule directions and ethertypes, as Neutron spells them.
const (
	Ingress = "ingress"
	Egress  = "egress"
	IPv4    = "IPv4"
	IPv6    = "IPv6"
)

// TableName is the name of both tables vland owns in the host namespace:
// one of family bridge (anti-spoofing, port marks) and one of family inet
// (conntrack zones, the security-group rules).
const TableName = "vland-sg"

// Desired is every port on the host that the firewall covers, with what its
// rules refer to. The agent computes it from its host view.
type Desired struct {
	Ports  []Port
	Groups map[string]Group // by security group id
	// RemoteGroups holds, for each security group a remote_group_id rule
	// names, the addresses of all ports in that group, cloud-wide: both
	// families, fixed IPs and allowed-address-pair addresses or CIDRs.
	RemoteGroups map[string][]netip.Prefix
	// AddressGroups holds the prefixes of each address group a
	// remote_address_group_id rule names.
	AddressGroups map[string][]netip.Prefix
}

// Port is one port on the host's bridges.
type Port struct {
	ID     string // Neutron port id
	Device string // its device on the bridge: "tap"+ID[:11]
	// Bridge is the bridge Device is enslaved to (brq<network id11>). All
	// traffic entering that bridge, from any of its ports, is tracked in
	// conntrack zone Zone, so ports of the same network must agree on it.
	Bridge string
	// Zone is the conntrack zone of the port's network; the agent gives
	// each network on the host a distinct one.
	Zone         uint16
	MAC          net.HardwareAddr
	IPs          []netip.Addr // fixed IPs
	AllowedPairs []AddressPair
	// PortSecurity false means no anti-spoofing and no filtering of the
	// port's own traffic (the groups of the ports it talks to still apply).
	PortSecurity bool
	// Groups are the security group ids of the port. With PortSecurity and
	// no groups, everything but the basics Neutron always allows (DHCP
	// client, ICMPv6 neighbour discovery, ARP) is dropped both ways.
	Groups []string
}

// AddressPair is an allowed-address pair: traffic from Prefix with MAC is
// the port's own too.
type AddressPair struct {
	Prefix netip.Prefix     // a single address is a /32 or /128
	MAC    net.HardwareAddr // nil: the port's MAC
}

// Group is a security group.
type Group struct {
	ID string
	// Stateful groups let replies of allowed connections back in (ct state
	// established,related); stateless ones use no conntrack at all and need
	// rules in both directions. Neutron forbids mixing both on one port; a
	// port with any stateful group is treated as stateful.
	Stateful bool
	Rules    []Rule
}

// Rule is one security group rule, with Neutron's fields.
type Rule struct {
	ID        string
	Direction string // Ingress or Egress
	Ethertype string // IPv4 or IPv6
	// Protocol is "" or "any" for every protocol, a name Neutron knows
	// (tcp, udp, icmp, ipv6-icmp, sctp, ...) or a decimal number 0-255.
	// "icmp" in an IPv6 rule means ipv6-icmp, as in Neutron.
	Protocol string
	// PortMin and PortMax are Neutron's port_range_min/max, nil when null.
	// For icmp and ipv6-icmp they are the ICMP type and code.
	PortMin, PortMax *int
	// At most one of the three remotes is set; none means any address.
	RemoteIPPrefix       netip.Prefix
	RemoteGroupID        string
	RemoteAddressGroupID string
}

// Options configure a Manager.
type Options struct {
	// NetNS is the host network namespace: "" for the caller's own, a bare
	// name for one made by `ip netns add`, a path such as /proc/<pid>/ns/net.
	NetNS string
	// Logger receives what the Manager changes; nil means slog.Default().
	Logger *slog.Logger
}

// Result is what one Reconcile changed.
type Result struct {
	// Full is true when the tables were rebuilt whole (first reconcile of a
	// Manager, or after a failed transaction), in one transaction.
	Full bool
	// Changes lists the modifications of the transaction, in order, such
	// as "add rule inet vland-sg sg-<id>-ingress: tcp dport 22 accept".
	// Empty when the kernel already had the desired ruleset.
	Changes []string
	// Rules and Elements count the rules and set elements the tables hold
	// after the reconcile.
	Rules, Elements int
	// ConntrackDeleted counts the connections that lost the rules allowing
	// them and were cut.
	ConntrackDeleted int
	// Took is the time until the kernel enforced the change (render,
	// diff, transaction); ConntrackTook the check of the tracked
	// connections that followed, if any.
	Took, ConntrackTook time.Duration
	// Skipped lists what could not be rendered (a rule with an unknown
	// protocol, a port with a duplicate device...), each with its reason;
	// the rest of the ruleset is applied regardless.
	Skipped []string
}

// protocols maps the protocol names Neutron accepts to their numbers
// (neutron_lib.constants.IP_PROTOCOL_MAP).
var protocols = map[string]uint8{
	"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
	"igmp": 2, "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
	"icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
	"pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}

// Protocol numbers the renderer treats specially.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoDCCP   = 33
	protoICMPv6 = 58
	protoSCTP   = 132
	protoUDPLit = 136
)

// hasPorts reports whether a protocol has 16-bit ports at offsets 0 and 2
// of its header, so that port ranges apply (Neutron allows them for these).
func hasPorts(p uint8) bool {
	switch p {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLit:
		return true
	}
	return false
}

// match is a rule in the form the renderer and the policy evaluator share:
// validated, with names resolved.
type match struct {
	ingress bool
	v6      bool
	proto   int // -1: any
	// Port range for protocols with ports; ICMP type and code (-1: any).
	portMin, portMax int
	icmpType         int
	icmpCode         int
	remote           netip.Prefix // valid only for a remote IP prefix
	remoteGroup      string
	addressGroup     string
}

// parseRule validates r as Neutron would have and resolves it.
func parseRule(r Rule) (match, error) {
	m := match{proto: -1, icmpType: -1, icmpCode: -1}
	switch r.Direction {
	case Ingress:
		m.ingress = true
	case Egress:
	default:
		return m, fmt.Errorf("direction %q is neither ingress nor egress", r.Direction)
	}
	switch r.Ethertype {
	case IPv4:
	case IPv6:
		m.v6 = true
	default:
		return m, fmt.Errorf("ethertype %q is neither IPv4 nor IPv6", r.Ethertype)
	}
	p := strings.ToLower(strings.TrimSpace(r.Protocol))
	switch {
	case p == "" || p == "any":
	default:
		if n, ok := protocols[p]; ok {
			m.proto = int(n)
		} else if n, err := strconv.ParseUint(p, 10, 8); err == nil {
			m.proto = int(n)
		} else {
			return m, fmt.Errorf("unknown protocol %q", r.Protocol)
		}
	}
	if m.v6 && m.proto == protoICMP {
		m.proto = protoICMPv6 // Neutron accepts "icmp" in IPv6 rules for ipv6-icmp
	}
	if !m.v6 && m.proto == protoICMPv6 {
		return m, fmt.Errorf("protocol ipv6-icmp in an IPv4 rule")
	}
	switch {
	case m.proto == protoICMP || m.proto == protoICMPv6:
		if r.PortMin != nil {
			if *r.PortMin < 0 || *r.PortMin > 255 {
				return m, fmt.Errorf("ICMP type %d out of 0-255", *r.PortMin)
			}
			m.icmpType = *r.PortMin
		}
		if r.PortMax != nil {
			if *r.PortMax < 0 || *r.PortMax > 255 {
				return m, fmt.Errorf("ICMP code %d out of 0-255", *r.PortMax)
			}
			if r.PortMin == nil {
				return m, fmt.Errorf("ICMP code %d without a type", *r.PortMax)
			}
			m.icmpCode = *r.PortMax
		}
	case m.proto >= 0 && hasPorts(uint8(m.proto)):
		lo, hi := 0, 0
		if r.PortMin != nil {
			lo = *r.PortMin
		}
		if r.PortMax != nil {
			hi = *r.PortMax
		}
		if lo == 0 && hi != 0 || lo != 0 && hi == 0 {
			lo, hi = max(lo, hi), max(lo, hi) // one bound given: that port alone
		}
		if lo < 0 || hi > 65535 || lo > hi {
			return m, fmt.Errorf("port range %d-%d invalid", lo, hi)
		}
		if lo == 1 && hi == 65535 {
			lo, hi = 0, 0 // every port: no match needed
		}
		m.portMin, m.portMax = lo, hi
	default:
		if r.PortMin != nil && *r.PortMin != 0 || r.PortMax != nil && *r.PortMax != 0 {
			return m, fmt.Errorf("port range given for protocol %q, which has no ports", r.Protocol)
		}
	}
	remotes := 0
	if r.RemoteIPPrefix.IsValid() {
		remotes++
		if r.RemoteIPPrefix.Addr().Is4() == m.v6 || r.RemoteIPPrefix.Addr().Is4In6() {
			return m, fmt.Errorf("remote prefix %s does not match ethertype %s", r.RemoteIPPrefix, r.Ethertype)
		}
		m.remote = r.RemoteIPPrefix.Masked()
		if m.remote.Bits() == 0 {
			m.remote = netip.Prefix{} // 0.0.0.0/0 or ::/0: any address
		}
	}
	if r.RemoteGroupID != "" {
		remotes++
		m.remoteGroup = r.RemoteGroupID
	}
	if r.RemoteAddressGroupID != "" {
		remotes++
		m.addressGroup = r.RemoteAddressGroupID
	}
	if remotes > 1 {
		return m, fmt.Errorf("more than one of remote_ip_prefix, remote_group_id and remote_address_group_id")
	}
	return m, nil
}

// fam is "4" or "6", the suffix of per-family names.
func (m match) fam() string {
	if m.v6 {
		return "6"
	}
	return "4"
}

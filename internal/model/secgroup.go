package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vland/vland/internal/apierr"
)

// SecurityGroup is a named set of firewall rules applied to ports
// (security-group, stateful-security-group). Its rules are objects of
// their own (SecurityGroupRule); the store never embeds them.
type SecurityGroup struct {
	Standard
	// Stateful groups track connections (replies pass); stateless ones
	// need rules for both directions.
	Stateful bool `json:"stateful"`
	// IsDefault marks the project's "default" group, created lazily; the
	// API does not show it.
	IsDefault bool `json:"is_default,omitempty"`
	// Rules are the group's rules when a service call returns the group,
	// for the view; nil in the cache, where the API adds them per request.
	Rules []*SecurityGroupRule `json:"-"`
}

// DefaultSecurityGroupName is the name of each project's default group.
const DefaultSecurityGroupName = "default"

// DefaultSecurityGroupDescription is Neutron's description of it.
const DefaultSecurityGroupDescription = "Default security group"

// SecurityGroupSpec is the attribute map of security groups.
var SecurityGroupSpec = &Spec{
	Singular: "security_group",
	Plural:   "security_groups",
	Attrs: append(standardAttrs(),
		&Attr{Name: "stateful", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "shared"},
		&Attr{Name: "security_group_rules"},
	),
}

// View implements Object.
func (g *SecurityGroup) View() map[string]any {
	m := make(map[string]any, 14)
	g.Standard.view(m)
	m["stateful"] = g.Stateful
	// Sharing through RBAC (rbac-security-groups) is not implemented: no
	// group is shared.
	m["shared"] = false
	rules := make([]any, len(g.Rules))
	for i, r := range g.Rules {
		rules[i] = r.View()
	}
	m["security_group_rules"] = rules
	return m
}

// Rule directions and ether types.
const (
	Ingress = "ingress"
	Egress  = "egress"
	IPv4    = "IPv4"
	IPv6    = "IPv6"
)

// SecurityGroupRule is one rule of a security group: traffic in one
// direction, of one ether type, optionally of one protocol and port (or
// ICMP type/code) range, from or to a remote prefix, group or address group.
type SecurityGroupRule struct {
	// Standard holds id, project, description and the timestamps; rules
	// have no name and no tags.
	Standard
	SecurityGroupID string `json:"security_group_id"`
	Direction       string `json:"direction"`
	EtherType       string `json:"ethertype"`
	// Protocol is as given, normalised: a lower-case name or a decimal
	// number; "" is any protocol.
	Protocol string `json:"protocol,omitempty"`
	// PortRangeMin and PortRangeMax are ports, or ICMP type and code.
	PortRangeMin *int `json:"port_range_min,omitempty"`
	PortRangeMax *int `json:"port_range_max,omitempty"`
	// RemoteIPPrefix keeps host bits as given (10.0.0.5/24), as Neutron;
	// RemoteCIDR is the network it means.
	RemoteIPPrefix       netip.Prefix `json:"remote_ip_prefix,omitzero"`
	RemoteGroupID        string       `json:"remote_group_id,omitempty"`
	RemoteAddressGroupID string       `json:"remote_address_group_id,omitempty"`
	// BelongsToDefault is set on the rules of a default group.
	BelongsToDefault bool `json:"belongs_to_default_sg,omitempty"`
}

// SecurityGroupRuleSpec is the attribute map of security group rules. The
// attributes whose invalid values Neutron reports with errors of their own
// (protocol, ports, ether type, remote prefix) are kept raw here and
// checked by NewSecurityGroupRule.
var SecurityGroupRuleSpec = &Spec{
	Singular: "security_group_rule",
	Plural:   "security_group_rules",
	Attrs: []*Attr{
		{Name: "id", Parse: ParseUUID},
		// Neutron lets description through its attribute map on update
		// but has no rule update; the API answers 405 after decoding.
		{Name: "description", Post: true, Put: true, Parse: ParseString(255)},
		{Name: "project_id", Post: true, Parse: ParseString(255)},
		{Name: "tenant_id", Post: true, Parse: ParseString(255)},
		{Name: "created_at"},
		{Name: "updated_at"},
		{Name: "revision_number"},
		{Name: "security_group_id", Post: true, Required: true, Parse: ParseString(36)},
		{Name: "remote_group_id", Post: true, Parse: parseOptionalID},
		{Name: "remote_address_group_id", Post: true, Parse: parseOptionalID},
		{Name: "direction", Post: true, Required: true, Parse: ParseOneOf(Ingress, Egress)},
		{Name: "protocol", Post: true},
		{Name: "port_range_min", Post: true},
		{Name: "port_range_max", Post: true},
		{Name: "ethertype", Post: true},
		{Name: "remote_ip_prefix", Post: true},
		{Name: "normalized_cidr"},
		{Name: "belongs_to_default_sg"},
	},
}

// parseOptionalID accepts a string id or null ("").
func parseOptionalID(v any) (any, error) {
	if v == nil {
		return "", nil
	}
	return ParseString(36)(v)
}

// View implements Object.
func (r *SecurityGroupRule) View() map[string]any {
	m := make(map[string]any, 20)
	r.Standard.view(m)
	delete(m, "name")
	delete(m, "tags")
	m["security_group_id"] = r.SecurityGroupID
	m["direction"] = r.Direction
	m["ethertype"] = r.EtherType
	m["protocol"] = nilIfEmpty(r.Protocol)
	m["port_range_min"] = intOrNil(r.PortRangeMin)
	m["port_range_max"] = intOrNil(r.PortRangeMax)
	m["remote_ip_prefix"], m["normalized_cidr"] = nil, nil
	if r.RemoteIPPrefix.IsValid() {
		m["remote_ip_prefix"] = r.RemoteIPPrefix.String()
		m["normalized_cidr"] = r.RemoteIPPrefix.Masked().String()
	}
	m["remote_group_id"] = nilIfEmpty(r.RemoteGroupID)
	m["remote_address_group_id"] = nilIfEmpty(r.RemoteAddressGroupID)
	m["belongs_to_default_sg"] = r.BelongsToDefault
	return m
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func intOrNil(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// RemoteCIDR is the network the rule's remote_ip_prefix means (its
// normalized_cidr); invalid when the rule has no prefix.
func (r *SecurityGroupRule) RemoteCIDR() netip.Prefix {
	if !r.RemoteIPPrefix.IsValid() {
		return netip.Prefix{}
	}
	return r.RemoteIPPrefix.Masked()
}

// ProtocolNumber is the IP protocol the rule matches; ok is false for any.
func (r *SecurityGroupRule) ProtocolNumber() (n int, ok bool) {
	if r.Protocol == "" {
		return 0, false
	}
	return protoNumber(r.Protocol), true
}

// Key identifies what a rule matches, as Neutron's _rule_to_key: two
// rules of a group with equal keys are duplicates. Protocols compare by
// number ("6" and "tcp" are one), a prefix covering everything equals no
// prefix.
func (r *SecurityGroupRule) Key() string {
	opt := func(p *int) string {
		if p == nil {
			return "+"
		}
		return strconv.Itoa(*p)
	}
	proto := "+"
	if r.Protocol != "" {
		proto = strconv.Itoa(protoNumber(r.Protocol))
	}
	prefix := "+"
	if r.RemoteIPPrefix.IsValid() && !(r.RemoteIPPrefix.Bits() == 0 && r.RemoteIPPrefix.Addr().IsUnspecified()) {
		prefix = r.RemoteIPPrefix.String()
	}
	parts := []string{r.Direction, r.EtherType, opt(r.PortRangeMax), opt(r.PortRangeMin), proto,
		orPlus(r.RemoteGroupID), orPlus(r.RemoteAddressGroupID), prefix, r.SecurityGroupID}
	sum := sha256.Sum256([]byte(strings.Join(parts, "_")))
	return hex.EncodeToString(sum[:16])
}

func orPlus(s string) string {
	if s == "" {
		return "+"
	}
	return s
}

// ipProtocols is neutron-lib's IP_PROTOCOL_MAP, in its order (messages
// list the names in it).
var ipProtocols = []struct {
	name string
	num  int
}{
	{"ah", 51}, {"dccp", 33}, {"egp", 8}, {"esp", 50}, {"gre", 47}, {"hopopt", 0}, {"icmp", 1},
	{"igmp", 2}, {"ip", 0}, {"ipip", 4}, {"ipv6-encap", 41}, {"ipv6-frag", 44}, {"ipv6-icmp", 58},
	{"icmpv6", 58}, {"ipv6-nonxt", 59}, {"ipv6-opts", 60}, {"ipv6-route", 43}, {"ospf", 89},
	{"pgm", 113}, {"rsvp", 46}, {"sctp", 132}, {"tcp", 6}, {"udp", 17}, {"udplite", 136}, {"vrrp", 112},
}

// Protocol numbers the API's checks single out.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// portProtocols take port ranges (Neutron's SG_PORT_PROTO_*).
var portProtocols = map[int]bool{33: true, 132: true, ProtoTCP: true, ProtoUDP: true, 136: true}

// ipv6OnlyProtocols may not be used with IPv4 rules.
var ipv6OnlyProtocols = map[string]bool{
	"ipv6-encap": true, "ipv6-frag": true, "ipv6-icmp": true, "icmpv6": true, "ipv6-nonxt": true,
	"ipv6-opts": true, "ipv6-route": true, "41": true, "44": true, "58": true, "59": true, "60": true, "43": true,
}

// protoNumber is the number of a normalised protocol (name or number).
func protoNumber(p string) int {
	if n, err := strconv.Atoi(p); err == nil {
		return n
	}
	for _, ip := range ipProtocols {
		if ip.name == p {
			return ip.num
		}
	}
	return -1
}

// PortsApply reports whether a rule's port range matches ports (TCP, UDP,
// SCTP, DCCP, UDP-Lite) rather than ICMP type and code.
func (r *SecurityGroupRule) PortsApply() bool {
	n, ok := r.ProtocolNumber()
	return ok && portProtocols[n]
}

func supportedProtocols() string {
	q := []string{"None", "'any'"}
	for _, p := range ipProtocols {
		q = append(q, "'"+p.name+"'")
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// convertProtocol is Neutron's convert_protocol: "" for any, else a
// lower-case known name or a number 0-255 in decimal.
func convertProtocol(v any) (string, error) {
	bad := func() error {
		return apierr.New(400, "SecurityGroupRuleInvalidProtocol",
			"Security group rule protocol %s not supported. Only protocol values %s and integer representations [0 to 255] are supported.",
			show(v), supportedProtocols())
	}
	var s string
	switch t := v.(type) {
	case nil:
		return "", nil
	case int:
		s = strconv.Itoa(t)
	case json.Number:
		s = t.String()
	case string:
		s = t
	default:
		return "", bad()
	}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		if n < 0 || n > 255 {
			return "", bad()
		}
		return strconv.Itoa(n), nil
	}
	l := strings.ToLower(s)
	if l == "any" {
		return "", nil
	}
	for _, p := range ipProtocols {
		if p.name == l {
			return l, nil
		}
	}
	return "", bad()
}

// convertPort is Neutron's convert_validate_port_value: null or 0-65535.
func convertPort(v any) (*int, error) {
	var n int
	ok := false
	switch t := v.(type) {
	case nil:
		return nil, nil
	case int:
		n, ok = t, t >= 0 && t <= 65535
	case json.Number:
		if i, err := t.Int64(); err == nil && i >= 0 && i <= 65535 {
			n, ok = int(i), true
		} else if f, err := t.Float64(); err == nil && f >= 0 && f < 65536 && !math.IsNaN(f) {
			n, ok = int(f), true // Python's int() truncates a float
		}
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(t)); err == nil && i >= 0 && i <= 65535 {
			n, ok = i, true
		}
	}
	if !ok {
		return nil, apierr.New(400, "SecurityGroupInvalidPortValue", "Invalid value for port %s", show(v))
	}
	return &n, nil
}

// convertEtherType accepts IPv4 or IPv6 in any case.
func convertEtherType(v any) (string, error) {
	if s, ok := v.(string); ok {
		for _, e := range []string{IPv4, IPv6} {
			if strings.EqualFold(s, e) {
				return e, nil
			}
		}
	}
	return "", apierr.New(400, "SecurityGroupRuleInvalidEtherType",
		"Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", show(v))
}

// convertIPPrefix is Neutron's convert_ip_prefix_to_cidr: an address
// becomes a host prefix, host bits of a prefix are kept.
func convertIPPrefix(v any) (netip.Prefix, error) {
	if v == nil || v == "" {
		return netip.Prefix{}, nil
	}
	if s, ok := v.(string); ok {
		s = strings.TrimSpace(s)
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			return netip.PrefixFrom(a, a.BitLen()), nil
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, apierr.New(400, "InvalidCIDR", "Invalid CIDR %s given as IP prefix.", show(v))
}

func invalid(typ, format string, args ...any) error { return apierr.New(400, typ, format, args...) }

// NewSecurityGroupRule builds a rule from a decoded create request and
// checks it as Neutron's _validate_base_security_group_rule_attributes
// does, in its order, with its errors: values normalised (IPv6 ICMP names,
// the full port range meaning none), port ranges valid for the protocol,
// the remote prefix of the rule's ether type, one remote at most. The
// caller sets the id, project and timestamps and checks the groups.
func NewSecurityGroupRule(f Fields) (*SecurityGroupRule, error) {
	r := &SecurityGroupRule{
		SecurityGroupID: f["security_group_id"].(string),
		Direction:       f["direction"].(string),
		EtherType:       IPv4,
	}
	var err error
	if v, ok := f["protocol"]; ok {
		if r.Protocol, err = convertProtocol(v); err != nil {
			return nil, err
		}
	}
	if v, ok := f["port_range_min"]; ok {
		if r.PortRangeMin, err = convertPort(v); err != nil {
			return nil, err
		}
	}
	if v, ok := f["port_range_max"]; ok {
		if r.PortRangeMax, err = convertPort(v); err != nil {
			return nil, err
		}
	}
	if v, ok := f["ethertype"]; ok {
		if r.EtherType, err = convertEtherType(v); err != nil {
			return nil, err
		}
	}
	if v, ok := f["remote_ip_prefix"]; ok {
		if r.RemoteIPPrefix, err = convertIPPrefix(v); err != nil {
			return nil, err
		}
	}
	r.RemoteGroupID, _ = f["remote_group_id"].(string)
	r.RemoteAddressGroupID, _ = f["remote_address_group_id"].(string)
	r.Description, _ = f["description"].(string)
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// validate normalises and checks a rule's attributes.
func (r *SecurityGroupRule) validate() error {
	if r.EtherType == IPv6 {
		switch r.Protocol {
		case "icmp", "icmpv6":
			r.Protocol = "ipv6-icmp"
		case "1":
			r.Protocol = "58"
		}
	}
	if r.PortRangeMin != nil && r.PortRangeMax != nil && *r.PortRangeMin == 1 && *r.PortRangeMax == 65535 {
		r.PortRangeMin, r.PortRangeMax = nil, nil
	}
	if err := r.validatePorts(); err != nil {
		return err
	}
	if p := r.RemoteIPPrefix; p.IsValid() && (p.Addr().Is4() != (r.EtherType == IPv4)) {
		return invalid("SecurityGroupRuleParameterConflict", "Conflicting value ethertype %s for CIDR %s", r.EtherType, p)
	}
	if r.EtherType == IPv4 && ipv6OnlyProtocols[r.Protocol] {
		return invalid("SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype %s for protocol %s.", r.EtherType, r.Protocol)
	}
	remotes := 0
	for _, set := range []bool{r.RemoteIPPrefix.IsValid(), r.RemoteGroupID != "", r.RemoteAddressGroupID != ""} {
		if set {
			remotes++
		}
	}
	if remotes > 1 {
		return invalid("SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
	}
	return nil
}

// validatePorts is Neutron's _validate_port_range.
func (r *SecurityGroupRule) validatePorts() error {
	lo, hi := r.PortRangeMin, r.PortRangeMax
	if lo == nil && hi == nil {
		return nil
	}
	if r.Protocol == "" {
		return invalid("SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
	}
	n := protoNumber(r.Protocol)
	switch {
	case portProtocols[n]:
		if lo != nil && *lo == 0 || hi != nil && *hi == 0 {
			return invalid("SecurityGroupInvalidPortValue", "Invalid value for port 0")
		}
		if lo == nil || hi == nil || *lo > *hi {
			return invalid("SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
		}
	case n == ProtoICMP || n == ProtoICMPv6:
		for _, c := range []struct {
			v           *int
			field, attr string
		}{{lo, "type", "port_range_min"}, {hi, "code", "port_range_max"}} {
			if c.v != nil && (*c.v < 0 || *c.v > 255) {
				return invalid("SecurityGroupInvalidIcmpValue", "Invalid value for ICMP %s (%s) %d. It must be 0 to 255.", c.field, c.attr, *c.v)
			}
		}
		if lo == nil && hi != nil {
			return invalid("SecurityGroupMissingIcmpType", "ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", *hi)
		}
	default:
		return invalid("SecurityGroupInvalidProtocolForPort", "Ports cannot be specified for protocol %d. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.", n)
	}
	return nil
}

// DefaultRules are the rules a new group of project starts with, as
// Neutron's default templates: all egress over IPv4 and IPv6, and for a
// default group also all ingress from the group itself.
func DefaultRules(group *SecurityGroup) []*SecurityGroupRule {
	var out []*SecurityGroupRule
	for _, et := range []string{IPv4, IPv6} {
		out = append(out, &SecurityGroupRule{SecurityGroupID: group.ID, Direction: Egress, EtherType: et, BelongsToDefault: group.IsDefault})
	}
	if group.IsDefault {
		for _, et := range []string{IPv4, IPv6} {
			out = append(out, &SecurityGroupRule{SecurityGroupID: group.ID, Direction: Ingress, EtherType: et,
				RemoteGroupID: group.ID, BelongsToDefault: true})
		}
	}
	return out
}

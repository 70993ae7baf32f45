package model

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP/UDP ports; a single port has
// First == Last.
type PortRange struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// Len is how many ports the range holds minus one (Neutron compares these).
func (r PortRange) Len() int { return r.Last - r.First }

// Overlaps reports whether two ranges share a port.
func (r PortRange) Overlaps(o PortRange) bool { return max(r.First, o.First) <= min(r.Last, o.Last) }

// String renders the range as Neutron does: "first:last".
func (r PortRange) String() string { return fmt.Sprintf("%d:%d", r.First, r.Last) }

// Single reports whether the range is one port.
func (r PortRange) Single() bool { return r.First == r.Last }

// PortForwarding forwards (floating IP, protocol, external port[s]) to an
// internal address and port[s] (floating-ip-port-forwarding, with
// floating-ip-port-forwarding-port-ranges and -description).
type PortForwarding struct {
	// Standard holds id, project_id (the floating IP's) and description;
	// port forwardings have no name, tags or timestamps in the API.
	Standard
	FloatingIPID      string     `json:"floatingip_id"`
	Protocol          string     `json:"protocol"`
	InternalPortID    string     `json:"internal_port_id"`
	InternalIPAddress netip.Addr `json:"internal_ip_address"`
	Internal          PortRange  `json:"internal"`
	External          PortRange  `json:"external"`
}

// Port forwarding protocols vland forwards.
var pfProtocols = []string{"tcp", "udp"}

// PortForwardingSpec is the attribute map of port forwardings.
var PortForwardingSpec = &Spec{
	Singular: "port_forwarding",
	Plural:   "port_forwardings",
	Attrs: []*Attr{
		{Name: "id", Parse: ParseUUID},
		{Name: "project_id", Post: true, Parse: ParseString(255)},
		{Name: "tenant_id", Post: true, Parse: ParseString(255)},
		{Name: "description", Post: true, Put: true, Parse: ParseString(1024)},
		{Name: "protocol", Post: true, Put: true, Required: true, Parse: parsePFProtocol},
		{Name: "internal_port_id", Post: true, Put: true, Required: true, Parse: ParseUUID},
		{Name: "internal_ip_address", Post: true, Put: true, Required: true, Parse: parseIPv4},
		{Name: "internal_port", Post: true, Put: true, Parse: parsePortOrNull},
		{Name: "external_port", Post: true, Put: true, Parse: parsePortOrNull},
		{Name: "internal_port_range", Post: true, Put: true, Parse: parsePortRangeOrNull},
		{Name: "external_port_range", Post: true, Put: true, Parse: parsePortRangeOrNull},
	},
}

// parsePFProtocol is convert_to_protocol followed by type:values, limited
// to the protocols vland's data plane forwards by port.
func parsePFProtocol(v any) (any, error) {
	s, ok := v.(string)
	if ok {
		l := strings.ToLower(s)
		if contains(pfProtocols, l) {
			return l, nil
		}
	}
	return nil, reason("'%s' is not in %s", show(v), pyList(pfProtocols))
}

// parseIPv4 accepts an IPv4 address (port forwarding is IPv4 only).
func parseIPv4(v any) (any, error) {
	a, err := ParseIP(v)
	if err != nil {
		return nil, err
	}
	if !a.(netip.Addr).Is4() {
		return nil, reason("'%s' is not a valid IPv4 address", show(v))
	}
	return a, nil
}

// parsePortOrNull is type:range_or_none [1, 65535]; null is PortRange{}.
func parsePortOrNull(v any) (any, error) {
	if v == nil {
		return PortRange{}, nil
	}
	n, err := ParseInt(1, 65535)(v)
	if err != nil {
		return nil, err
	}
	p := int(n.(int64))
	return PortRange{p, p}, nil
}

// parsePortRangeOrNull is neutron-lib's type:port_range [1, 65535]: "N" or
// "N:M" with N <= M; null is PortRange{}.
func parsePortRangeOrNull(v any) (any, error) {
	var s string
	switch t := v.(type) {
	case nil:
		return PortRange{}, nil
	case string:
		s = t
	default:
		s = show(v)
	}
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return nil, reason("Port range must be two integers separated by a colon")
	}
	var ports []int
	for _, p := range parts {
		if p == "" {
			return nil, reason("Port range must be two integers separated by a colon")
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return nil, reason("Invalid port: %s", p)
		}
		if n < 1 {
			return nil, reason("Invalid port: %s, the port must be in the range [1, 65535]", p)
		}
		ports = append(ports, n)
	}
	if len(ports) == 2 && ports[0] > ports[1] {
		return nil, reason("First port in a port range must be lower than the second port")
	}
	return PortRange{ports[0], ports[len(ports)-1]}, nil
}

// View implements Object.
func (p *PortForwarding) View() map[string]any {
	m := map[string]any{
		"id": p.ID, "project_id": p.ProjectID, "tenant_id": p.ProjectID, "description": p.Description,
		"protocol": p.Protocol, "internal_port_id": p.InternalPortID,
		"internal_ip_address": p.InternalIPAddress.String(),
		"internal_port_range": p.Internal.String(), "external_port_range": p.External.String(),
		"internal_port": nil, "external_port": nil,
	}
	if p.Internal.Single() {
		m["internal_port"] = p.Internal.First
	}
	if p.External.Single() {
		m["external_port"] = p.External.First
	}
	return m
}

// PortForwardingHidden are rendered attributes the API does not show
// (project_id is is_visible False in neutron-lib; filters may use it).
var PortForwardingHidden = []string{"project_id", "tenant_id"}

// ApplyPorts sets the forwarding's ports from a request: the single-port
// and range forms are alternatives; giving both for one side is refused.
func (p *PortForwarding) ApplyPorts(f Fields) error {
	for _, side := range []struct {
		single, ranged string
		dst            *PortRange
	}{{"internal_port", "internal_port_range", &p.Internal}, {"external_port", "external_port_range", &p.External}} {
		s, hasS := f[side.single].(PortRange)
		r, hasR := f[side.ranged].(PortRange)
		hasS, hasR = hasS && s.First > 0, hasR && r.First > 0
		switch {
		case hasS && hasR:
			return fmt.Errorf("%s and %s cannot both be given", side.single, side.ranged)
		case hasS:
			*side.dst = s
		case hasR:
			*side.dst = r
		case f.Has(side.single) || f.Has(side.ranged):
			*side.dst = PortRange{}
		}
	}
	return nil
}

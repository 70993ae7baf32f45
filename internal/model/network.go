package model

import (
	"github.com/vland/vland/internal/segments"
)

// Network is an L2 network.
type Network struct {
	Standard
	AdminStateUp        bool               `json:"admin_state_up"`
	Shared              bool               `json:"shared"`
	External            bool               `json:"router:external"`
	MTU                 int                `json:"mtu"`
	Status              string             `json:"status"`
	Subnets             []string           `json:"subnets"`
	Segments            []segments.Segment `json:"segments"`
	PortSecurityEnabled bool               `json:"port_security_enabled"`
	// AZHints are the availability zones the network's DHCP should run in.
	AZHints []string `json:"availability_zone_hints"`
	// DNSDomain is the network's DNS domain (dns_domain), for external DNS.
	DNSDomain string `json:"dns_domain"`
}

// NetworkSpec is the attribute map of networks.
var NetworkSpec = &Spec{
	Singular: "network",
	Plural:   "networks",
	Attrs: append(standardAttrs(),
		&Attr{Name: "admin_state_up", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "shared", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "router:external", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "mtu", Post: true, Put: true, Parse: ParseInt(68, 65535)},
		&Attr{Name: "status"},
		&Attr{Name: "subnets"},
		&Attr{Name: "port_security_enabled", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "provider:network_type", Post: true, AdminOnly: true, Parse: ParseString(255)},
		&Attr{Name: "provider:physical_network", Post: true, AdminOnly: true, Parse: parseStringOrNull},
		&Attr{Name: "provider:segmentation_id", Post: true, AdminOnly: true, Parse: parseIntOrNull(0, segments.MaxVNI)},
		&Attr{Name: "segments", Post: true, AdminOnly: true, Parse: parseSegments},
		&Attr{Name: "availability_zone_hints", Post: true, Parse: parseAZHints},
		&Attr{Name: "availability_zones"},
		&Attr{Name: "dns_domain", Post: true, Put: true, Parse: parseDNSName},
		// address-scope: derived from the pools of the network's subnets.
		&Attr{Name: "ipv4_address_scope"},
		&Attr{Name: "ipv6_address_scope"},
	),
}

func parseStringOrNull(v any) (any, error) {
	if v == nil {
		return "", nil
	}
	return ParseString(255)(v)
}

func parseIntOrNull(min, max int64) func(any) (any, error) {
	p := ParseInt(min, max)
	return func(v any) (any, error) {
		if v == nil {
			return int64(-1), nil
		}
		return p(v)
	}
}

// SegmentRequest is a provider segment as asked for; empty and -1 mean unset.
type SegmentRequest struct {
	NetworkType     string
	PhysicalNetwork string
	SegmentationID  int64
}

func parseSegments(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	var out []SegmentRequest
	for _, it := range list {
		m, err := dictWith(it, nil, "provider:network_type", "provider:physical_network", "provider:segmentation_id")
		if err != nil {
			return nil, err
		}
		sr, err := SegmentFromFields(m)
		if err != nil {
			return nil, err
		}
		out = append(out, sr)
	}
	return out, nil
}

// SegmentFromFields reads the provider:* attributes of a request or of one
// element of its segments list.
func SegmentFromFields(m map[string]any) (SegmentRequest, error) {
	sr := SegmentRequest{SegmentationID: -1}
	if v, ok := m["provider:network_type"]; ok {
		s, err := ParseString(255)(v)
		if err != nil {
			return sr, err
		}
		sr.NetworkType = s.(string)
	}
	if v, ok := m["provider:physical_network"]; ok {
		s, err := parseStringOrNull(v)
		if err != nil {
			return sr, err
		}
		sr.PhysicalNetwork = s.(string)
	}
	if v, ok := m["provider:segmentation_id"]; ok {
		// Fields decoded by NetworkSpec hold an int64 already; a segments
		// element holds the JSON value.
		n, ok := v.(int64)
		if !ok {
			pv, err := parseIntOrNull(0, segments.MaxVNI)(v)
			if err != nil {
				return sr, err
			}
			n = pv.(int64)
		}
		sr.SegmentationID = n
	}
	return sr, nil
}

// Apply sets the attributes of f on n.
func (n *Network) Apply(f Fields) {
	n.ApplyStandard(f)
	if v, ok := f["admin_state_up"]; ok {
		n.AdminStateUp = v.(bool)
	}
	if v, ok := f["shared"]; ok {
		n.Shared = v.(bool)
	}
	if v, ok := f["router:external"]; ok {
		n.External = v.(bool)
	}
	if v, ok := f["mtu"]; ok {
		n.MTU = int(v.(int64))
	}
	if v, ok := f["port_security_enabled"]; ok {
		n.PortSecurityEnabled = v.(bool)
	}
	if v, ok := f["availability_zone_hints"]; ok {
		n.AZHints = v.([]string)
	}
	if v, ok := f["dns_domain"]; ok {
		n.DNSDomain = v.(string)
	}
}

// View implements Object.
func (n *Network) View() map[string]any {
	m := make(map[string]any, 24)
	n.Standard.view(m)
	m["admin_state_up"] = n.AdminStateUp
	m["shared"] = n.Shared
	m["router:external"] = n.External
	m["mtu"] = n.MTU
	m["status"] = n.Status
	subnets := n.Subnets
	if subnets == nil {
		subnets = []string{}
	}
	m["subnets"] = subnets
	m["port_security_enabled"] = n.PortSecurityEnabled
	hints := n.AZHints
	if hints == nil {
		hints = []string{}
	}
	m["availability_zone_hints"] = hints
	m["availability_zones"] = []string{}
	m["dns_domain"] = n.DNSDomain
	// The service fills these in from the subnets' pools when read.
	m["ipv4_address_scope"] = nil
	m["ipv6_address_scope"] = nil
	if len(n.Segments) == 1 {
		s := n.Segments[0]
		m["provider:network_type"] = s.NetworkType
		m["provider:physical_network"] = nullableString(s.PhysicalNetwork)
		m["provider:segmentation_id"] = nullableUint(s.SegmentationID)
	} else if len(n.Segments) > 1 {
		segs := make([]any, len(n.Segments))
		for i, s := range n.Segments {
			segs[i] = map[string]any{
				"provider:network_type":     s.NetworkType,
				"provider:physical_network": nullableString(s.PhysicalNetwork),
				"provider:segmentation_id":  nullableUint(s.SegmentationID),
			}
		}
		m["segments"] = segs
	}
	return m
}

// NetworkAdminOnlyViews are rendered attributes only admins see.
var NetworkAdminOnlyViews = []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id", "segments"}

func nullableString(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func nullableUint(u *uint32) any {
	if u == nil {
		return nil
	}
	return *u
}

// parseAZHints accepts a list of unique zone names, as neutron-lib's
// availability_zone_hint_list (whose stored form is limited to 255 bytes).
func parseAZHints(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	out := make([]string, 0, len(list))
	size := 2
	for _, it := range list {
		s, ok := it.(string)
		if !ok {
			return nil, reason("'%s' is not a valid string", show(it))
		}
		if contains(out, s) {
			return nil, reason("Duplicate items in the list: '%s'", s)
		}
		out = append(out, s)
		size += len(s) + 4
	}
	if size > 255 {
		return nil, reason("Too many availability_zone_hints specified")
	}
	return out, nil
}

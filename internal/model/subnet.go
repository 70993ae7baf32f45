package model

import (
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/vland/vland/internal/ipam"
)

// IPv6 address and RA modes.
const (
	SLAAC           = "slaac"
	DHCPv6Stateful  = "dhcpv6-stateful"
	DHCPv6Stateless = "dhcpv6-stateless"
)

// HostRoute is a static route handed to the subnet's hosts.
type HostRoute struct {
	Destination netip.Prefix `json:"destination"`
	NextHop     netip.Addr   `json:"nexthop"`
}

// Subnet is an IP range on a network.
type Subnet struct {
	Standard
	NetworkID       string       `json:"network_id"`
	IPVersion       int          `json:"ip_version"`
	CIDR            netip.Prefix `json:"cidr"`
	GatewayIP       netip.Addr   `json:"gateway_ip"` // invalid: null
	AllocationPools []ipam.Pool  `json:"allocation_pools"`
	EnableDHCP      bool         `json:"enable_dhcp"`
	DNSNameservers  []netip.Addr `json:"dns_nameservers"`
	HostRoutes      []HostRoute  `json:"host_routes"`
	IPv6RAMode      string       `json:"ipv6_ra_mode"`
	IPv6AddressMode string       `json:"ipv6_address_mode"`
	ServiceTypes    []string     `json:"service_types"`
	// SubnetPoolID is the pool the CIDR was allocated from, if any.
	SubnetPoolID string `json:"subnetpool_id,omitempty"`
}

// ServesOwner reports whether ports of a device owner may take addresses
// from this subnet (subnet-service-types): untyped subnets serve everyone.
func (s *Subnet) ServesOwner(owner string) bool {
	return len(s.ServiceTypes) == 0 || slices.Contains(s.ServiceTypes, owner)
}

// SubnetSpec is the attribute map of subnets.
var SubnetSpec = &Spec{
	Singular: "subnet",
	Plural:   "subnets",
	Attrs: append(standardAttrs(),
		&Attr{Name: "network_id", Post: true, Required: true, Parse: ParseUUID},
		&Attr{Name: "ip_version", Post: true, Required: true, Parse: parseIPVersion},
		// cidr may be left out (or null) when a subnet pool provides it.
		&Attr{Name: "cidr", Post: true, Parse: parseCIDROrNull},
		&Attr{Name: "gateway_ip", Post: true, Put: true, Parse: ParseIPOrNull},
		&Attr{Name: "allocation_pools", Post: true, Put: true, Parse: parsePools},
		&Attr{Name: "enable_dhcp", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "dns_nameservers", Post: true, Put: true, Parse: parseNameservers},
		&Attr{Name: "host_routes", Post: true, Put: true, Parse: parseHostRoutes},
		// neutron-lib: the IPv6 modes are set on create only.
		&Attr{Name: "ipv6_ra_mode", Post: true, Parse: ParseOneOfOrNull(SLAAC, DHCPv6Stateful, DHCPv6Stateless)},
		&Attr{Name: "ipv6_address_mode", Post: true, Parse: ParseOneOfOrNull(SLAAC, DHCPv6Stateful, DHCPv6Stateless)},
		&Attr{Name: "subnetpool_id", Post: true, Parse: ParseUUIDOrNull},
		&Attr{Name: "prefixlen", Post: true, Parse: parseNonNegative},
		&Attr{Name: "use_default_subnetpool", Post: true, Parse: ParseBool},
		&Attr{Name: "service_types", Post: true, Put: true, Parse: parseServiceTypes},
	),
}

func parseIPVersion(v any) (any, error) {
	// As neutron-lib: convert_to_int, then validate_values [4, 6].
	n, err := ParseInt(math.MinInt64, math.MaxInt64)(v)
	if err != nil {
		return nil, err
	}
	if n.(int64) != 4 && n.(int64) != 6 {
		return nil, reason("%d is not in [4, 6]", n.(int64))
	}
	return int(n.(int64)), nil
}

// parseCIDROrNull is type:subnet_or_none; null is the zero (invalid)
// prefix, which reads as not given.
func parseCIDROrNull(v any) (any, error) {
	if v == nil {
		return netip.Prefix{}, nil
	}
	return ParseCIDR(v)
}

func parsePools(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("Invalid data format for IP pool: '%s'", show(v))
	}
	pools := make([]ipam.Pool, 0, len(list))
	for _, it := range list {
		m, err := dictWith(it, []string{"start", "end"})
		if err != nil {
			return nil, reason("Invalid data format for IP pool: '%s'", show(it))
		}
		s, err := ParseIP(m["start"])
		if err != nil {
			return nil, err
		}
		e, err := ParseIP(m["end"])
		if err != nil {
			return nil, err
		}
		pools = append(pools, ipam.Pool{Start: s.(netip.Addr), End: e.(netip.Addr)})
	}
	return pools, nil
}

func parseNameservers(v any) (any, error) {
	if v == nil { // neutron-lib's convert_none_to_empty_list
		return []netip.Addr{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason("Invalid data format for nameserver: '%s'", show(v))
	}
	out := make([]netip.Addr, 0, len(list))
	seen := map[netip.Addr]bool{}
	for _, it := range list {
		a, err := ParseIP(it)
		if err != nil {
			return nil, reason("'%s' is not a valid nameserver. '%s' is not a valid IP address", show(it), show(it))
		}
		if seen[a.(netip.Addr)] {
			return nil, reason("Duplicate nameserver '%s'", show(it))
		}
		seen[a.(netip.Addr)] = true
		out = append(out, a.(netip.Addr))
	}
	return out, nil
}

func parseHostRoutes(v any) (any, error) {
	if v == nil { // neutron-lib's convert_none_to_empty_list
		return []HostRoute{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason("Invalid data format for hostroute: '%s'", show(v))
	}
	out := make([]HostRoute, 0, len(list))
	seen := map[HostRoute]bool{}
	for _, it := range list {
		m, err := dictWith(it, []string{"destination", "nexthop"})
		if err != nil {
			return nil, reason("Invalid data format for hostroute: '%s'", show(it))
		}
		d, err := ParseCIDR(m["destination"])
		if err != nil {
			return nil, err
		}
		nh, err := ParseIP(m["nexthop"])
		if err != nil {
			return nil, err
		}
		r := HostRoute{Destination: d.(netip.Prefix), NextHop: nh.(netip.Addr)}
		if seen[r] {
			return nil, reason("Duplicate hostroute '%s'", show(it))
		}
		seen[r] = true
		out = append(out, r)
	}
	return out, nil
}

// View implements Object.
func (s *Subnet) View() map[string]any {
	m := make(map[string]any, 24)
	s.Standard.view(m)
	m["network_id"] = s.NetworkID
	m["ip_version"] = s.IPVersion
	m["cidr"] = s.CIDR.String()
	m["gateway_ip"] = addrOrNull(s.GatewayIP)
	pools := make([]any, len(s.AllocationPools))
	for i, p := range s.AllocationPools {
		pools[i] = map[string]any{"start": p.Start.String(), "end": p.End.String()}
	}
	m["allocation_pools"] = pools
	m["enable_dhcp"] = s.EnableDHCP
	ns := make([]any, len(s.DNSNameservers))
	for i, a := range s.DNSNameservers {
		ns[i] = a.String()
	}
	m["dns_nameservers"] = ns
	routes := make([]any, len(s.HostRoutes))
	for i, r := range s.HostRoutes {
		routes[i] = map[string]any{"destination": r.Destination.String(), "nexthop": r.NextHop.String()}
	}
	m["host_routes"] = routes
	m["ipv6_ra_mode"] = stringOrNull(s.IPv6RAMode)
	m["ipv6_address_mode"] = stringOrNull(s.IPv6AddressMode)
	m["subnetpool_id"] = stringOrNull(s.SubnetPoolID)
	st := s.ServiceTypes
	if st == nil {
		st = []string{}
	}
	m["service_types"] = st
	return m
}

// AutoAddress reports whether ports get their address in this subnet from
// SLAAC (or stateless DHCPv6) rather than from the allocation pools.
func (s *Subnet) AutoAddress() bool {
	return s.IPVersion == 6 && (s.IPv6AddressMode == SLAAC || s.IPv6AddressMode == DHCPv6Stateless)
}

func addrOrNull(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a.String()
}

func stringOrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// parseServiceTypes accepts device owners as neutron-lib's
// validate_subnet_service_types: strings with a network:, neutron: or
// compute: prefix.
func parseServiceTypes(v any) (any, error) {
	if v == nil {
		return []string{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason("Subnet service types must be a list.")
	}
	out := make([]string, 0, len(list))
	for _, it := range list {
		st, ok := it.(string)
		if !ok {
			return nil, reason("Subnet service type %s is not a string.", show(it))
		}
		if !strings.HasPrefix(st, "network:") && !strings.HasPrefix(st, "neutron:") && !strings.HasPrefix(st, "compute:") {
			return nil, reason("Subnet service type %s does not correspond to a valid device owner.", st)
		}
		if !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	return out, nil
}

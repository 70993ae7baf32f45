package model

import (
	"net/netip"
	"slices"
	"strings"
)

// AddressGroup is a named set of CIDRs security group rules refer to as
// their remote (address-group, security-groups-remote-address-group).
type AddressGroup struct {
	// Standard holds id, project, name, description and the timestamps;
	// address groups have no tags.
	Standard
	// Addresses are normalised (host bits cleared), unique and sorted.
	Addresses []netip.Prefix `json:"addresses"`
}

// AddressGroupSpec is the attribute map of address groups.
var AddressGroupSpec = &Spec{
	Singular: "address_group",
	Plural:   "address_groups",
	Attrs: []*Attr{
		{Name: "id", Parse: ParseUUID},
		{Name: "name", Post: true, Put: true, Parse: ParseString(255)},
		{Name: "description", Post: true, Put: true, Parse: ParseString(1024)},
		{Name: "project_id", Post: true, Parse: ParseString(255)},
		{Name: "tenant_id", Post: true, Parse: ParseString(255)},
		{Name: "created_at"},
		{Name: "updated_at"},
		{Name: "revision_number"},
		{Name: "addresses", Post: true, Parse: ParseSubnetList},
	},
}

// View implements Object.
func (a *AddressGroup) View() map[string]any {
	m := make(map[string]any, 10)
	a.Standard.view(m)
	delete(m, "tags")
	addrs := make([]string, len(a.Addresses))
	for i, p := range a.Addresses {
		addrs[i] = p.String()
	}
	m["addresses"] = addrs
	return m
}

// ParseSubnetList is neutron-lib's type:subnet_list with null as an empty
// list: unique CIDRs ("10.0.0.1/24" is accepted as Neutron's validator
// does and means 10.0.0.0/24). It returns []netip.Prefix, normalised, in
// the order given.
func ParseSubnetList(v any) (any, error) {
	if v == nil {
		return []netip.Prefix{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	seen := map[string]bool{}
	var dups []string
	for _, it := range list {
		s := show(it)
		if seen[s] && !slices.Contains(dups, s) {
			dups = append(dups, s)
		}
		seen[s] = true
	}
	if len(dups) > 0 {
		return nil, reason("Duplicate items in the list: '%s'", strings.Join(dups, ", "))
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, it := range list {
		s, ok := it.(string)
		if !ok {
			return nil, reason("'%s' is not a valid IP subnet", show(it))
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			return nil, reason("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, netip.PrefixFrom(a, a.BitLen()))
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, reason("'%s' is not a valid IP subnet", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// SortPrefixes sorts prefixes and removes duplicates.
func SortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}

package model

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vland/vland/internal/apierr"
)

// SubnetPool is a set of prefixes subnets are allocated from
// (subnet_allocation), optionally in an address scope.
type SubnetPool struct {
	Standard
	IPVersion        int            `json:"ip_version"`
	Prefixes         []netip.Prefix `json:"prefixes"`
	DefaultPrefixLen int            `json:"default_prefixlen"`
	MinPrefixLen     int            `json:"min_prefixlen"`
	MaxPrefixLen     int            `json:"max_prefixlen"`
	// DefaultQuota bounds the address space one project may take from the
	// pool (in /32s for IPv4, /64s for IPv6); nil or 0: unbounded.
	DefaultQuota   *int   `json:"default_quota"`
	IsDefault      bool   `json:"is_default"`
	Shared         bool   `json:"shared"` // a wildcard access_as_shared policy exists
	AddressScopeID string `json:"address_scope_id,omitempty"`
}

// SubnetPoolSpec is the attribute map of subnet pools.
var SubnetPoolSpec = &Spec{
	Singular: "subnetpool",
	Plural:   "subnetpools",
	Attrs: append(withName(standardAttrs(), &Attr{Name: "name", Post: true, Put: true, Required: true, Parse: parseNotEmptyString(255)}),
		&Attr{Name: "prefixes", Post: true, Put: true, Required: true, Parse: ParsePrefixList},
		&Attr{Name: "default_quota", Post: true, Put: true, Parse: parseNonNegative},
		&Attr{Name: "ip_version"},
		&Attr{Name: "default_prefixlen", Post: true, Put: true, Parse: parseNonNegative},
		&Attr{Name: "min_prefixlen", Post: true, Put: true, Parse: parseNonNegative},
		&Attr{Name: "max_prefixlen", Post: true, Put: true, Parse: parseNonNegative},
		&Attr{Name: "is_default", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "shared", Post: true, Parse: ParseBool},
		&Attr{Name: "address_scope_id", Post: true, Put: true, Parse: ParseUUIDOrNull},
	),
}

// withName replaces the standard name attribute.
func withName(attrs []*Attr, name *Attr) []*Attr {
	for i, a := range attrs {
		if a.Name == "name" {
			attrs[i] = name
		}
	}
	return attrs
}

// parseNotEmptyString is neutron-lib's type:not_empty_string.
func parseNotEmptyString(max int) func(any) (any, error) {
	p := ParseString(max)
	return func(v any) (any, error) {
		s, err := p(v)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(s.(string)) == "" {
			return nil, reason("'%s' Blank strings are not permitted", s)
		}
		return s, nil
	}
}

// parseNonNegative is convert_to_int with type:non_negative.
func parseNonNegative(v any) (any, error) {
	n, err := ParseInt(math.MinInt64, math.MaxInt32)(v)
	if err != nil {
		return nil, err
	}
	if n.(int64) < 0 {
		return nil, reason("'%d' should be non-negative", n.(int64))
	}
	return int(n.(int64)), nil
}

// ParsePrefixList is neutron-lib's type:subnet_list: a list of distinct
// CIDRs.
func ParsePrefixList(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	seen := map[string]bool{}
	for _, it := range list {
		if s, ok := it.(string); ok {
			if seen[s] {
				return nil, reason("Duplicate items in the list: '%s'", s)
			}
			seen[s] = true
		}
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, it := range list {
		p, err := ParseCIDR(it)
		if err != nil {
			return nil, err
		}
		out = append(out, p.(netip.Prefix))
	}
	return out, nil
}

// Subnet pool prefix length defaults and quota units by IP version, as
// Neutron's SubnetPoolHelper.
func poolMaxPrefixLen(v int) int {
	if v == 6 {
		return 128
	}
	return 32
}

func poolDefaultMinPrefixLen(v int) int {
	if v == 6 {
		return 64
	}
	return 8
}

// QuotaUnits is what a prefix of length bits costs against a pool's
// default_quota: its size in /32s (IPv4) or /64s (IPv6).
func QuotaUnits(ipVersion, bits int) float64 {
	unit := 32
	if ipVersion == 6 {
		unit = 64
	}
	return math.Pow(2, float64(unit-bits))
}

// Apply sets the attributes of a create (create=true, on a zero pool) or an
// update request and validates the result as Neutron's SubnetPoolReader:
// prefixes of one version, compacted; prefix length bounds defaulted and
// consistent. The ownership and uniqueness rules live in the service.
func (p *SubnetPool) Apply(f Fields, create bool) error {
	p.ApplyStandard(f)
	prefixes := p.Prefixes
	if v, ok := f["prefixes"]; ok {
		prefixes = v.([]netip.Prefix)
		if !create && len(SubtractPrefixes(p.Prefixes, prefixes)) > 0 {
			return apierr.New(400, "IllegalSubnetPoolPrefixUpdate", "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.")
		}
	}
	if len(prefixes) == 0 {
		return apierr.New(400, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.")
	}
	version := 4
	if prefixes[0].Addr().Is6() {
		version = 6
	}
	for _, x := range prefixes[1:] {
		if x.Addr().Is6() != (version == 6) {
			return apierr.New(400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
		}
	}
	p.IPVersion = version
	p.Prefixes = CompactPrefixes(prefixes)
	if v, ok := f["default_quota"]; ok {
		q := v.(int)
		p.DefaultQuota = &q
	}
	if create {
		p.MinPrefixLen = poolDefaultMinPrefixLen(version)
		p.MaxPrefixLen = poolMaxPrefixLen(version)
	}
	if v, ok := f["min_prefixlen"]; ok {
		p.MinPrefixLen = v.(int)
	}
	if v, ok := f["max_prefixlen"]; ok {
		p.MaxPrefixLen = v.(int)
	}
	if v, ok := f["default_prefixlen"]; ok {
		p.DefaultPrefixLen = v.(int)
	} else if create {
		p.DefaultPrefixLen = p.MinPrefixLen
	}
	bounds := func(typ string, n int, base string, baseN int) error {
		return apierr.New(400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: %s=%d, %s=%d.", typ, n, base, baseN)
	}
	switch max := poolMaxPrefixLen(version); {
	case p.MinPrefixLen > p.MaxPrefixLen:
		return bounds("min_prefixlen", p.MinPrefixLen, "max_prefixlen", p.MaxPrefixLen)
	case p.MaxPrefixLen > max:
		return bounds("max_prefixlen", p.MaxPrefixLen, "ip_version_max", max)
	case p.DefaultPrefixLen < p.MinPrefixLen:
		return bounds("default_prefixlen", p.DefaultPrefixLen, "min_prefixlen", p.MinPrefixLen)
	case p.DefaultPrefixLen > p.MaxPrefixLen:
		return bounds("default_prefixlen", p.DefaultPrefixLen, "max_prefixlen", p.MaxPrefixLen)
	}
	if v, ok := f["is_default"]; ok {
		p.IsDefault = v.(bool)
	}
	if v, ok := f["shared"]; ok && create {
		p.Shared = v.(bool)
	}
	if v, ok := f["address_scope_id"]; ok {
		p.AddressScopeID = v.(string)
	}
	return nil
}

// View implements Object. Prefix lengths are strings, as Neutron renders
// them.
func (p *SubnetPool) View() map[string]any {
	m := make(map[string]any, 20)
	p.Standard.view(m)
	prefixes := make([]string, len(p.Prefixes))
	for i, x := range p.Prefixes {
		prefixes[i] = x.String()
	}
	m["prefixes"] = prefixes
	if p.DefaultQuota != nil {
		m["default_quota"] = *p.DefaultQuota
	} else {
		m["default_quota"] = nil
	}
	m["ip_version"] = p.IPVersion
	m["default_prefixlen"] = strconv.Itoa(p.DefaultPrefixLen)
	m["min_prefixlen"] = strconv.Itoa(p.MinPrefixLen)
	m["max_prefixlen"] = strconv.Itoa(p.MaxPrefixLen)
	m["is_default"] = p.IsDefault
	m["shared"] = p.Shared
	m["address_scope_id"] = stringOrNull(p.AddressScopeID)
	return m
}

// Prefix sets. A set is a list of prefixes; the functions below treat it as
// the union of its addresses, as netaddr's IPSet does, working on address
// ranges so that pools with many allocations stay cheap.

// u128 is an address as a number (IPv4 addresses use the low 32 bits).
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi || a.hi == b.hi && a.lo < b.lo:
		return -1
	case a == b:
		return 0
	}
	return 1
}

func (a u128) add(b u128) (u128, bool) {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, c := bits.Add64(a.hi, b.hi, c)
	return u128{hi, lo}, c != 0
}

func (a u128) sub(b u128) u128 {
	lo, c := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, c)
	return u128{hi, lo}
}

func (a u128) or(b u128) u128 { return u128{a.hi | b.hi, a.lo | b.lo} }

// tz counts trailing zero bits (128 for zero).
func (a u128) tz() int {
	if a.lo != 0 {
		return bits.TrailingZeros64(a.lo)
	}
	return 64 + bits.TrailingZeros64(a.hi)
}

// ones is 2^k - 1.
func ones(k int) u128 {
	switch {
	case k <= 0:
		return u128{}
	case k < 64:
		return u128{0, 1<<k - 1}
	case k == 64:
		return u128{0, ^uint64(0)}
	case k < 128:
		return u128{1<<(k-64) - 1, ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func addrNum(a netip.Addr) u128 {
	b := a.As16()
	if a.Is4() {
		return u128{0, uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])}
	}
	var n u128
	for i := 0; i < 8; i++ {
		n.hi = n.hi<<8 | uint64(b[i])
		n.lo = n.lo<<8 | uint64(b[8+i])
	}
	return n
}

func numAddr(n u128, is4 bool) netip.Addr {
	if is4 {
		return netip.AddrFrom4([4]byte{byte(n.lo >> 24), byte(n.lo >> 16), byte(n.lo >> 8), byte(n.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[7-i] = byte(n.hi >> (8 * i))
		b[15-i] = byte(n.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// span is an inclusive range of addresses of one family.
type span struct{ first, last u128 }

// spans turns prefixes of one family into sorted, merged ranges.
func spans(ps []netip.Prefix, is4 bool) []span {
	var out []span
	for _, p := range ps {
		if p.Addr().Is4() != is4 {
			continue
		}
		first := addrNum(p.Masked().Addr())
		out = append(out, span{first, first.or(ones(p.Addr().BitLen() - p.Bits()))})
	}
	slices.SortFunc(out, func(a, b span) int { return a.first.cmp(b.first) })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 {
			next, wrap := merged[n-1].last.add(u128{0, 1})
			if wrap || s.first.cmp(next) <= 0 {
				if s.last.cmp(merged[n-1].last) > 0 {
					merged[n-1].last = s.last
				}
				continue
			}
		}
		merged = append(merged, s)
	}
	return merged
}

// prefixesOf turns ranges back into the fewest prefixes, by address.
func prefixesOf(ss []span, is4 bool) []netip.Prefix {
	bitLen := 128
	if is4 {
		bitLen = 32
	}
	var out []netip.Prefix
	for _, s := range ss {
		first := s.first
		for first.cmp(s.last) <= 0 {
			k := min(first.tz(), bitLen)
			for k > 0 && s.last.sub(first).cmp(ones(k)) < 0 {
				k--
			}
			out = append(out, netip.PrefixFrom(numAddr(first, is4), bitLen-k))
			// first is aligned on 2^k, so its block ends at first | (2^k - 1).
			end := first.or(ones(k))
			if end.cmp(s.last) >= 0 {
				break
			}
			first, _ = end.add(u128{0, 1})
		}
	}
	return out
}

// CompactPrefixes returns the smallest list of prefixes covering exactly
// the addresses of ps, IPv4 first, by address.
func CompactPrefixes(ps []netip.Prefix) []netip.Prefix {
	return append(prefixesOf(spans(ps, true), true), prefixesOf(spans(ps, false), false)...)
}

// SubtractPrefixes returns the addresses of a not in b, compacted.
func SubtractPrefixes(a, b []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, is4 := range []bool{true, false} {
		as, bs := spans(a, is4), spans(b, is4)
		var rest []span
		j := 0
		for _, s := range as {
			cur := s
			live := true
			for j < len(bs) && bs[j].last.cmp(cur.first) < 0 {
				j++
			}
			for k := j; k < len(bs) && bs[k].first.cmp(cur.last) <= 0; k++ {
				if bs[k].first.cmp(cur.first) > 0 {
					rest = append(rest, span{cur.first, bs[k].first.sub(u128{0, 1})})
				}
				if bs[k].last.cmp(cur.last) >= 0 {
					live = false
					break
				}
				cur.first, _ = bs[k].last.add(u128{0, 1})
			}
			if live {
				rest = append(rest, cur)
			}
		}
		out = append(out, prefixesOf(rest, is4)...)
	}
	return out
}

// PrefixesOverlap reports whether the sets a and b share an address.
func PrefixesOverlap(a, b []netip.Prefix) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Addr().Is4() == y.Addr().Is4() && x.Overlaps(y) {
				return true
			}
		}
	}
	return false
}

// AvailableBlocks returns the free blocks of a pool given its allocations,
// smallest blocks first (longest prefix first, then by address), the order
// Neutron's allocator tries them in.
func AvailableBlocks(prefixes, allocated []netip.Prefix) []netip.Prefix {
	free := SubtractPrefixes(prefixes, allocated)
	slices.SortStableFunc(free, func(a, b netip.Prefix) int { return b.Bits() - a.Bits() })
	return free
}

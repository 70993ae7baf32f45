package secgroup

import (
	"net/netip"
	"slices"
)

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ lo, hi netip.Addr }

// mergeRanges turns prefixes of one family (others are ignored) into
// sorted, disjoint, non-adjacent ranges: the form an interval set needs,
// whose elements may not overlap.
func mergeRanges(prefixes []netip.Prefix, v6 bool) []addrRange {
	var rs []addrRange
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		if p.Addr().Is6() != v6 {
			continue
		}
		p = p.Masked()
		rs = append(rs, addrRange{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			// Overlapping or adjacent: extend the previous range.
			if last.hi == maxAddr(v6) || r.lo.Compare(last.hi.Next()) <= 0 {
				if r.hi.Compare(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// lastAddr is the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// maxAddr is 255.255.255.255 or ffff:...:ffff.
func maxAddr(v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff})
}

// rangePrefix returns the prefix that is exactly [lo, hi], if there is one.
func rangePrefix(lo, hi netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= lo.BitLen(); bits++ {
		p := netip.PrefixFrom(lo, bits)
		if p.Masked().Addr() == lo && lastAddr(p) == hi {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// containsAddr reports whether a is in one of the sorted, disjoint ranges.
func containsAddr(rs []addrRange, a netip.Addr) bool {
	_, found := slices.BinarySearchFunc(rs, a, func(r addrRange, a netip.Addr) int {
		switch {
		case r.hi.Less(a):
			return -1
		case a.Less(r.lo):
			return 1
		}
		return 0
	})
	return found
}

// Package ipam is the address arithmetic behind subnets and ports: default
// and validated allocation pools, candidate selection, and EUI-64 addresses.
// It decides which address to try; the service layer makes the choice
// stick with an etcd transaction.
package ipam

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
)

// Pool is an inclusive range of addresses inside a subnet.
type Pool struct {
	Start netip.Addr `json:"start"`
	End   netip.Addr `json:"end"`
}

func (p Pool) String() string { return p.Start.String() + "-" + p.End.String() }

// Contains reports whether a is inside the pool.
func (p Pool) Contains(a netip.Addr) bool {
	return a.BitLen() == p.Start.BitLen() && p.Start.Compare(a) <= 0 && a.Compare(p.End) <= 0
}

// lastAddr returns the highest address of a prefix.
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

// DefaultGateway is the address Neutron picks when gateway_ip is not given:
// the first host address of the subnet.
func DefaultGateway(p netip.Prefix) netip.Addr {
	return p.Masked().Addr().Next()
}

// DefaultPools returns Neutron's default allocation pools: every address but
// the subnet's own (and, in IPv4, its broadcast) address and the gateway.
func DefaultPools(p netip.Prefix, gateway netip.Addr) []Pool {
	first, last := p.Masked().Addr(), lastAddr(p)
	if first == last {
		return []Pool{{first, last}}
	}
	start := first.Next()
	end := last
	if p.Addr().Is4() {
		end = last.Prev()
	}
	if start.Compare(end) >= 0 {
		return nil
	}
	pools := []Pool{{start, end}}
	if gateway.IsValid() {
		pools = subtract(pools, gateway)
	}
	return pools
}

func subtract(pools []Pool, a netip.Addr) []Pool {
	var out []Pool
	for _, p := range pools {
		if !p.Contains(a) {
			out = append(out, p)
			continue
		}
		if p.Start.Compare(a) < 0 {
			out = append(out, Pool{p.Start, a.Prev()})
		}
		if a.Compare(p.End) < 0 {
			out = append(out, Pool{a.Next(), p.End})
		}
	}
	return out
}

// PoolError says what is wrong with allocation pools, in Neutron's terms.
type PoolError struct {
	Kind    string // InvalidAllocationPool, OutOfBoundsAllocationPool, OverlappingAllocationPools, GatewayConflictWithAllocationPools
	Message string
}

func (e *PoolError) Error() string { return e.Message }

// ValidatePools checks pools as Neutron does: well-formed, inside the
// subnet, clear of its network and broadcast addresses, not overlapping,
// and not holding the gateway.
func ValidatePools(p netip.Prefix, pools []Pool, gateway netip.Addr) error {
	first, last := p.Masked().Addr(), lastAddr(p)
	for _, pool := range pools {
		if !pool.Start.IsValid() || !pool.End.IsValid() || pool.Start.BitLen() != first.BitLen() ||
			pool.End.BitLen() != first.BitLen() || pool.Start.Compare(pool.End) > 0 {
			return &PoolError{"InvalidAllocationPool", fmt.Sprintf("The allocation pool %s is not valid.", pool)}
		}
		if !p.Contains(pool.Start) || !p.Contains(pool.End) {
			return &PoolError{"OutOfBoundsAllocationPool", fmt.Sprintf("The allocation pool %s spans beyond the subnet cidr %s.", pool, p.Masked())}
		}
		// Neutron bounds pools by the first host address and, in IPv4, the
		// last one: the network and broadcast addresses are out of bounds.
		if p.Bits() < p.Addr().BitLen()-1 && (pool.Start == first || p.Addr().Is4() && pool.End == last) {
			return &PoolError{"OutOfBoundsAllocationPool", fmt.Sprintf("The allocation pool %s spans beyond the subnet cidr %s.", pool, p.Masked())}
		}
	}
	sorted := slices.Clone(pools)
	slices.SortFunc(sorted, func(a, b Pool) int { return a.Start.Compare(b.Start) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Start.Compare(sorted[i-1].End) <= 0 {
			return &PoolError{"OverlappingAllocationPools", fmt.Sprintf(
				"Found overlapping allocation pools: %s %s for subnet %s.", sorted[i-1], sorted[i], p.Masked())}
		}
	}
	if gateway.IsValid() {
		for _, pool := range pools {
			if pool.Contains(gateway) {
				return &PoolError{"GatewayConflictWithAllocationPools", fmt.Sprintf(
					"Gateway ip %s conflicts with allocation pool %s.", gateway, pool)}
			}
		}
	}
	return nil
}

// InPools reports whether a lies in one of pools.
func InPools(pools []Pool, a netip.Addr) bool {
	for _, p := range pools {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Window is how many free addresses Pick chooses among. Choosing at random
// among the first free ones keeps addresses low and dense while concurrent
// allocators rarely pick the same one and collide in their transactions.
const Window = 16

// Pick chooses a free address from pools, at random among the first Window
// free ones in pool order; ok is false when every address is used.
func Pick(pools []Pool, used func(netip.Addr) bool) (netip.Addr, bool) {
	var cands []netip.Addr
	for _, p := range pools {
		for a := p.Start; a.IsValid() && a.Compare(p.End) <= 0; a = a.Next() {
			if !used(a) {
				cands = append(cands, a)
				if len(cands) == Window {
					return cands[rand.IntN(len(cands))], true
				}
			}
		}
	}
	if len(cands) == 0 {
		return netip.Addr{}, false
	}
	return cands[rand.IntN(len(cands))], true
}

// Size counts the addresses in pools, saturating at the largest uint64.
func Size(pools []Pool) uint64 {
	var total uint64
	for _, p := range pools {
		n := span(p.Start, p.End)
		if total+n < total {
			return ^uint64(0)
		}
		total += n
	}
	return total
}

// span returns end-start+1, saturating.
func span(start, end netip.Addr) uint64 {
	s, e := start.As16(), end.As16()
	var hi, lo [2]uint64
	for i := 0; i < 8; i++ {
		hi[0] = hi[0]<<8 | uint64(s[i])
		hi[1] = hi[1]<<8 | uint64(e[i])
		lo[0] = lo[0]<<8 | uint64(s[8+i])
		lo[1] = lo[1]<<8 | uint64(e[8+i])
	}
	dhi := hi[1] - hi[0]
	dlo := lo[1] - lo[0]
	if lo[1] < lo[0] {
		dhi--
	}
	if dhi != 0 || dlo == ^uint64(0) {
		return ^uint64(0)
	}
	return dlo + 1
}

// EUI64 derives the SLAAC address of mac in a /64 prefix (RFC 4291 App. A).
func EUI64(p netip.Prefix, mac net.HardwareAddr) (netip.Addr, error) {
	if !p.Addr().Is6() || p.Bits() > 64 {
		return netip.Addr{}, fmt.Errorf("prefix %s is not an IPv6 prefix of /64 or shorter", p)
	}
	if len(mac) != 6 {
		return netip.Addr{}, fmt.Errorf("MAC %s is not 48 bits", mac)
	}
	b := p.Masked().Addr().As16()
	b[8] = mac[0] ^ 0x02
	b[9], b[10] = mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b), nil
}

// IsNetworkOrBroadcast reports whether a is the subnet's own address or,
// in IPv4, its broadcast address; neither may be a port's fixed IP.
func IsNetworkOrBroadcast(p netip.Prefix, a netip.Addr) bool {
	if p.Bits() >= p.Addr().BitLen()-1 {
		return false
	}
	if a == p.Masked().Addr() {
		return true
	}
	return p.Addr().Is4() && a == lastAddr(p)
}

// PickFirst returns the lowest free address of pools (Neutron gives DHCP
// ports the first free address, so they sit at a predictable place).
func PickFirst(pools []Pool, used func(netip.Addr) bool) (netip.Addr, bool) {
	for _, p := range pools {
		for a := p.Start; a.IsValid() && a.Compare(p.End) <= 0; a = a.Next() {
			if !used(a) {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

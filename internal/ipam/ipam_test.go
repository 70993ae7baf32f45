package ipam

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func pool(start, end string) Pool { return Pool{addr(start), addr(end)} }

func TestPoolStringAndContains(t *testing.T) {
	t.Parallel()
	p := pool("10.0.0.2", "10.0.0.9")
	if got := p.String(); got != "10.0.0.2-10.0.0.9" {
		t.Errorf("String() = %q", got)
	}
	tests := []struct {
		a    string
		want bool
	}{
		{"10.0.0.1", false},
		{"10.0.0.2", true},
		{"10.0.0.5", true},
		{"10.0.0.9", true},
		{"10.0.0.10", false},
		{"::ffff:10.0.0.5", false}, // different bit length
		{"2001:db8::5", false},
	}
	for _, tc := range tests {
		if got := p.Contains(addr(tc.a)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.a, got, tc.want)
		}
	}
	if p.Contains(netip.Addr{}) {
		t.Error("Contains(invalid) = true")
	}
}

func TestLastAddr(t *testing.T) {
	t.Parallel()
	tests := []struct{ p, want string }{
		{"10.0.0.0/24", "10.0.0.255"},
		{"10.0.0.77/24", "10.0.0.255"},
		{"10.0.0.0/23", "10.0.1.255"},
		{"10.0.0.0/25", "10.0.0.127"},
		{"10.0.0.4/30", "10.0.0.7"},
		{"10.0.0.4/32", "10.0.0.4"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff"},
		{"2001:db8::/127", "2001:db8::1"},
		{"2001:db8::/61", "2001:db8:0:7:ffff:ffff:ffff:ffff"},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tc := range tests {
		if got := lastAddr(pfx(tc.p)); got != addr(tc.want) {
			t.Errorf("lastAddr(%s) = %s, want %s", tc.p, got, tc.want)
		}
	}
}

func TestDefaultGateway(t *testing.T) {
	t.Parallel()
	tests := []struct{ p, want string }{
		{"10.0.0.0/24", "10.0.0.1"},
		{"10.0.0.200/24", "10.0.0.1"}, // host bits ignored
		{"192.168.4.0/22", "192.168.4.1"},
		{"2001:db8::/64", "2001:db8::1"},
		{"10.0.0.4/30", "10.0.0.5"},
	}
	for _, tc := range tests {
		if got := DefaultGateway(pfx(tc.p)); got != addr(tc.want) {
			t.Errorf("DefaultGateway(%s) = %s, want %s", tc.p, got, tc.want)
		}
	}
}

func TestDefaultPools(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cidr    string
		gateway string
		want    []Pool
	}{
		{"v4 /24 gw first", "10.0.0.0/24", "10.0.0.1", []Pool{pool("10.0.0.2", "10.0.0.254")}},
		{"v4 /24 gw middle", "10.0.0.0/24", "10.0.0.100", []Pool{pool("10.0.0.1", "10.0.0.99"), pool("10.0.0.101", "10.0.0.254")}},
		{"v4 /24 gw last host", "10.0.0.0/24", "10.0.0.254", []Pool{pool("10.0.0.1", "10.0.0.253")}},
		{"v4 /24 no gw", "10.0.0.0/24", "", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"v4 /24 gw outside", "10.0.0.0/24", "10.0.1.1", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"v4 /24 gw is network addr", "10.0.0.0/24", "10.0.0.0", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"v4 /24 gw is broadcast", "10.0.0.0/24", "10.0.0.255", []Pool{pool("10.0.0.1", "10.0.0.254")}},
		{"v4 /24 host bits in cidr", "10.0.0.9/24", "10.0.0.1", []Pool{pool("10.0.0.2", "10.0.0.254")}},
		{"v4 /30 gw first", "10.0.0.4/30", "10.0.0.5", []Pool{pool("10.0.0.6", "10.0.0.6")}},
		{"v4 /30 gw second", "10.0.0.4/30", "10.0.0.6", []Pool{pool("10.0.0.5", "10.0.0.5")}},
		{"v4 /30 no gw", "10.0.0.4/30", "", []Pool{pool("10.0.0.5", "10.0.0.6")}},
		{"v4 /31", "10.0.0.4/31", "", nil},
		{"v4 /31 gw", "10.0.0.4/31", "10.0.0.4", nil},
		{"v4 /32", "10.0.0.4/32", "", []Pool{pool("10.0.0.4", "10.0.0.4")}},
		// As Neutron's generate_pools: a single-address subnet's pool is
		// that address, gateway or not (ValidatePools then refuses it).
		{"v4 /32 gw", "10.0.0.4/32", "10.0.0.4", []Pool{pool("10.0.0.4", "10.0.0.4")}},
		{"v6 /64 gw first", "2001:db8::/64", "2001:db8::1", []Pool{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")}},
		{"v6 /64 gw last", "2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:fffe")}},
		{"v6 /64 gw middle", "2001:db8::/64", "2001:db8::1:0:0:0", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff"), pool("2001:db8::1:0:0:1", "2001:db8::ffff:ffff:ffff:ffff")}},
		{"v6 /64 no gw", "2001:db8::/64", "", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")}},
		{"v6 /126", "2001:db8::/126", "2001:db8::1", []Pool{pool("2001:db8::2", "2001:db8::3")}},
		{"v6 /127", "2001:db8::/127", "", nil},
		{"v6 /128", "2001:db8::5/128", "", []Pool{pool("2001:db8::5", "2001:db8::5")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := DefaultPools(pfx(tc.cidr), addr(tc.gateway))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("DefaultPools(%s, %q) = %v, want %v", tc.cidr, tc.gateway, got, tc.want)
			}
			// Default pools must validate against the subnet they were
			// generated for, but for a gateway that is a /32's only address.
			if pfx(tc.cidr).Bits() == 32 && tc.gateway != "" {
				return
			}
			if err := ValidatePools(pfx(tc.cidr).Masked(), got, addr(tc.gateway)); err != nil {
				t.Errorf("ValidatePools(DefaultPools) = %v", err)
			}
		})
	}
}

func TestValidatePools(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cidr    string
		pools   []Pool
		gateway string
		kind    string // "" for no error
		msg     string // checked when not ""
	}{
		{"ok single", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.0.254")}, "10.0.0.1", "", ""},
		{"ok full range", "10.0.0.0/24", []Pool{pool("10.0.0.1", "10.0.0.254")}, "", "", ""},
		{"ok two pools around gw", "10.0.0.0/24", []Pool{pool("10.0.0.1", "10.0.0.99"), pool("10.0.0.101", "10.0.0.254")}, "10.0.0.100", "", ""},
		{"ok adjacent pools", "10.0.0.0/24", []Pool{pool("10.0.0.10", "10.0.0.19"), pool("10.0.0.20", "10.0.0.29")}, "10.0.0.1", "", ""},
		{"ok empty", "10.0.0.0/24", nil, "10.0.0.1", "", ""},
		{"ok single address", "10.0.0.0/24", []Pool{pool("10.0.0.5", "10.0.0.5")}, "10.0.0.1", "", ""},
		{"ok gw outside subnet", "10.0.0.0/24", []Pool{pool("10.0.0.1", "10.0.0.254")}, "10.0.1.1", "", ""},
		{"ok v6 last address", "2001:db8::/64", []Pool{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")}, "2001:db8::1", "", ""},
		{"ok /32", "10.0.0.4/32", []Pool{pool("10.0.0.4", "10.0.0.4")}, "", "", ""},
		{"ok /31", "10.0.0.4/31", []Pool{pool("10.0.0.4", "10.0.0.5")}, "", "", ""},
		{"ok /127", "2001:db8::/127", []Pool{pool("2001:db8::", "2001:db8::1")}, "", "", ""},

		{"start after end", "10.0.0.0/24", []Pool{pool("10.0.0.20", "10.0.0.10")}, "", "InvalidAllocationPool",
			"The allocation pool 10.0.0.20-10.0.0.10 is not valid."},
		{"invalid start", "10.0.0.0/24", []Pool{{netip.Addr{}, addr("10.0.0.10")}}, "", "InvalidAllocationPool", ""},
		{"invalid end", "10.0.0.0/24", []Pool{{addr("10.0.0.10"), netip.Addr{}}}, "", "InvalidAllocationPool", ""},
		{"v6 pool in v4 subnet", "10.0.0.0/24", []Pool{pool("2001:db8::2", "2001:db8::9")}, "", "InvalidAllocationPool", ""},
		{"mixed version pool", "10.0.0.0/24", []Pool{pool("10.0.0.2", "2001:db8::9")}, "", "InvalidAllocationPool", ""},
		{"v4 pool in v6 subnet", "2001:db8::/64", []Pool{pool("10.0.0.2", "10.0.0.9")}, "", "InvalidAllocationPool", ""},

		{"end beyond subnet", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.1.5")}, "", "OutOfBoundsAllocationPool",
			"The allocation pool 10.0.0.2-10.0.1.5 spans beyond the subnet cidr 10.0.0.0/24."},
		{"start before subnet", "10.0.1.0/24", []Pool{pool("10.0.0.250", "10.0.1.5")}, "", "OutOfBoundsAllocationPool", ""},
		{"entirely outside", "10.0.0.0/24", []Pool{pool("192.168.0.2", "192.168.0.5")}, "", "OutOfBoundsAllocationPool", ""},
		{"v6 outside", "2001:db8::/64", []Pool{pool("2001:db8:0:1::2", "2001:db8:0:1::5")}, "", "OutOfBoundsAllocationPool", ""},
		// Neutron's validate_allocation_pools bounds pools by first+1 and
		// (IPv4) last-1, so the network and broadcast addresses are out of
		// bounds.
		{"holds network address", "10.0.0.0/24", []Pool{pool("10.0.0.0", "10.0.0.10")}, "", "OutOfBoundsAllocationPool",
			"The allocation pool 10.0.0.0-10.0.0.10 spans beyond the subnet cidr 10.0.0.0/24."},
		{"holds broadcast address", "10.0.0.0/24", []Pool{pool("10.0.0.10", "10.0.0.255")}, "", "OutOfBoundsAllocationPool", ""},
		{"only network address", "10.0.0.0/24", []Pool{pool("10.0.0.0", "10.0.0.0")}, "", "OutOfBoundsAllocationPool", ""},
		{"v6 holds network address", "2001:db8::/64", []Pool{pool("2001:db8::", "2001:db8::10")}, "", "OutOfBoundsAllocationPool", ""},

		{"overlapping", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.0.50"), pool("10.0.0.40", "10.0.0.100")}, "", "OverlappingAllocationPools",
			"Found overlapping allocation pools: 10.0.0.2-10.0.0.50 10.0.0.40-10.0.0.100 for subnet 10.0.0.0/24."},
		{"overlapping unsorted", "10.0.0.0/24", []Pool{pool("10.0.0.40", "10.0.0.100"), pool("10.0.0.2", "10.0.0.50")}, "", "OverlappingAllocationPools", ""},
		{"overlapping one address", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.0.50"), pool("10.0.0.50", "10.0.0.100")}, "", "OverlappingAllocationPools", ""},
		{"identical", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.0.50"), pool("10.0.0.2", "10.0.0.50")}, "", "OverlappingAllocationPools", ""},
		{"nested", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.0.200"), pool("10.0.0.10", "10.0.0.20"), pool("10.0.0.30", "10.0.0.40")}, "", "OverlappingAllocationPools", ""},
		{"nested non-adjacent", "10.0.0.0/24", []Pool{pool("10.0.0.60", "10.0.0.70"), pool("10.0.0.2", "10.0.0.100"), pool("10.0.0.3", "10.0.0.4")}, "", "OverlappingAllocationPools", ""},

		{"gateway in pool", "10.0.0.0/24", []Pool{pool("10.0.0.1", "10.0.0.254")}, "10.0.0.1", "GatewayConflictWithAllocationPools",
			"Gateway ip 10.0.0.1 conflicts with allocation pool 10.0.0.1-10.0.0.254."},
		{"gateway at pool end", "10.0.0.0/24", []Pool{pool("10.0.0.2", "10.0.0.10"), pool("10.0.0.20", "10.0.0.30")}, "10.0.0.30", "GatewayConflictWithAllocationPools",
			"Gateway ip 10.0.0.30 conflicts with allocation pool 10.0.0.20-10.0.0.30."},
		{"v6 gateway in pool", "2001:db8::/64", []Pool{pool("2001:db8::1", "2001:db8::ff")}, "2001:db8::10", "GatewayConflictWithAllocationPools", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidatePools(pfx(tc.cidr), tc.pools, addr(tc.gateway))
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("ValidatePools = %v, want nil", err)
				}
				return
			}
			var pe *PoolError
			if !errors.As(err, &pe) {
				t.Fatalf("ValidatePools = %v, want *PoolError %s", err, tc.kind)
			}
			if pe.Kind != tc.kind {
				t.Errorf("Kind = %s (%s), want %s", pe.Kind, pe.Message, tc.kind)
			}
			if tc.msg != "" && pe.Message != tc.msg {
				t.Errorf("Message = %q, want %q", pe.Message, tc.msg)
			}
			if pe.Error() != pe.Message {
				t.Errorf("Error() = %q, want the message", pe.Error())
			}
		})
	}
}

func TestValidatePoolsDoesNotReorder(t *testing.T) {
	t.Parallel()
	pools := []Pool{pool("10.0.0.100", "10.0.0.110"), pool("10.0.0.2", "10.0.0.10")}
	orig := slices.Clone(pools)
	if err := ValidatePools(pfx("10.0.0.0/24"), pools, addr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pools, orig) {
		t.Errorf("ValidatePools reordered its argument: %v", pools)
	}
}

func TestInPools(t *testing.T) {
	t.Parallel()
	pools := []Pool{pool("10.0.0.2", "10.0.0.10"), pool("10.0.0.20", "10.0.0.30")}
	for a, want := range map[string]bool{
		"10.0.0.1": false, "10.0.0.2": true, "10.0.0.10": true, "10.0.0.11": false,
		"10.0.0.19": false, "10.0.0.20": true, "10.0.0.30": true, "10.0.0.31": false,
	} {
		if got := InPools(pools, addr(a)); got != want {
			t.Errorf("InPools(%s) = %v, want %v", a, got, want)
		}
	}
	if InPools(nil, addr("10.0.0.2")) {
		t.Error("InPools(nil) = true")
	}
}

// usedSet returns a used func over the given addresses.
func usedSet(addrs ...netip.Addr) func(netip.Addr) bool {
	m := map[netip.Addr]bool{}
	for _, a := range addrs {
		m[a] = true
	}
	return func(a netip.Addr) bool { return m[a] }
}

func TestPickNeverReturnsUsed(t *testing.T) {
	t.Parallel()
	pools := []Pool{pool("10.0.0.2", "10.0.0.20"), pool("10.0.0.40", "10.0.0.45")}
	// Every address but three is used.
	free := map[netip.Addr]bool{addr("10.0.0.7"): true, addr("10.0.0.20"): true, addr("10.0.0.44"): true}
	used := func(a netip.Addr) bool { return !free[a] }
	seen := map[netip.Addr]bool{}
	for range 300 {
		a, ok := Pick(pools, used)
		if !ok {
			t.Fatal("Pick: ok = false with free addresses left")
		}
		if !free[a] {
			t.Fatalf("Pick returned %s, which is used or outside the pools", a)
		}
		seen[a] = true
	}
	if len(seen) != len(free) {
		t.Errorf("Pick over 300 tries chose %v, want all of %v", seen, free)
	}
}

func TestPickFull(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		pools []Pool
		used  func(netip.Addr) bool
	}{
		{"no pools", nil, usedSet()},
		{"empty pool list", []Pool{}, usedSet()},
		{"all used", []Pool{pool("10.0.0.2", "10.0.0.4")}, usedSet(addr("10.0.0.2"), addr("10.0.0.3"), addr("10.0.0.4"))},
		{"all used v6", []Pool{pool("2001:db8::1", "2001:db8::2")}, usedSet(addr("2001:db8::1"), addr("2001:db8::2"))},
		{"inverted pool", []Pool{pool("10.0.0.9", "10.0.0.2")}, usedSet()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if a, ok := Pick(tc.pools, tc.used); ok {
				t.Errorf("Pick = %s, true; want false", a)
			}
		})
	}
}

func TestPickAllAddressesReachable(t *testing.T) {
	t.Parallel()
	// The pool ends at the very last IPv6 address: Next() becomes invalid
	// there and Pick must stop rather than wrap or loop.
	pools := []Pool{pool("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}
	seen := map[netip.Addr]bool{}
	for range 200 {
		a, ok := Pick(pools, usedSet())
		if !ok || !pools[0].Contains(a) {
			t.Fatalf("Pick = %s, %v", a, ok)
		}
		seen[a] = true
	}
	if len(seen) != 2 {
		t.Errorf("Pick chose %v, want both addresses", seen)
	}
	a, ok := Pick(pools, usedSet(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")))
	if !ok || a != addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") {
		t.Errorf("Pick = %s, %v; want the last address", a, ok)
	}
	if _, ok := Pick([]Pool{pool("255.255.255.255", "255.255.255.255")}, usedSet(addr("255.255.255.255"))); ok {
		t.Error("Pick of a full pool at the top of the v4 space = ok")
	}
}

// firstFree lists the first n free addresses of pools in pool order: the
// window Pick must choose from.
func firstFree(pools []Pool, used func(netip.Addr) bool, n int) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, p := range pools {
		for a := p.Start; a.IsValid() && a.Compare(p.End) <= 0 && len(out) < n; a = a.Next() {
			if !used(a) {
				out[a] = true
			}
		}
	}
	return out
}

// plus returns a advanced by n addresses.
func plus(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

func TestPickWindow(t *testing.T) {
	t.Parallel()
	if Window < 2 {
		t.Fatalf("Window = %d: Pick would not spread concurrent allocations", Window)
	}
	base := addr("10.0.0.2")
	tests := []struct {
		name  string
		pools []Pool
		used  func(netip.Addr) bool
	}{
		{"v4 /16 nothing used", []Pool{pool("10.0.0.2", "10.0.255.254")}, usedSet()},
		{"v6 /64", []Pool{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")}, usedSet()},
		{"first 100 used", []Pool{pool("10.0.0.0", "10.0.255.255")},
			func(a netip.Addr) bool { return a.Compare(addr("10.0.0.100")) < 0 }},
		{"every other used", []Pool{pool("10.0.0.0", "10.0.255.255")},
			func(a netip.Addr) bool { return a.As4()[3]%2 == 0 }},
		{"window spans pools", []Pool{
			{base, plus(base, Window/2-1)},                      // Window/2 addresses
			{plus(base, Window), plus(base, Window+Window/4-1)}, // Window/4
			{plus(base, 2*Window), plus(base, 3*Window)},        // the rest of the window
			{plus(base, 4*Window), addr("10.0.255.255")},        // never reached
		}, usedSet()},
		{"fewer free than the window", []Pool{pool("10.0.0.2", "10.0.0.254")},
			func(a netip.Addr) bool { return a != addr("10.0.0.7") && a != addr("10.0.0.200") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			window := firstFree(tc.pools, tc.used, Window)
			seen := map[netip.Addr]bool{}
			for range 100 * Window {
				a, ok := Pick(tc.pools, tc.used)
				if !ok {
					t.Fatal("Pick: ok = false")
				}
				if tc.used(a) || !InPools(tc.pools, a) {
					t.Fatalf("Pick = %s: used or outside the pools", a)
				}
				if !window[a] {
					t.Fatalf("Pick = %s, not among the first %d free addresses", a, Window)
				}
				seen[a] = true
			}
			// 100 draws per candidate leave essentially no chance of
			// missing one if the choice is uniform.
			if len(seen) != len(window) {
				t.Errorf("Pick chose %d distinct addresses of the %d in the window", len(seen), len(window))
			}
		})
	}
}

func TestSize(t *testing.T) {
	t.Parallel()
	max := ^uint64(0)
	tests := []struct {
		name  string
		pools []Pool
		want  uint64
	}{
		{"none", nil, 0},
		{"single address", []Pool{pool("10.0.0.5", "10.0.0.5")}, 1},
		{"v4 /24 default", []Pool{pool("10.0.0.2", "10.0.0.254")}, 253},
		{"v4 split", []Pool{pool("10.0.0.1", "10.0.0.99"), pool("10.0.0.101", "10.0.0.254")}, 253},
		{"v4 across octets", []Pool{pool("10.0.0.250", "10.0.1.5")}, 12},
		{"v4 whole space", []Pool{pool("0.0.0.0", "255.255.255.255")}, 1 << 32},
		{"v6 small", []Pool{pool("2001:db8::1", "2001:db8::ff")}, 255},
		{"v6 across 64-bit boundary", []Pool{pool("2001:db8::ffff:ffff:ffff:fffe", "2001:db8:0:1::1")}, 4},
		{"v6 /64 minus one", []Pool{pool("2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")}, max},
		{"v6 /64 minus two", []Pool{pool("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")}, max - 1},
		{"v6 whole /64 saturates", []Pool{pool("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")}, max},
		{"v6 /48 saturates", []Pool{pool("2001:db8::1", "2001:db8:0:ffff:ffff:ffff:ffff:ffff")}, max},
		{"v6 whole space saturates", []Pool{pool("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}, max},
		{"sum saturates", []Pool{
			pool("2001:db8::", "2001:db8::7fff:ffff:ffff:ffff"),
			pool("2001:db8::8000:0:0:0", "2001:db8::ffff:ffff:ffff:ffff"),
		}, max},
		{"sum saturates after small", []Pool{
			pool("2001:db8::1", "2001:db8::1"),
			pool("2001:db8:1::1", "2001:db8:1::ffff:ffff:ffff:ffff"),
		}, max},
		{"sum just fits", []Pool{
			pool("2001:db8::1", "2001:db8::7fff:ffff:ffff:ffff"),
			pool("2001:db8::8000:0:0:0", "2001:db8::ffff:ffff:ffff:ffff"),
		}, max},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Size(tc.pools); got != tc.want {
				t.Errorf("Size = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestSpanMatchesBigInt checks span against big.Int arithmetic.
func TestSpanMatchesBigInt(t *testing.T) {
	t.Parallel()
	max := new(big.Int).SetUint64(^uint64(0))
	pairs := [][2]string{
		{"::", "::"},
		{"::", "::1"},
		{"::1:0:0:0:0", "::1:ffff:ffff:ffff:ffff"},
		{"::0:ffff:ffff:ffff:ffff", "::1:0:0:0:0"},
		{"::0:ffff:ffff:ffff:fff0", "::1:0:0:0:f"},
		{"::0:8000:0:0:0", "::1:7fff:ffff:ffff:fffe"},
		{"::0:8000:0:0:0", "::1:7fff:ffff:ffff:ffff"},
		{"1::", "2::"},
		{"10.0.0.0", "10.255.255.255"},
	}
	for _, p := range pairs {
		s, e := addr(p[0]), addr(p[1])
		want := new(big.Int).Sub(new(big.Int).SetBytes(e.AsSlice()), new(big.Int).SetBytes(s.AsSlice()))
		want.Add(want, big.NewInt(1))
		if want.Cmp(max) > 0 {
			want = max
		}
		if got := span(s, e); got != want.Uint64() {
			t.Errorf("span(%s, %s) = %d, want %s", s, e, got, want)
		}
	}
}

func TestEUI64(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, mac, want string
	}{
		{"2001:db8::/64", "fa:16:3e:11:22:33", "2001:db8::f816:3eff:fe11:2233"},
		{"2001:db8:1:2::/64", "00:16:3e:33:44:55", "2001:db8:1:2:216:3eff:fe33:4455"},
		// The universal/local bit is flipped both ways.
		{"fe80::/64", "02:00:00:00:00:01", "fe80::ff:fe00:1"},
		{"fe80::/64", "00:00:00:00:00:01", "fe80::200:ff:fe00:1"},
		{"2001:db8::/64", "ff:ff:ff:ff:ff:ff", "2001:db8::fdff:ffff:feff:ffff"},
		// Host bits in the prefix are ignored.
		{"2001:db8::1234/64", "fa:16:3e:11:22:33", "2001:db8::f816:3eff:fe11:2233"},
		// Shorter prefixes are fine: the low 64 bits are the interface id.
		{"2001:db8::/48", "fa:16:3e:11:22:33", "2001:db8::f816:3eff:fe11:2233"},
	}
	for _, tc := range tests {
		mac, err := net.ParseMAC(tc.mac)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EUI64(pfx(tc.prefix), mac)
		if err != nil {
			t.Errorf("EUI64(%s, %s): %v", tc.prefix, tc.mac, err)
			continue
		}
		if got != addr(tc.want) {
			t.Errorf("EUI64(%s, %s) = %s, want %s", tc.prefix, tc.mac, got, tc.want)
		}
	}
}

func TestEUI64Errors(t *testing.T) {
	t.Parallel()
	mac6 := net.HardwareAddr{0xfa, 0x16, 0x3e, 0x11, 0x22, 0x33}
	tests := []struct {
		prefix string
		mac    net.HardwareAddr
	}{
		{"10.0.0.0/24", mac6},
		{"2001:db8::/65", mac6},
		{"2001:db8::/120", mac6},
		{"2001:db8::/64", net.HardwareAddr{1, 2, 3, 4, 5}},
		{"2001:db8::/64", net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}},
		{"2001:db8::/64", nil},
	}
	for _, tc := range tests {
		if a, err := EUI64(pfx(tc.prefix), tc.mac); err == nil {
			t.Errorf("EUI64(%s, %v) = %s, want an error", tc.prefix, tc.mac, a)
		}
	}
}

func TestIsNetworkOrBroadcast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cidr, a string
		want    bool
	}{
		{"10.0.0.0/24", "10.0.0.0", true},
		{"10.0.0.0/24", "10.0.0.255", true},
		{"10.0.0.0/24", "10.0.0.1", false},
		{"10.0.0.0/24", "10.0.0.254", false},
		{"10.0.0.0/24", "10.0.1.0", false},
		{"10.0.0.0/23", "10.0.0.255", false},
		{"10.0.0.0/23", "10.0.1.0", false},
		{"10.0.0.0/23", "10.0.1.255", true},
		{"10.0.0.77/24", "10.0.0.0", true}, // host bits in the prefix
		{"10.0.0.77/24", "10.0.0.255", true},
		{"10.0.0.4/30", "10.0.0.4", true},
		{"10.0.0.4/30", "10.0.0.7", true},
		{"10.0.0.4/30", "10.0.0.5", false},
		// RFC 3021: both addresses of a /31 are usable; so is a /32's.
		{"10.0.0.4/31", "10.0.0.4", false},
		{"10.0.0.4/31", "10.0.0.5", false},
		{"10.0.0.4/32", "10.0.0.4", false},
		// IPv6 has no broadcast; the subnet-router anycast address is
		// the network address.
		{"2001:db8::/64", "2001:db8::", true},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", false},
		{"2001:db8::/64", "2001:db8::1", false},
		{"2001:db8::/127", "2001:db8::", false},
		{"2001:db8::/128", "2001:db8::", false},
	}
	for _, tc := range tests {
		if got := IsNetworkOrBroadcast(pfx(tc.cidr), addr(tc.a)); got != tc.want {
			t.Errorf("IsNetworkOrBroadcast(%s, %s) = %v, want %v", tc.cidr, tc.a, got, tc.want)
		}
	}
}

func ExampleDefaultPools() {
	fmt.Println(DefaultPools(netip.MustParsePrefix("192.168.0.0/24"), netip.MustParseAddr("192.168.0.100")))
	// Output: [192.168.0.1-192.168.0.99 192.168.0.101-192.168.0.254]
}

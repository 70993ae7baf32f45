package l2

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Network and port IDs of the tests; only their first 11 characters show in
// link names.
const (
	netA  = "5e2c8a41-7d3b-4f6e-9a1c-2b3d4e5f6a7b"
	netB  = "a7f3e9d2-1c4b-4a8e-b6d5-9e8f7a6b5c4d"
	port1 = "11111111-aaaa-4bbb-8ccc-000000000001"
	port2 = "22222222-aaaa-4bbb-8ccc-000000000002"
	port3 = "33333333-aaaa-4bbb-8ccc-000000000003"
	port4 = "44444444-aaaa-4bbb-8ccc-000000000004"
)

func vxlanNet(id string, vni uint32, mtu int, taps []string, remotes ...Remote) Network {
	return Network{ID: id, Type: TypeVXLAN, SegmentationID: vni, MTU: mtu, Taps: taps, Remotes: remotes}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// underlayOnly gives a lone host namespace a VTEP address on a veth whose
// peer stays in the same namespace: enough for devices that need not carry
// packets.
func underlayOnly(t *testing.T, h *testNS) {
	t.Helper()
	veth(t, h, "ul0", h, "ul1")
	h.addr(t, "ul0", "10.99.0.1/24")
	h.up(t, "ul0")
	h.up(t, "ul1")
}

func TestVMsOnTwoHostsPingOverVXLANWithARPAnsweredLocally(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h1, h2 := twoHosts(t)
	tap1, tap2 := TapName(port1), TapName(port2)
	vm1 := newVM(t, h1, tap1, "10.10.0.1/24", "fd00:10::1/64")
	vm2 := newVM(t, h2, tap2, "10.10.0.2/24", "fd00:10::2/64")
	d1 := Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 1001, 1450, []string{tap1}, vm2.remote("10.99.0.2")),
	}}
	d2 := Desired{LocalIP: addr("10.99.0.2"), Networks: []Network{
		vxlanNet(netA, 1001, 1450, []string{tap2}, vm1.remote("10.99.0.1")),
	}}
	m1, m2 := h1.manager(t), h2.manager(t)
	res := reconcile(t, m1, d1)
	reconcile(t, m2, d2)
	if st := res.Taps[tap1]; !st.Exists || !st.Wired || st.Network != netA {
		t.Fatalf("tap status %+v, want wired in %s", st, netA)
	}
	settle(t, h1, h2, vm1.testNS, vm2.testNS)
	vm1.mustPing(t, "10.10.0.2")
	vm2.mustPing(t, "fd00:10::1")

	// Take the flood lists away: no broadcast (ARP request) and no multicast
	// (neighbour solicitation) can cross the underlay any more. The pings
	// still work after the VMs forget their neighbours because each host
	// answers for the remote VM from the vxlan device's neighbour table.
	for _, h := range []struct {
		ns   *testNS
		vtep string
	}{{h1, "10.99.0.2"}, {h2, "10.99.0.1"}} {
		dev := h.ns.link(t, "vxlan-1001")
		flood := &netlink.Neigh{
			LinkIndex: dev.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			HardwareAddr: zeroMAC, IP: net.ParseIP(h.vtep),
		}
		if err := h.ns.h.NeighDel(flood); err != nil {
			t.Fatalf("delete flood entry: %v", err)
		}
		if got := h.ns.fdb(t, "vxlan-1001"); slices.ContainsFunc(got, func(s string) bool {
			return strings.HasPrefix(s, "00:00:00:00:00:00")
		}) {
			t.Fatalf("flood entry still there: %v", got)
		}
	}
	vm1.flushNeigh(t)
	vm2.flushNeigh(t)
	vm1.mustPing(t, "10.10.0.2")
	vm1.mustPing(t, "fd00:10::2")
	if got := vm1.neighMAC(t, "10.10.0.2"); got.String() != vm2.mac.String() {
		t.Fatalf("vm1 resolved 10.10.0.2 to %v, want %v", got, vm2.mac)
	}
	if got := vm2.neighMAC(t, "fd00:10::1"); got.String() != vm1.mac.String() {
		t.Fatalf("vm2 resolved fd00:10::1 to %v, want %v", got, vm1.mac)
	}

	// Level-triggered: the next reconcile puts the flood entry back.
	res = reconcile(t, m1, d1)
	want := "add fdb 00:00:00:00:00:00 dst 10.99.0.2 dev vxlan-1001"
	if !slices.Contains(res.Changes, want) || len(res.Changes) != 1 {
		t.Fatalf("changes %q, want only %q", res.Changes, want)
	}
}

func TestSameAddressesOnDifferentVNIsAreIsolated(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h1, h2 := twoHosts(t)
	// Network A: a1 on host 1, a2 on host 2. Network B: b1 on host 1, b2 on
	// host 2. a1 and b1 share 10.10.0.1; b2 has 10.10.0.2, which network A
	// does not use.
	a1 := newVM(t, h1, TapName(port1), "10.10.0.1/24")
	b1 := newVM(t, h1, TapName(port2), "10.10.0.1/24")
	a2 := newVM(t, h2, TapName(port3), "10.10.0.3/24")
	b2 := newVM(t, h2, TapName(port4), "10.10.0.2/24")
	reconcile(t, h1.manager(t), Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 100, 1450, []string{TapName(port1)}, a2.remote("10.99.0.2")),
		vxlanNet(netB, 200, 1450, []string{TapName(port2)}, b2.remote("10.99.0.2")),
	}})
	reconcile(t, h2.manager(t), Desired{LocalIP: addr("10.99.0.2"), Networks: []Network{
		vxlanNet(netA, 100, 1450, []string{TapName(port3)}, a1.remote("10.99.0.1")),
		vxlanNet(netB, 200, 1450, []string{TapName(port4)}, b1.remote("10.99.0.1")),
	}})
	settle(t, h1, h2, a1.testNS, b1.testNS, a2.testNS, b2.testNS)
	a1.mustPing(t, "10.10.0.3")
	b1.mustPing(t, "10.10.0.2")
	b2.mustPing(t, "10.10.0.1") // reaches b1, not a1 with the same address
	if got := b2.neighMAC(t, "10.10.0.1"); got.String() != b1.mac.String() {
		t.Fatalf("b2 resolved 10.10.0.1 to %v, want b1's %v", got, b1.mac)
	}

	// a1 is told b2's MAC outright, so no ARP stands in the way: the frame
	// floods on VNI 100 and must not reach b2 on VNI 200.
	if err := a1.h.NeighSet(&netlink.Neigh{
		LinkIndex: a1.link(t, "eth0").Attrs().Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.10.0.2"), HardwareAddr: b2.mac,
	}); err != nil {
		t.Fatal(err)
	}
	if err := a1.ping(t, "10.10.0.2"); err == nil {
		t.Fatal("a1 on VNI 100 reached b2 on VNI 200")
	}
}

func TestSecondReconcileChangesNothing(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	underlayOnly(t, h)
	tap1, tap2 := TapName(port1), TapName(port2)
	newVM(t, h, tap1, "10.10.0.1/24")
	newVM(t, h, tap2, "10.20.0.1/24")
	d := Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 5000, 1450, []string{tap1},
			Remote{MAC: mac("fa:16:3e:00:00:02"), IPs: []netip.Addr{addr("10.10.0.2"), addr("fd00::2")}, VTEP: addr("10.99.0.2")},
			Remote{MAC: mac("fa:16:3e:00:00:03"), IPs: []netip.Addr{addr("10.10.0.3")}, VTEP: addr("10.99.0.3")},
			Remote{MAC: mac("fa:16:3e:00:00:04"), IPs: []netip.Addr{addr("10.10.0.4")}, VTEP: addr("10.99.0.3")},
		),
		{ID: netB, Type: TypeLocal, MTU: 1500, Taps: []string{tap2}},
	}}
	first := reconcile(t, h.manager(t), d)
	if len(first.Changes) == 0 {
		t.Fatal("first reconcile changed nothing")
	}
	if v := h.link(t, "vxlan-5000").(*netlink.Vxlan); v.VtepDevIndex != h.link(t, "ul0").Attrs().Index {
		t.Errorf("vxlan-5000 bound to device %d, want ul0", v.VtepDevIndex)
	}
	idx, fdb, neigh := h.indexes(t), h.fdb(t, "vxlan-5000"), h.neighs(t, "vxlan-5000")
	if len(fdb) != 5 || len(neigh) != 7 {
		t.Fatalf("fdb %v and neighbours %v, want 2 flood + 3 mac entries and 4 addresses + 3 link-local", fdb, neigh)
	}

	// The same Manager, and a new one as after an agent restart.
	for _, m := range []*Manager{h.manager(t), h.manager(t)} {
		res := reconcile(t, m, d)
		if len(res.Changes) != 0 {
			t.Fatalf("second reconcile changed %q", res.Changes)
		}
	}
	if got := h.indexes(t); !maps.Equal(got, idx) {
		t.Errorf("ifindexes changed: %v, were %v", got, idx)
	}
	if got := h.fdb(t, "vxlan-5000"); !slices.Equal(got, fdb) {
		t.Errorf("fdb changed: %v, was %v", got, fdb)
	}
	if got := h.neighs(t, "vxlan-5000"); !slices.Equal(got, neigh) {
		t.Errorf("neighbours changed: %v, were %v", got, neigh)
	}
}

func TestRemovedNetworkLeavesOnlyForeignLinks(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	underlayOnly(t, h)
	tap1, tap2, tap3 := TapName(port1), TapName(port2), TapName(port3)
	for _, tap := range []string{tap1, tap2, tap3} {
		newVM(t, h, tap)
	}
	// Links the Manager does not own, some with names close to its own.
	veth(t, h, "keepme", h, "keepme-peer")
	if err := h.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-keep"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.h.LinkAdd(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan0"}, VxlanId: 7, Port: 4790}); err != nil {
		t.Fatal(err)
	}
	m := h.manager(t)
	both := Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 10, 1450, []string{tap1, tap3}),
		vxlanNet(netB, 20, 1450, []string{tap2}),
	}}
	reconcile(t, m, both)
	for _, n := range []string{BridgeName(netA), BridgeName(netB), "vxlan-10", "vxlan-20"} {
		if !h.has(n) {
			t.Fatalf("%s not created", n)
		}
	}
	before := h.indexes(t)

	// Network B is gone from this host; tap3's port left network A.
	res := reconcile(t, m, Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 10, 1450, []string{tap1}),
	}})
	t.Logf("changes: %q", res.Changes)
	for _, n := range []string{BridgeName(netB), "vxlan-20"} {
		if h.has(n) {
			t.Errorf("%s survived the removal of its network", n)
		}
	}
	after := h.indexes(t)
	for _, n := range []string{"keepme", "keepme-peer", "br-keep", "vxlan0", "ul0", "ul1", tap1, tap2, tap3,
		BridgeName(netA), "vxlan-10"} {
		if after[n] != before[n] {
			t.Errorf("%s: ifindex %d, was %d", n, after[n], before[n])
		}
	}
	if len(after) != len(before)-2 {
		t.Errorf("links %v, were %v: want exactly two fewer", after, before)
	}
	for _, tap := range []string{tap2, tap3} {
		if mi := h.link(t, tap).Attrs().MasterIndex; mi != 0 {
			t.Errorf("%s still enslaved to index %d", tap, mi)
		}
	}
	if mi := h.link(t, tap1).Attrs().MasterIndex; mi != after[BridgeName(netA)] {
		t.Errorf("%s master %d, want %s", tap1, mi, BridgeName(netA))
	}
}

func TestRemovedRemoteLosesItsFDBAndNeighbourEntries(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	underlayOnly(t, h)
	r1 := Remote{MAC: mac("fa:16:3e:00:00:02"), IPs: []netip.Addr{addr("10.10.0.2")}, VTEP: addr("10.99.0.2")}
	r2 := Remote{MAC: mac("fa:16:3e:00:00:03"), IPs: []netip.Addr{addr("10.10.0.3"), addr("fd00::3")}, VTEP: addr("10.99.0.3")}
	m := h.manager(t)
	desired := func(rs ...Remote) Desired {
		return Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{vxlanNet(netA, 42, 1450, nil, rs...)}}
	}
	reconcile(t, m, desired(r1, r2))
	wantFDB := []string{
		"00:00:00:00:00:00 10.99.0.2", "00:00:00:00:00:00 10.99.0.3",
		"fa:16:3e:00:00:02 10.99.0.2", "fa:16:3e:00:00:03 10.99.0.3",
	}
	wantNeigh := []string{"10.10.0.2 fa:16:3e:00:00:02", "10.10.0.3 fa:16:3e:00:00:03", "fd00::3 fa:16:3e:00:00:03",
		"fe80::f816:3eff:fe00:2 fa:16:3e:00:00:02", "fe80::f816:3eff:fe00:3 fa:16:3e:00:00:03"}
	if got := h.fdb(t, "vxlan-42"); !slices.Equal(got, wantFDB) {
		t.Fatalf("fdb %v, want %v", got, wantFDB)
	}
	if got := h.neighs(t, "vxlan-42"); !slices.Equal(got, wantNeigh) {
		t.Fatalf("neighbours %v, want %v", got, wantNeigh)
	}

	reconcile(t, m, desired(r1))
	if got, want := h.fdb(t, "vxlan-42"), []string{"00:00:00:00:00:00 10.99.0.2", "fa:16:3e:00:00:02 10.99.0.2"}; !slices.Equal(got, want) {
		t.Errorf("after removal: fdb %v, want %v", got, want)
	}
	if got, want := h.neighs(t, "vxlan-42"), []string{"10.10.0.2 fa:16:3e:00:00:02", "fe80::f816:3eff:fe00:2 fa:16:3e:00:00:02"}; !slices.Equal(got, want) {
		t.Errorf("after removal: neighbours %v, want %v", got, want)
	}

	// The port's VM migrates to another host: its entries follow.
	r1.VTEP = addr("10.99.0.4")
	reconcile(t, m, desired(r1))
	if got, want := h.fdb(t, "vxlan-42"), []string{"00:00:00:00:00:00 10.99.0.4", "fa:16:3e:00:00:02 10.99.0.4"}; !slices.Equal(got, want) {
		t.Errorf("after migration: fdb %v, want %v", got, want)
	}
}

func TestMTUOfNetworkOnBridgeVXLANAndTapChangesInPlace(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	underlayOnly(t, h)
	tap := TapName(port1)
	newVM(t, h, tap)
	m := h.manager(t)
	for _, mtu := range []int{1400, 1350, 1450} {
		reconcile(t, m, Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
			vxlanNet(netA, 77, mtu, []string{tap}),
		}})
		for _, n := range []string{BridgeName(netA), "vxlan-77", tap} {
			if got := h.link(t, n).Attrs().MTU; got != mtu {
				t.Errorf("%s mtu %d, want %d", n, got, mtu)
			}
		}
	}
	idx := h.indexes(t)
	if idx[BridgeName(netA)] == 0 || idx["vxlan-77"] == 0 {
		t.Fatal("links missing")
	}
	// An MTU the underlay cannot carry is the network's error, not a crash.
	res, err := m.Reconcile(t.Context(), Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 77, 1500, []string{tap}),
	}})
	if err != nil || res.Networks[netA].Err == nil {
		t.Fatalf("mtu 1500 over a 1500 underlay: err %v, network %v; want a network error", err, res.Networks[netA].Err)
	}
	t.Logf("mtu 1500: %v", res.Networks[netA].Err)
}

func TestFlatEnslavesPhysicalAndVLANNeedsKernelSupport(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	veth(t, h, "eth1", h, "eth1-peer")
	veth(t, h, "eth2", h, "eth2-peer")
	tap1, tap2 := TapName(port1), TapName(port2)
	newVM(t, h, tap1)
	newVM(t, h, tap2)
	m := h.manager(t)
	d := Desired{Networks: []Network{
		{ID: netA, Type: TypeFlat, PhysicalInterface: "eth1", MTU: 1500, Taps: []string{tap1}},
		{ID: netB, Type: TypeVLAN, PhysicalInterface: "eth2", SegmentationID: 101, MTU: 1500, Taps: []string{tap2}},
	}}
	res, err := m.Reconcile(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Networks[netA].Err; err != nil {
		t.Fatalf("flat network: %v", err)
	}
	if mi := h.link(t, "eth1").Attrs().MasterIndex; mi != h.link(t, BridgeName(netA)).Attrs().Index {
		t.Errorf("eth1 master %d, want %s", mi, BridgeName(netA))
	}
	if !res.Taps[tap1].Wired {
		t.Errorf("flat tap %+v, want wired", res.Taps[tap1])
	}
	if m.SupportsVLAN() {
		if err := res.Networks[netB].Err; err != nil {
			t.Fatalf("vlan network: %v", err)
		}
		if v, ok := h.link(t, "eth2.101").(*netlink.Vlan); !ok || v.VlanId != 101 {
			t.Errorf("eth2.101 is %v, want vlan 101", h.link(t, "eth2.101"))
		}
	} else {
		t.Log("kernel has no 802.1Q: vlan network must fail alone")
		if err := res.Networks[netB].Err; err == nil || !strings.Contains(err.Error(), ErrVLANUnsupported.Error()) {
			t.Fatalf("vlan network error %v, want %v", err, ErrVLANUnsupported)
		}
		if res.Taps[tap2].Wired || res.Taps[tap2].Err == nil {
			t.Errorf("vlan tap %+v, want unwired with an error", res.Taps[tap2])
		}
	}

	// Without the flat network its bridge goes; eth1 stays, released.
	d.Networks = d.Networks[1:]
	if _, err := m.Reconcile(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if h.has(BridgeName(netA)) {
		t.Error("flat bridge survived")
	}
	if l := h.link(t, "eth1"); l.Attrs().MasterIndex != 0 {
		t.Errorf("eth1 still enslaved to %d", l.Attrs().MasterIndex)
	}
}

func TestInvalidNetworkDoesNotStopTheOthers(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	m := h.manager(t)
	res, err := m.Reconcile(t.Context(), Desired{Networks: []Network{
		{ID: netA, Type: TypeLocal, MTU: 1500},
		{ID: netB, Type: TypeVXLAN, SegmentationID: 9}, // no local VTEP address
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Networks[netA].Err != nil || res.Networks[netB].Err == nil {
		t.Fatalf("statuses %+v: want A ok and B failed", res.Networks)
	}
	if !h.has(BridgeName(netA)) {
		t.Error("valid network not built")
	}
	if res.Err() == nil {
		t.Error("Result.Err() is nil despite a failed network")
	}
}

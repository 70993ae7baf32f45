package qdhcp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/namedns"
	"github.com/vland/vland/internal/namedns/nstest"
)

const (
	netA   = "5e2c8a41-7d3b-4f6e-9a1c-2b3d4e5f6a7b"
	portD  = "dddddddd-aaaa-4bbb-8ccc-000000000001"
	portD2 = "eeeeeeee-aaaa-4bbb-8ccc-000000000002"
	macD   = "fa:16:3e:00:00:02"
	macVM  = "fa:16:3e:00:00:10"
)

// service is network netA's DHCP service with DHCP port id, serving one VM.
func service(id string) Service {
	r := dhcp.Reservation{MAC: mac(macVM), IP: netip.MustParseAddr("10.40.0.10"), Prefix: pfx("10.40.0.0/24"),
		Router: netip.MustParseAddr("10.40.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.40.0.2")}, MTU: 1400,
		DomainName: "openstacklocal", Hostname: "vm1", LeaseTime: time.Hour}
	return Service{
		NetworkID: netA, PortID: id, MAC: mac(macD), MTU: 1400,
		Addrs: []netip.Prefix{pfx("10.40.0.2/24"), pfx("fd00:40::2/64")},
		Table: dhcp.NewTable([]netip.Prefix{pfx("10.40.0.2/24")}, r),
	}
}

func TestNames(t *testing.T) {
	if got := NamespaceName("v1a2b-network1-", netA); got != "v1a2b-network1-qdhcp-"+netA {
		t.Errorf("NamespaceName = %q", got)
	}
	if got := NamespaceName("", netA); got != "qdhcp-"+netA {
		t.Errorf("NamespaceName without prefix = %q", got)
	}
	if DeviceName(portD) != "ns-dddddddd-aa" || TapName(portD) != "tapdddddddd-aa" {
		t.Errorf("device names %q %q", DeviceName(portD), TapName(portD))
	}
	bad := []Service{
		{NetworkID: "../x", PortID: portD, MAC: mac(macD)},
		{NetworkID: netA, PortID: "a/b", MAC: mac(macD)},
		{NetworkID: netA, PortID: portD, MAC: mac("01:00:5e:00:00:01")},
		{NetworkID: netA, PortID: portD, MAC: mac(macD), MTU: 20},
		{NetworkID: netA, PortID: portD, MAC: mac(macD), Addrs: []netip.Prefix{{}}},
	}
	for _, s := range bad {
		if err := s.validate(""); err == nil {
			t.Errorf("service %+v validates", s)
		}
	}
	if err := service(portD).validate("p-"); err != nil {
		t.Error(err)
	}
}

// reconcile runs one Reconcile and fails the test on a service error.
func reconcile(t *testing.T, m *Manager, svcs ...Service) Result {
	t.Helper()
	res, err := m.Reconcile(context.Background(), svcs)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
}

// TestReconcileBuildsServesAndRemoves walks a DHCP namespace through its
// life: creation, a lease through the tap on a bridge, a second reconcile
// that changes nothing, repairs in place, a restart of the Manager that
// keeps every link, a recreated veth, a new DHCP port, and removal.
func TestReconcileBuildsServesAndRemoves(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	prefix := testPrefix()
	t.Cleanup(func() {
		if left := removeLeftovers(prefix); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	host, vm := newNS(t), newNS(t)
	m, err := New(host.name, Options{Prefix: prefix, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	// Namespaces that are not this Manager's are never touched: another
	// agent's, and a plain one that merely looks alike.
	foreign := strings.TrimSuffix(prefix, "-") + "x-" + NamespaceInfix + netA
	if _, err := createNamespace(foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unbindNamespace(foreign) })
	// A stale file of ours without a namespace mounted on it is removed.
	stale := NamespaceName(prefix, "stale-network")
	if err := os.WriteFile(NamespacePath(stale), nil, 0o444); err != nil {
		t.Fatal(err)
	}

	svc := service(portD)
	res := reconcile(t, m, svc)
	st := res.Services[netA]
	if !st.Ready || !st.Serving || len(res.Started) != 1 || len(res.Changes) == 0 {
		t.Fatalf("first reconcile: status %+v, started %v, changes %v", st, res.Started, res.Changes)
	}
	nsName := NamespaceName(prefix, netA)
	if st.Namespace != nsName || st.Device != "ns-dddddddd-aa" || st.Tap != "tapdddddddd-aa" {
		t.Errorf("status names %+v", st)
	}
	if _, err := os.Stat(NamespacePath(stale)); !os.IsNotExist(err) {
		t.Errorf("stale namespace file %s not removed: %v", stale, err)
	}
	if _, ok, _ := namedns.OpenBound(foreign); !ok {
		t.Errorf("namespace %s of another prefix was removed", foreign)
	}
	qh := handleIn(t, nsName)
	dev, err := qh.LinkByName(st.Device)
	if err != nil {
		t.Fatal(err)
	}
	a := dev.Attrs()
	if a.HardwareAddr.String() != macD || a.MTU != 1400 || a.Flags&1 == 0 {
		t.Errorf("%s: mac %s mtu %d flags %v", st.Device, a.HardwareAddr, a.MTU, a.Flags)
	}
	if got := addrsOf(t, qh, dev); !slices.Equal(got, []string{"10.40.0.2/24", "fd00:40::2/64"}) {
		t.Errorf("%s addresses %v", st.Device, got)
	}
	if lo, _ := qh.LinkByName("lo"); lo == nil || lo.Attrs().Flags&1 == 0 {
		t.Error("lo is not up in the DHCP namespace")
	}
	tap := host.link(t, st.Tap)
	if tap.Type() != "veth" || tap.Attrs().MTU != 1400 || tap.Attrs().ParentIndex != a.Index {
		t.Errorf("%s: type %s mtu %d peer %d, want a veth at 1400 paired with %d", st.Tap, tap.Type(), tap.Attrs().MTU, tap.Attrs().ParentIndex, a.Index)
	}

	// The L2 part, as the agent's l2 reconcile would do it: a bridge with
	// the DHCP tap and a VM's tap.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0", MTU: 1400}}
	if err := host.h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	v := netlink.NewVeth(netlink.LinkAttrs{Name: "tapvm", MTU: 1400})
	v.PeerName, v.PeerHardwareAddr, v.PeerNamespace = "eth0", mac(macVM), netlink.NsFd(int(vm.fd))
	if err := host.h.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{st.Tap, "tapvm"} {
		if err := host.h.LinkSetMaster(host.link(t, name), host.link(t, "br0")); err != nil {
			t.Fatal(err)
		}
		host.up(t, name)
	}
	host.up(t, "br0")
	vm.up(t, "eth0")
	l, err := lease(t, vm.name, 8)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"ip": "10.40.0.10", "mask": "24", "router": "10.40.0.1", "mtu": "1400", "hostname": "vm1", "serverid": "10.40.0.2", "lease": "3600"} {
		if l[k] != want {
			t.Errorf("lease %s=%q, want %q", k, l[k], want)
		}
	}

	// Nothing to do the second time.
	if res := reconcile(t, m, svc); len(res.Changes) != 0 || len(res.Started) != 0 {
		t.Errorf("second reconcile changed %v, started %v", res.Changes, res.Started)
	}

	// Repairs in place: a MAC, an MTU and an address changed by hand, a
	// changed address in the service. The server keeps running.
	if err := qh.LinkSetHardwareAddr(dev, mac("fa:16:3e:99:99:99")); err != nil {
		t.Fatal(err)
	}
	if err := qh.LinkSetMTU(dev, 1300); err != nil {
		t.Fatal(err)
	}
	extra, _ := netlink.ParseAddr("192.168.77.1/24")
	if err := qh.AddrAdd(dev, extra); err != nil {
		t.Fatal(err)
	}
	svc.Addrs = []netip.Prefix{pfx("10.40.0.3/24")}
	res = reconcile(t, m, svc)
	if len(res.Started) != 0 || len(res.Changes) != 6 {
		t.Errorf("repair: changes %v, started %v; want mac, mtu, three addresses removed, one added, no restart", res.Changes, res.Started)
	}
	dev, _ = qh.LinkByName(st.Device)
	if dev.Attrs().Index != a.Index || dev.Attrs().HardwareAddr.String() != macD || dev.Attrs().MTU != 1400 {
		t.Errorf("after repair: index %d (was %d) mac %s mtu %d", dev.Attrs().Index, a.Index, dev.Attrs().HardwareAddr, dev.Attrs().MTU)
	}
	if got := addrsOf(t, qh, dev); !slices.Equal(got, []string{"10.40.0.3/24"}) {
		t.Errorf("addresses after repair %v", got)
	}
	svc = service(portD)
	reconcile(t, m, svc)

	// A restarted agent: a new Manager finds everything right, changes
	// nothing, and starts its server.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	tapIndex := host.link(t, st.Tap).Attrs().Index
	m2, err := New(host.name, Options{Prefix: prefix, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m2.Close() })
	res = reconcile(t, m2, svc)
	if len(res.Changes) != 0 || !slices.Equal(res.Started, []string{netA}) {
		t.Errorf("restart: changes %v, started %v", res.Changes, res.Started)
	}
	if dev, _ := qh.LinkByName(st.Device); dev.Attrs().Index != a.Index || host.link(t, st.Tap).Attrs().Index != tapIndex {
		t.Error("restart recreated the veth pair")
	}
	if _, err := lease(t, vm.name, 8); err != nil {
		t.Fatalf("no lease after the restart: %v", err)
	}

	// The pair deleted by hand is recreated and the server follows it to
	// the new device.
	if err := host.h.LinkDel(host.link(t, st.Tap)); err != nil {
		t.Fatal(err)
	}
	res = reconcile(t, m2, svc)
	if !slices.Equal(res.Started, []string{netA}) || !slices.ContainsFunc(res.Changes, func(c string) bool { return strings.HasPrefix(c, "create veth") }) {
		t.Errorf("recreate: changes %v, started %v", res.Changes, res.Started)
	}

	// The network's DHCP port is now another: its device replaces the old.
	svc2 := service(portD2)
	res = reconcile(t, m2, svc2)
	st2 := res.Services[netA]
	if host.has(st.Tap) || !host.has(st2.Tap) || !slices.Equal(res.Started, []string{netA}) {
		t.Errorf("new DHCP port: old tap present %v, new tap present %v, started %v", host.has(st.Tap), host.has(st2.Tap), res.Started)
	}
	if _, err := qh.LinkByName(st.Device); err == nil {
		t.Errorf("old device %s still in %s", st.Device, nsName)
	}

	// No service: namespace, veth and server go; the foreign one stays.
	res = reconcile(t, m2)
	if len(res.Services) != 0 || len(m2.Stats()) != 0 {
		t.Errorf("after removal: services %v, servers %v", res.Services, m2.Stats())
	}
	if _, ok, _ := namedns.OpenBound(nsName); ok {
		t.Errorf("namespace %s remains", nsName)
	}
	if host.has(st2.Tap) {
		t.Errorf("tap %s remains", st2.Tap)
	}
	if _, ok, _ := namedns.OpenBound(foreign); !ok {
		t.Errorf("namespace %s of another prefix was removed", foreign)
	}
}

// TestReconcileWithoutIPv4RunsNoServer: an IPv6-only network gets its
// namespace and device but no DHCPv4 server, and is ready.
func TestReconcileWithoutIPv4RunsNoServer(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	prefix := testPrefix()
	t.Cleanup(func() {
		if left := removeLeftovers(prefix); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	host := newNS(t)
	m, err := New(host.name, Options{Prefix: prefix, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	svc := Service{NetworkID: netA, PortID: portD, MAC: mac(macD), MTU: 1450, Addrs: []netip.Prefix{pfx("fd00:41::2/64")}}
	res := reconcile(t, m, svc)
	if st := res.Services[netA]; !st.Ready || st.Serving || len(res.Started) != 0 {
		t.Errorf("IPv6-only: %+v, started %v", st, res.Started)
	}
	reconcile(t, m)
}

// BenchmarkReconcile50Networks measures a steady-state Reconcile of a host
// serving 50 networks (every namespace and server already right), what an
// agent pays on each view change; the first, building pass is logged.
func BenchmarkReconcile50Networks(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	prefix := testPrefix()
	b.Cleanup(func() { removeLeftovers(prefix) })
	name := nstest.New(b, "vqdt").Name
	m, err := New(name, Options{Prefix: prefix, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	var svcs []Service
	for i := range 50 {
		s := service(fmt.Sprintf("%08x-aaaa-4bbb-8ccc-000000000001", 0xd0000000+i))
		s.NetworkID = fmt.Sprintf("5e2c8a41-7d3b-4f6e-9a1c-%012d", i)
		s.MAC = mac(fmt.Sprintf("fa:16:3e:00:%02x:02", i))
		svcs = append(svcs, s)
	}
	start := time.Now()
	res, err := m.Reconcile(context.Background(), svcs)
	if err != nil || res.Err() != nil {
		b.Fatal(err, res.Err())
	}
	b.Logf("building 50 DHCP namespaces with their servers: %s", time.Since(start).Round(time.Millisecond))
	for b.Loop() {
		res, err := m.Reconcile(context.Background(), svcs)
		if err != nil || len(res.Changes) != 0 {
			b.Fatal(err, res.Changes)
		}
	}
	_, _ = m.Reconcile(context.Background(), nil)
}

package l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns/nstest"
)

// requireRoot skips tests that build namespaces when not run as root.
func requireRoot(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces, veth pairs, bridges and vxlan devices")
}

// testNS is a named network namespace that lives as long as one test.
type testNS struct {
	name string
	fd   netns.NsHandle
	h    *netlink.Handle
}

// newNS creates namespace vl2t-<pid>-<n> and removes it when the test ends,
// pass or fail. Everything a test builds lives in namespaces like this one.
func newNS(t *testing.T) *testNS {
	t.Helper()
	ns := nstest.New(t, "vl2t")
	return &testNS{name: ns.Name, fd: ns.Fd, h: ns.H}
}

// link returns a link of the namespace by name, failing the test if missing.
func (n *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: link %s: %v", n.name, name, err)
	}
	return l
}

// has reports whether the namespace has a link of that name.
func (n *testNS) has(name string) bool {
	_, err := n.h.LinkByName(name)
	return err == nil
}

func (n *testNS) up(t *testing.T, name string) {
	t.Helper()
	if err := n.h.LinkSetUp(n.link(t, name)); err != nil {
		t.Fatalf("%s: set %s up: %v", n.name, name, err)
	}
}

// addr adds an address (CIDR notation) to a link, without IPv6 DAD so it is
// usable at once.
func (n *testNS) addr(t *testing.T, name, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.To4() == nil {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := n.h.AddrAdd(n.link(t, name), a); err != nil {
		t.Fatalf("%s: add %s to %s: %v", n.name, cidr, name, err)
	}
}

// veth creates a veth pair: aName in a, bName in b (which may be a itself).
func veth(t *testing.T, a *testNS, aName string, b *testNS, bName string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName}
	if b != a {
		v.PeerNamespace = netlink.NsFd(int(b.fd))
	}
	if err := a.h.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s: %v", aName, bName, err)
	}
}

// twoHosts returns two host namespaces joined by an underlay veth "ul0"
// carrying 10.99.0.1/24 and 10.99.0.2/24.
func twoHosts(t *testing.T) (h1, h2 *testNS) {
	t.Helper()
	h1, h2 = newNS(t), newNS(t)
	veth(t, h1, "ul0", h2, "ul0")
	for i, h := range []*testNS{h1, h2} {
		h.addr(t, "ul0", fmt.Sprintf("10.99.0.%d/24", i+1))
		h.up(t, "ul0")
	}
	return h1, h2
}

// vm is a namespace playing a virtual machine: its eth0 pairs with a tap on a host.
type vm struct {
	*testNS
	mac net.HardwareAddr
	ips []netip.Addr
}

// newVM creates a VM whose eth0 (with the given addresses, CIDR notation)
// pairs with the tap device on host.
func newVM(t *testing.T, host *testNS, tap string, cidrs ...string) *vm {
	t.Helper()
	v := &vm{testNS: newNS(t)}
	veth(t, host, tap, v.testNS, "eth0")
	for _, c := range cidrs {
		v.addr(t, "eth0", c)
		v.ips = append(v.ips, netip.MustParsePrefix(c).Addr())
	}
	v.up(t, "eth0")
	v.mac = v.link(t, "eth0").Attrs().HardwareAddr
	return v
}

// remote is the l2population view of the VM from another host.
func (v *vm) remote(vtep string) Remote {
	return Remote{MAC: v.mac, IPs: v.ips, VTEP: netip.MustParseAddr(vtep)}
}

// pingCmd finds a ping: iputils' if installed, else busybox's.
func pingCmd(t *testing.T) []string {
	t.Helper()
	if p, err := exec.LookPath("ping"); err == nil {
		return []string{p}
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		return []string{p, "ping"}
	}
	t.Skip("needs ping (iputils-ping) or busybox to send real packets")
	return nil
}

// ping sends one echo request from the namespace and waits a second for the
// reply; it returns the command's error and output.
func (n *testNS) ping(t *testing.T, dst string) error {
	t.Helper()
	args := append([]string{"netns", "exec", n.name}, pingCmd(t)...)
	args = append(args, "-c", "1", "-W", "1", dst)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", dst, n.name, err, out)
	}
	return nil
}

// mustPing fails the test unless dst answers.
func (n *testNS) mustPing(t *testing.T, dst string) {
	t.Helper()
	if err := n.ping(t, dst); err != nil {
		t.Fatal(err)
	}
}

// settle waits up to 3 s until every link that is set up in the namespaces is
// operational too. A veth whose peer was just set up has carrier, but the
// kernel's linkwatch activates its queue, sets its operstate and makes a
// bridge port of it forward only later (up to a second under load); until
// then frames are dropped, the first ARP request of a ping included.
func settle(t *testing.T, nss ...*testNS) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, n := range nss {
		for {
			links, err := n.h.LinkList()
			if err != nil {
				t.Fatal(err)
			}
			idx := slices.IndexFunc(links, func(l netlink.Link) bool {
				a := l.Attrs()
				return a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown
			})
			if idx < 0 {
				break
			}
			if time.Now().After(deadline) {
				a := links[idx].Attrs()
				t.Fatalf("%s: %s is up but operationally %s after 3s", n.name, a.Name, a.OperState)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// flushNeigh empties the namespace's neighbour caches, so the next packet
// needs ARP or neighbour discovery again.
func (n *testNS) flushNeigh(t *testing.T) {
	t.Helper()
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := n.h.NeighList(0, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list {
			if e.State&netlink.NUD_NOARP != 0 || e.State&netlink.NUD_PERMANENT != 0 {
				continue
			}
			if err := n.h.NeighDel(&e); err != nil && !errors.Is(err, unix.ENOENT) {
				t.Fatalf("%s: delete neighbour %s: %v", n.name, e.IP, err)
			}
		}
	}
}

// neighMAC is the MAC the namespace's cache holds for ip, or nil.
func (n *testNS) neighMAC(t *testing.T, ip string) net.HardwareAddr {
	t.Helper()
	want := net.ParseIP(ip)
	list, err := n.h.NeighList(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.IP.Equal(want) && e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT) != 0 {
			return e.HardwareAddr
		}
	}
	return nil
}

// fdb lists the self FDB entries of a device as "mac dst" strings.
func (n *testNS) fdb(t *testing.T, dev string) []string {
	t.Helper()
	list, err := n.h.NeighList(n.link(t, dev).Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		if e.Flags&netlink.NTF_SELF != 0 && e.Flags&netlink.NTF_MASTER == 0 {
			out = append(out, e.HardwareAddr.String()+" "+e.IP.String())
		}
	}
	return sortStrings(out)
}

// neighs lists the permanent neighbour entries of a device as "ip mac" strings.
func (n *testNS) neighs(t *testing.T, dev string) []string {
	t.Helper()
	list, err := n.h.NeighList(n.link(t, dev).Attrs().Index, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		if e.State&netlink.NUD_PERMANENT != 0 {
			out = append(out, e.IP.String()+" "+e.HardwareAddr.String())
		}
	}
	return sortStrings(out)
}

// indexes maps every link of the namespace to its ifindex.
func (n *testNS) indexes(t *testing.T) map[string]int {
	t.Helper()
	links, err := n.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range links {
		out[l.Attrs().Name] = l.Attrs().Index
	}
	return out
}

// manager returns a Manager for the namespace, closed with the test.
func (n *testNS) manager(t *testing.T) *Manager {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	m, err := New(n.name, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// reconcile runs one Reconcile and fails the test on any error, including
// a network's or a tap's.
func reconcile(t *testing.T, m *Manager, d Desired) Result {
	t.Helper()
	res, err := m.Reconcile(t.Context(), d)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("reconcile result: %v", err)
	}
	return res
}

func sortStrings(s []string) []string {
	slices.Sort(s)
	return s
}

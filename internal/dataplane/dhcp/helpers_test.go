package dhcp

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/namedns/nstest"
)

// requireRoot skips tests that build namespaces when not run as root.
func requireRoot(tb testing.TB) {
	tb.Helper()
	nstest.RequireRoot(tb, "network namespaces, veth pairs and a bridge")
}

// requireTool skips a test when a client it drives is not installed.
func requireTool(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Skipf("needs %s (Debian package %s)", name, pkg)
	}
	return p
}

// testNS is a named network namespace that lives as long as one test.
type testNS struct {
	name string
	fd   netns.NsHandle
	h    *netlink.Handle
}

// newNS creates namespace vdhcpt-<pid>-<n> and removes it when the test
// ends, pass or fail. Everything the tests build lives in namespaces like it.
func newNS(tb testing.TB) *testNS {
	tb.Helper()
	ns := nstest.New(tb, "vdhcpt")
	return &testNS{name: ns.Name, fd: ns.Fd, h: ns.H}
}

func (n *testNS) link(tb testing.TB, name string) netlink.Link {
	tb.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		tb.Fatalf("%s: link %s: %v", n.name, name, err)
	}
	return l
}

func (n *testNS) up(tb testing.TB, name string) {
	tb.Helper()
	if err := n.h.LinkSetUp(n.link(tb, name)); err != nil {
		tb.Fatalf("%s: set %s up: %v", n.name, name, err)
	}
}

// addr adds an IPv4 address in CIDR notation to a link.
func (n *testNS) addr(tb testing.TB, name, cidr string) {
	tb.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.h.AddrAdd(n.link(tb, name), a); err != nil {
		tb.Fatalf("%s: add %s to %s: %v", n.name, cidr, name, err)
	}
}

// veth creates a veth pair: aName in a, bName with MAC bMAC (nil: random) in b.
func veth(tb testing.TB, a *testNS, aName string, b *testNS, bName string, bMAC net.HardwareAddr) {
	tb.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerHardwareAddr: bMAC}
	if b != a {
		v.PeerNamespace = netlink.NsFd(int(b.fd))
	}
	if err := a.h.LinkAdd(v); err != nil {
		tb.Fatalf("veth %s/%s: %v", aName, bName, err)
	}
}

// settle waits up to 3 s until every link that is set up in the namespaces
// is operational: until the kernel's linkwatch has run, a fresh veth or
// bridge port drops frames, a client's first DISCOVER included.
func settle(tb testing.TB, nss ...*testNS) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, n := range nss {
		for {
			links, err := n.h.LinkList()
			if err != nil {
				tb.Fatal(err)
			}
			idx := slices.IndexFunc(links, func(l netlink.Link) bool {
				a := l.Attrs()
				return a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown
			})
			if idx < 0 {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%s: %s is up but operationally %s after 3s", n.name, links[idx].Attrs().Name, links[idx].Attrs().OperState)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// lan is one tenant network as the agent builds it: a host namespace with
// the network's bridge, the qdhcp- namespace whose ns0 pairs with a tap on
// that bridge and holds the DHCP port's address, and the Server on ns0.
type lan struct {
	host, dhcp *testNS
	srv        *Server
	taps       int
}

// lanServer is the DHCP port's address on every test network.
var lanServer = prefix("10.20.0.2/24")

// newLAN builds the network and starts a Server answering from tbl.
func newLAN(tb testing.TB, tbl Table) *lan {
	tb.Helper()
	l := &lan{host: newNS(tb), dhcp: newNS(tb)}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := l.host.h.LinkAdd(br); err != nil {
		tb.Fatalf("bridge: %v", err)
	}
	l.host.up(tb, "br0")
	l.plug(tb, l.dhcp, "ns0", nil)
	l.dhcp.addr(tb, "ns0", lanServer.String())
	settle(tb, l.host, l.dhcp)
	l.srv = NewServer(tbl, ServerOptions{Logger: slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err := l.srv.Start(l.dhcp.name, "ns0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.srv.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return l
}

// plug pairs device name (with MAC hw, nil for random) in namespace n with a
// new tap on the bridge, and sets both up.
func (l *lan) plug(tb testing.TB, n *testNS, name string, hw net.HardwareAddr) {
	tb.Helper()
	l.taps++
	tap := fmt.Sprintf("tap%d", l.taps)
	veth(tb, l.host, tap, n, name, hw)
	if err := l.host.h.LinkSetMaster(l.host.link(tb, tap), l.host.link(tb, "br0")); err != nil {
		tb.Fatalf("enslave %s: %v", tap, err)
	}
	l.host.up(tb, tap)
	n.up(tb, name)
}

// addVM makes a VM namespace whose eth0 has the given MAC, on the network.
func (l *lan) addVM(tb testing.TB, hw string) *testNS {
	tb.Helper()
	vm := newNS(tb)
	l.plug(tb, vm, "eth0", mac(hw))
	settle(tb, l.host, vm)
	return vm
}

// record is one call of a client's script: the variables it was given.
type record map[string]string

// readRecords parses the blocks a recording script appended to path: one
// "key=value" per line, each block ended by a line ".".
func readRecords(tb testing.TB, path string) []record {
	tb.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var (
		out []record
		cur = record{}
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "." {
			out = append(out, cur)
			cur = record{}
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		cur[k] = v
	}
	return out
}

// waitRecord waits until the script has recorded a call whose event
// variable (ev) is one of want, and returns it; calls before it are skipped
// by passing how many records were already seen.
func waitRecord(tb testing.TB, path, ev string, seen int, timeout time.Duration, want ...string) (record, int) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := readRecords(tb, path)
		for i := seen; i < len(recs); i++ {
			if slices.Contains(want, recs[i][ev]) {
				return recs[i], i + 1
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %v record within %s; records: %v", want, timeout, recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeScript writes an executable shell script into dir.
func writeScript(tb testing.TB, dir, name, body string) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

// netipOf converts a library address for comparisons.
func netipOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// quietLogger logs warnings and errors only, to the test's output.
func quietLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// writeFile writes a test file, failing the test on error.
func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

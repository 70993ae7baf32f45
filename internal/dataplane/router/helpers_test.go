package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
	"github.com/vland/vland/internal/namedns/nstest"
)

// The root tests build, inside namespaces of their own, what an agent's
// host looks like: a "host" namespace with Linux bridges for the tenant
// networks and the external network (where the L2 code would put them),
// VMs as namespaces whose eth0 is paired with a port on a bridge, and an
// "outside" namespace on the external bridge playing the internet at
// 203.0.113.1 (with 198.51.100.7 behind it). The Manager under test builds
// the router namespaces; the test enslaves their taps as package l2 would.

var nsSeq atomic.Int64

// requireRoot skips tests that build namespaces when not run as root.
func requireRoot(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces, veth pairs, bridges and nftables tables")
}

// testbed is one test's host and what hangs off it.
type testbed struct {
	t      *testing.T
	host   *nstest.NS
	prefix string // the Manager's namespace prefix
	m      *Manager
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	requireRoot(t)
	prefix := fmt.Sprintf("vrt%d-%d-", os.Getpid(), nsSeq.Add(1))
	t.Cleanup(func() {
		// A failed test may leave router namespaces behind: remove them,
		// and fail the test if a passing one did.
		names, _ := namedns.WithPrefix(prefix)
		for _, n := range names {
			_ = namedns.Delete(n)
		}
		if len(names) > 0 && !t.Failed() {
			t.Errorf("namespaces left behind: %v", names)
		}
	})
	tb := &testbed{t: t, host: nstest.New(t, "vrth"), prefix: prefix}
	tb.m = tb.newManager()
	return tb
}

func (tb *testbed) newManager() *Manager {
	tb.t.Helper()
	m, err := NewManager(Options{HostNS: tb.host.Name, NamespacePrefix: tb.prefix, Logger: testLogger(tb.t)})
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() { m.Close() })
	return m
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// bridge creates an up bridge in the host namespace, without IPv6
// addresses (the host stays off tenant networks).
func (tb *testbed) bridge(name string) {
	tb.t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = name
	br := &netlink.Bridge{LinkAttrs: la}
	if err := tb.host.H.LinkAdd(br); err != nil {
		tb.t.Fatalf("bridge %s: %v", name, err)
	}
	l, err := tb.host.H.LinkByName(name)
	if err == nil {
		err = tb.host.H.LinkSetIP6AddrGenMode(l, nl.IN6_ADDR_GEN_MODE_NONE)
	}
	if err == nil {
		err = tb.host.H.LinkSetUp(l)
	}
	if err != nil {
		tb.t.Fatalf("bridge %s: %v", name, err)
	}
}

// plug enslaves a host-side device to a bridge and sets it up: what the
// agent's L2 code does with every tap.
func (tb *testbed) plug(dev, bridge string) {
	tb.t.Helper()
	h := tb.host.H
	l, err := h.LinkByName(dev)
	if err != nil {
		tb.t.Fatalf("plug %s: %v", dev, err)
	}
	br, err := h.LinkByName(bridge)
	if err != nil {
		tb.t.Fatalf("plug %s: %v", dev, err)
	}
	if err := h.LinkSetMaster(l, br); err != nil {
		tb.t.Fatalf("enslave %s to %s: %v", dev, bridge, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		tb.t.Fatalf("set %s up: %v", dev, err)
	}
}

// plugRouter plugs a router's taps: interfaces onto the given bridges (in
// order), the gateway onto ext.
func (tb *testbed) plugRouter(r Router, ext string, bridges ...string) {
	tb.t.Helper()
	for i, itf := range r.Interfaces {
		tb.plug(TapName(itf.PortID), bridges[i])
	}
	if r.Gateway != nil {
		tb.plug(TapName(r.Gateway.PortID), ext)
	}
}

// node is a namespace with eth0 on a bridge of the host: a VM, an
// appliance or the outside.
type node struct {
	name string
	ns   *nstest.NS
}

// node creates a namespace whose eth0 (addresses addrs) is paired with
// <hostDev> on bridge, with default routes via gws.
func (tb *testbed) node(name, hostDev, bridge string, addrs []netip.Prefix, gws ...netip.Addr) *node {
	tb.t.Helper()
	ns := nstest.New(tb.t, "vrtn")
	la := netlink.NewLinkAttrs()
	la.Name = hostDev
	v := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Fd))}
	if err := tb.host.H.LinkAdd(v); err != nil {
		tb.t.Fatalf("%s: veth: %v", name, err)
	}
	if l, err := tb.host.H.LinkByName(hostDev); err == nil {
		_ = tb.host.H.LinkSetIP6AddrGenMode(l, nl.IN6_ADDR_GEN_MODE_NONE)
	}
	tb.plug(hostDev, bridge)
	eth, err := ns.H.LinkByName("eth0")
	if err != nil {
		tb.t.Fatal(err)
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: prefixNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := ns.H.AddrAdd(eth, addr); err != nil {
			tb.t.Fatalf("%s: address %s: %v", name, a, err)
		}
	}
	if err := ns.H.LinkSetUp(eth); err != nil {
		tb.t.Fatal(err)
	}
	for _, gw := range gws {
		if err := ns.H.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			tb.t.Fatalf("%s: default route via %s: %v", name, gw, err)
		}
	}
	return &node{name: name, ns: ns}
}

// addLo adds an address to a node's lo (a host behind it).
func (n *node) addLo(t *testing.T, a netip.Prefix) {
	t.Helper()
	lo, err := n.ns.H.LinkByName("lo")
	if err == nil {
		err = n.ns.H.AddrAdd(lo, &netlink.Addr{IPNet: prefixNet(a)})
	}
	if err != nil {
		t.Fatalf("%s: lo address %s: %v", n.name, a, err)
	}
}

// listen opens a TCP listener inside a namespace.
func listen(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := namedns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveWho serves HTTP on addr inside a namespace, answering every request
// with "<name>:<local port> <caller's address>".
func serveWho(t *testing.T, ns, name, addr string) {
	t.Helper()
	ln := listen(t, ns, addr)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		_, port, _ := net.SplitHostPort(local.String())
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "%s:%s %s", name, port, host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// dialIn connects to addr from inside a namespace.
func dialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := namedns.Do(ns, func() (err error) {
		d := net.Dialer{}
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// get fetches http://addr/ from inside a namespace.
func get(ns, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
		return dialIn(ctx, ns, a)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// expectGet fails the test unless GET http://addr/ from ns answers want.
func expectGet(t *testing.T, from *node, addr, want string) {
	t.Helper()
	t0 := time.Now()
	got, err := get(from.ns.Name, addr, 3*time.Second)
	if d := time.Since(t0); d > 300*time.Millisecond {
		t.Logf("%s -> %s took %v", from.name, addr, d.Round(time.Millisecond))
	}
	if err != nil {
		t.Errorf("%s -> %s: %v (want %q)", from.name, addr, err, want)
		return
	}
	if got != want {
		t.Errorf("%s -> %s: answered %q, want %q", from.name, addr, got, want)
	}
}

// expectNoGet fails the test if GET http://addr/ from ns answers at all.
func expectNoGet(t *testing.T, from *node, addr string) {
	t.Helper()
	if got, err := get(from.ns.Name, addr, 700*time.Millisecond); err == nil {
		t.Errorf("%s -> %s: answered %q, want no answer", from.name, addr, got)
	}
}

// echoServer accepts TCP connections inside a namespace, answers each line
// with "<name> <line>" and hands every accepted connection to the test.
type echoServer struct {
	name  string
	conns chan net.Conn
}

func serveEcho(t *testing.T, ns, name, addr string) *echoServer {
	t.Helper()
	ln := listen(t, ns, addr)
	e := &echoServer{name: name, conns: make(chan net.Conn, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.conns <- c
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s %s\n", name, sc.Text())
				}
			}()
		}
	}()
	return e
}

// accepted returns the server side of the next connection.
func (e *echoServer) accepted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-e.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(3 * time.Second):
		t.Fatalf("%s accepted no connection", e.name)
		return nil
	}
}

// roundTrip sends a line on c and returns the answer.
func roundTrip(c net.Conn, line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	s, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(s), err
}

// waitFor polls cond every 10 ms until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reconcile runs one Reconcile and fails the test on any router error.
func reconcile(t *testing.T, m *Manager, routers ...Router) Result {
	t.Helper()
	res, err := m.Reconcile(context.Background(), Desired{Routers: routers})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	for id, st := range res.Routers {
		if !st.Ready {
			t.Fatalf("router %s not ready: %+v", id, st)
		}
	}
	return res
}

// sysctlIn reads /proc/sys/net/<key> inside a namespace.
func sysctlIn(t *testing.T, ns, key string) string {
	t.Helper()
	var v []byte
	err := namedns.Do(ns, func() (err error) {
		v, err = os.ReadFile("/proc/sys/net/" + key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

// neighMAC is the MAC a namespace's neighbour table has for ip ("" none).
func neighMAC(h *netlink.Handle, ip netip.Addr) (string, error) {
	list, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		return "", err
	}
	for _, n := range list {
		if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip && n.HardwareAddr != nil {
			return n.HardwareAddr.String(), nil
		}
	}
	return "", nil
}

// isReset reports whether err is a connection reset (or the EOF a closed
// one reads as).
func isReset(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection reset"))
}

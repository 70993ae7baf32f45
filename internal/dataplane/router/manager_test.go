package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/vland/vland/internal/namedns"
)

const (
	rtrA   = "a0a0a0a0-0000-4000-8000-00000000000a"
	rtrB   = "b0b0b0b0-0000-4000-8000-00000000000b"
	portA1 = "a1a1a1a1-0000-4000-8000-000000000001"
	portA2 = "a2a2a2a2-0000-4000-8000-000000000002"
	portAG = "a9a9a9a9-0000-4000-8000-000000000009"
	portB1 = "b1b1b1b1-0000-4000-8000-000000000001"
	portBG = "b9b9b9b9-0000-4000-8000-000000000009"
)

// dataPlaneRouter is router A of TestRouterDataPlane: two subnets, SNAT,
// a floating IP for vm2, forwards to vm1 and vm2, an extra route to the
// appliance's 172.16.50.0/24 and the metadata redirect.
func dataPlaneRouter() Router {
	return Router{
		ID: rtrA,
		Interfaces: []Interface{
			{PortID: portA1, MAC: mustMAC("fa:16:3e:0a:01:01"), Addrs: pfxs("10.0.1.1/24", "fd00:1::1/64"), MTU: 1500},
			{PortID: portA2, MAC: mustMAC("fa:16:3e:0a:02:01"), Addrs: pfxs("10.0.2.1/24", "fd00:2::1/64"), MTU: 1500},
		},
		Gateway: &Gateway{PortID: portAG, MAC: mustMAC("fa:16:3e:0a:09:01"), Addrs: pfxs("203.0.113.10/24"), MTU: 1500,
			DefaultGateways: []netip.Addr{ip("203.0.113.1")}, EnableSNAT: true},
		Routes:      []Route{{Destination: pfx("172.16.50.0/24"), NextHop: ip("10.0.2.50")}},
		FloatingIPs: []FloatingIP{{FloatingIP: ip("203.0.113.21"), FixedIP: ip("10.0.1.12")}},
		PortForwards: []PortForward{
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 8080, InternalIP: ip("10.0.1.11"), InternalPortMin: 80},
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 8081, InternalIP: ip("10.0.1.12"), InternalPortMin: 80},
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 9000, ExternalPortMax: 9002, InternalIP: ip("10.0.1.12"), InternalPortMin: 7000, InternalPortMax: 7002},
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 9100, ExternalPortMax: 9105, InternalIP: ip("10.0.1.11"), InternalPortMin: 80},
			// Every port, one by one: 65535 map elements.
			{FloatingIP: ip("203.0.113.31"), Protocol: "tcp", ExternalPortMin: 1, ExternalPortMax: 65535, InternalIP: ip("10.0.1.12"), InternalPortMin: 1, InternalPortMax: 65535},
		},
		MetadataPort: 9697,
	}
}

// TestRouterDataPlane builds one router between two tenant subnets and the
// outside and proves each of its functions with real connections, then
// moves and removes its floating IP, repairs what is broken by hand, and
// removes it.
func TestRouterDataPlane(t *testing.T) {
	tb := newTestbed(t)
	t.Parallel()
	for _, b := range []string{"brn1", "brn2", "brx"} {
		tb.bridge(b)
	}
	vm1 := tb.node("vm1", "hvm1", "brn1", pfxs("10.0.1.11/24", "fd00:1::11/64"), ip("10.0.1.1"), ip("fd00:1::1"))
	vm2 := tb.node("vm2", "hvm2", "brn1", pfxs("10.0.1.12/24"), ip("10.0.1.1"))
	vm3 := tb.node("vm3", "hvm3", "brn2", pfxs("10.0.2.13/24", "fd00:2::13/64"), ip("10.0.2.1"), ip("fd00:2::1"))
	appl := tb.node("appliance", "happl", "brn2", pfxs("10.0.2.50/24"), ip("10.0.2.1"))
	appl.addLo(t, pfx("172.16.50.1/32"))
	out := tb.node("outside", "hout", "brx", pfxs("203.0.113.1/24"))
	out.addLo(t, pfx("198.51.100.7/32"))
	for _, n := range []*node{vm1, vm2, vm3, appl, out} {
		serveWho(t, n.ns.Name, n.name, ":80")
	}
	for p := 7000; p <= 7002; p++ {
		serveWho(t, vm2.ns.Name, vm2.name, fmt.Sprintf(":%d", p))
	}
	echo1 := serveEcho(t, vm1.ns.Name, "vm1", ":7")
	echo2 := serveEcho(t, vm2.ns.Name, "vm2", ":7")

	r := dataPlaneRouter()
	res := reconcile(t, tb.m, r)
	if len(res.Changes) == 0 {
		t.Fatal("first reconcile changed nothing")
	}
	nsName := NamespaceName(tb.prefix, rtrA)
	if st := res.Routers[rtrA]; st.Namespace != nsName || len(st.Skipped) > 0 {
		t.Fatalf("status %+v", st)
	}
	tb.plugRouter(r, "brx", "brn1", "brn2")
	serveWho(t, nsName, "meta", ":9697")

	t.Run("idempotent", func(t *testing.T) {
		if res := reconcile(t, tb.m, r); len(res.Changes) > 0 {
			t.Errorf("second reconcile changed %v", res.Changes)
		}
		// A restarted agent finds everything right and changes nothing.
		m2 := tb.newManager()
		if res := reconcile(t, m2, r); len(res.Changes) > 0 {
			t.Errorf("a new manager changed %v", res.Changes)
		}
		m2.Close()
	})
	t.Run("sysctls", func(t *testing.T) {
		for key, want := range map[string]string{"ipv4/ip_forward": "1", "ipv6/conf/all/forwarding": "1", "ipv4/conf/all/arp_ignore": "1"} {
			if got := sysctlIn(t, nsName, key); got != want {
				t.Errorf("%s = %s, want %s", key, got, want)
			}
		}
	})
	t.Run("table matches nft", func(t *testing.T) { checkNftListing(t, nsName, mustPlan(t, r)) })
	t.Run("east-west", func(t *testing.T) {
		expectGet(t, vm1, "10.0.2.13", "vm3:80 10.0.1.11")
		expectGet(t, vm3, "10.0.1.12", "vm2:80 10.0.2.13")
		expectGet(t, vm1, "[fd00:2::13]", "vm3:80 fd00:1::11")
	})
	t.Run("snat", func(t *testing.T) {
		expectGet(t, vm1, "198.51.100.7", "outside:80 203.0.113.10")
		expectGet(t, vm3, "198.51.100.7", "outside:80 203.0.113.10")
		expectGet(t, vm1, "203.0.113.1", "outside:80 203.0.113.10")
	})
	t.Run("floating ip", func(t *testing.T) {
		expectGet(t, out, "203.0.113.21", "vm2:80 203.0.113.1")
		expectGet(t, vm2, "198.51.100.7", "outside:80 203.0.113.21")
	})
	t.Run("port forwards", func(t *testing.T) {
		expectGet(t, out, "203.0.113.30:8080", "vm1:80 203.0.113.1")
		expectGet(t, out, "203.0.113.30:8081", "vm2:80 203.0.113.1")
		expectGet(t, out, "203.0.113.30:9000", "vm2:7000 203.0.113.1")
		expectGet(t, out, "203.0.113.30:9002", "vm2:7002 203.0.113.1")
		expectGet(t, out, "203.0.113.30:9103", "vm1:80 203.0.113.1")
		expectNoGet(t, out, "203.0.113.30:9106")
		expectGet(t, out, "203.0.113.31:7001", "vm2:7001 203.0.113.1")
		expectGet(t, out, "203.0.113.31", "vm2:80 203.0.113.1")
	})
	t.Run("extra route", func(t *testing.T) {
		expectGet(t, vm1, "172.16.50.1", "appliance:80 10.0.1.11")
	})
	t.Run("hairpin", func(t *testing.T) {
		expectGet(t, vm1, "203.0.113.21", "vm2:80 203.0.113.10")
		expectGet(t, vm2, "203.0.113.21", "vm2:80 203.0.113.21")
		expectGet(t, vm3, "203.0.113.21", "vm2:80 203.0.113.10")
		expectGet(t, vm2, "203.0.113.30:8080", "vm1:80 203.0.113.21")
	})
	t.Run("metadata", func(t *testing.T) {
		expectGet(t, vm1, "169.254.169.254", "meta:9697 10.0.1.11")
		expectGet(t, vm3, "169.254.169.254", "meta:9697 10.0.2.13")
		expectNoGet(t, out, "203.0.113.10:9697")
		expectNoGet(t, vm1, "10.0.1.1:9697")
	})

	t.Run("re-association", func(t *testing.T) {
		// An open connection through the floating IP to vm2 ...
		c, err := dialIn(context.Background(), out.ns.Name, "203.0.113.21:7")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := roundTrip(c, "a"); err != nil || got != "vm2 a" {
			t.Fatalf("echo before: %q %v", got, err)
		}
		echo2.accepted(t)
		// ... and the floating IP moves to vm1.
		r.FloatingIPs[0].FixedIP = ip("10.0.1.11")
		res := reconcile(t, tb.m, r)
		if res.Routers[rtrA].FlushedFlows == 0 {
			t.Errorf("no conntrack entry flushed; changes %v", res.Changes)
		}
		expectGet(t, out, "203.0.113.21", "vm1:80 203.0.113.1")
		expectGet(t, vm1, "198.51.100.7", "outside:80 203.0.113.21")
		expectGet(t, vm2, "198.51.100.7", "outside:80 203.0.113.10")
		// The old connection's packets now reach vm1, which resets it.
		if got, err := roundTrip(c, "b"); !isReset(err) {
			t.Errorf("old connection after re-association: %q, %v (want a reset)", got, err)
		}
	})

	t.Run("disassociation", func(t *testing.T) {
		c, err := dialIn(context.Background(), out.ns.Name, "203.0.113.21:7")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := roundTrip(c, "c"); err != nil || got != "vm1 c" {
			t.Fatalf("echo before: %q %v", got, err)
		}
		srv := echo1.accepted(t)
		r.FloatingIPs = nil
		reconcile(t, tb.m, r)
		expectNoGet(t, out, "203.0.113.21")
		expectGet(t, vm1, "198.51.100.7", "outside:80 203.0.113.10")
		// What vm1 sends on the open connection now leaves SNATed to the
		// gateway address: the outside knows no such connection and resets
		// it, and sees nothing of it on its own end.
		waitFor(t, 3*time.Second, "vm1's end of the connection reset", func() error {
			_ = srv.SetDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := fmt.Fprintf(srv, "late\n"); err != nil {
				if isReset(err) || strings.Contains(err.Error(), "broken pipe") {
					return nil
				}
				return err
			}
			if _, err := srv.Read(make([]byte, 64)); isReset(err) {
				return nil
			}
			return fmt.Errorf("still open")
		})
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil || strings.Contains(line, "late") {
			t.Errorf("the outside still receives on the cut connection: %q %v", line, err)
		}
	})

	t.Run("repairs", func(t *testing.T) {
		// The table deleted, a floating address removed, a tap deleted and
		// a sysctl reset by hand: the next reconcile puts each back.
		r.FloatingIPs = []FloatingIP{{FloatingIP: ip("203.0.113.21"), FixedIP: ip("10.0.1.12")}}
		reconcile(t, tb.m, r)
		nsh, ok, err := namedns.OpenBound(nsName)
		if err != nil || !ok {
			t.Fatalf("open %s: %v", nsName, err)
		}
		defer nsh.Close()
		c, err := nftables.New(nftables.WithNetNSFd(int(nsh)))
		if err != nil {
			t.Fatal(err)
		}
		c.DelTable(newTable())
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		rn, err := openRouterNS(nsName, false)
		if err != nil {
			t.Fatal(err)
		}
		defer rn.close()
		qg, err := rn.nh.LinkByName(GatewayDeviceName(portAG))
		if err != nil {
			t.Fatal(err)
		}
		if err := rn.nh.AddrDel(qg, &netlink.Addr{IPNet: prefixNet(pfx("203.0.113.21/32"))}); err != nil {
			t.Fatal(err)
		}
		tap, err := tb.host.H.LinkByName(TapName(portA2))
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.host.H.LinkDel(tap); err != nil {
			t.Fatal(err)
		}
		if err := namedns.Do(nsName, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0o644) }); err != nil {
			t.Fatal(err)
		}
		res := reconcile(t, tb.m, r)
		for _, want := range []string{"replace table", "add address 203.0.113.21/32", "create veth " + TapName(portA2), "ipv4.ip_forward = 1"} {
			if !slices.ContainsFunc(res.Changes, func(c string) bool { return strings.Contains(c, want) }) {
				t.Errorf("no change %q among %v", want, res.Changes)
			}
		}
		tb.plug(TapName(portA2), "brn2")
		expectGet(t, out, "203.0.113.21", "vm2:80 203.0.113.1")
		expectGet(t, vm3, "198.51.100.7", "outside:80 203.0.113.10")
		if res := reconcile(t, tb.m, r); len(res.Changes) > 0 {
			t.Errorf("reconcile after repairs changed %v", res.Changes)
		}
	})

	t.Run("removal", func(t *testing.T) {
		res := reconcile(t, tb.m)
		if !slices.ContainsFunc(res.Changes, func(c string) bool { return strings.Contains(c, "delete namespace "+nsName) }) {
			t.Errorf("changes %v", res.Changes)
		}
		if namedns.Exists(nsName) {
			t.Errorf("%s still exists", nsName)
		}
		for _, tap := range r.TapNames() {
			if _, err := tb.host.H.LinkByName(tap); err == nil {
				t.Errorf("%s still exists", tap)
			}
		}
		if res := reconcile(t, tb.m); len(res.Changes) > 0 {
			t.Errorf("reconcile of nothing changed %v", res.Changes)
		}
		expectNoGet(t, out, "203.0.113.30:8080")
	})
}

// twoRouter is a router with one interface on 10.0.0.0/24 and a gateway
// with SNAT: TestTwoRouters has two, with the same tenant subnet.
func twoRouter(id, port, gwPort string, n byte) Router {
	return Router{
		ID:         id,
		Interfaces: []Interface{{PortID: port, MAC: mustMAC(fmt.Sprintf("fa:16:3e:0%d:01:01", n)), Addrs: pfxs("10.0.0.1/24")}},
		Gateway: &Gateway{PortID: gwPort, MAC: mustMAC(fmt.Sprintf("fa:16:3e:0%d:09:01", n)),
			Addrs: pfxs(fmt.Sprintf("203.0.113.%d/24", 10+n)), DefaultGateways: []netip.Addr{ip("203.0.113.1")}, EnableSNAT: true},
	}
}

// TestTwoRouters runs two routers whose tenant networks are both
// 10.0.0.0/24 (two projects) side by side, then moves a floating IP from
// one to the other: the outside's neighbour entry follows at once.
func TestTwoRouters(t *testing.T) {
	tb := newTestbed(t)
	t.Parallel()
	for _, b := range []string{"brA", "brB", "brx"} {
		tb.bridge(b)
	}
	vmA := tb.node("vmA", "hvma", "brA", pfxs("10.0.0.5/24"), ip("10.0.0.1"))
	vmB := tb.node("vmB", "hvmb", "brB", pfxs("10.0.0.5/24"), ip("10.0.0.1"))
	out := tb.node("outside", "hout", "brx", pfxs("203.0.113.1/24"))
	out.addLo(t, pfx("198.51.100.7/32"))
	for _, n := range []*node{vmA, vmB, out} {
		serveWho(t, n.ns.Name, n.name, ":80")
	}
	rA, rB := twoRouter(rtrA, portA1, portAG, 1), twoRouter(rtrB, portB1, portBG, 2)
	reconcile(t, tb.m, rA, rB)
	tb.plugRouter(rA, "brx", "brA")
	tb.plugRouter(rB, "brx", "brB")

	t.Run("overlapping snat", func(t *testing.T) {
		errs := make(chan error, 20)
		for range 10 {
			for _, c := range []struct {
				vm   *node
				want string
			}{{vmA, "outside:80 203.0.113.11"}, {vmB, "outside:80 203.0.113.12"}} {
				go func() {
					got, err := get(c.vm.ns.Name, "198.51.100.7", 5*time.Second)
					if err == nil && got != c.want {
						err = fmt.Errorf("%s got %q, want %q", c.vm.name, got, c.want)
					}
					errs <- err
				}()
			}
		}
		for range 20 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("floating ip moves between routers", func(t *testing.T) {
		fip := ip("203.0.113.40")
		rA.FloatingIPs = []FloatingIP{{FloatingIP: fip, FixedIP: ip("10.0.0.5")}}
		reconcile(t, tb.m, rA, rB)
		expectGet(t, out, fip.String(), "vmA:80 203.0.113.1")
		if mac, err := neighMAC(out.ns.H, fip); err != nil || mac != rA.Gateway.MAC.String() {
			t.Fatalf("outside's neighbour entry for %s: %q %v, want %s", fip, mac, err, rA.Gateway.MAC)
		}
		rA.FloatingIPs, rB.FloatingIPs = nil, rA.FloatingIPs
		moved := time.Now()
		reconcile(t, tb.m, rA, rB)
		waitFor(t, time.Second, "the outside learns the floating IP's new place", func() error {
			mac, err := neighMAC(out.ns.H, fip)
			if err == nil && mac != rB.Gateway.MAC.String() {
				err = fmt.Errorf("neighbour entry %s, want %s", mac, rB.Gateway.MAC)
			}
			return err
		})
		t.Logf("neighbour entry updated %v after the move", time.Since(moved).Round(time.Millisecond))
		expectGet(t, out, fip.String(), "vmB:80 203.0.113.1")
		expectGet(t, vmB, "198.51.100.7", "outside:80 203.0.113.40")
		expectGet(t, vmA, "198.51.100.7", "outside:80 203.0.113.11")
		rn, err := openRouterNS(NamespaceName(tb.prefix, rtrA), false)
		if err != nil || rn == nil {
			t.Fatalf("open router A: %v", err)
		}
		defer rn.close()
		qg, err := rn.nh.LinkByName(GatewayDeviceName(portAG))
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := rn.nh.AddrList(qg, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if a.IP.String() == fip.String() {
				t.Errorf("router A still holds %s", fip)
			}
		}
	})

	t.Run("removal of one", func(t *testing.T) {
		reconcile(t, tb.m, rB)
		if namedns.Exists(NamespaceName(tb.prefix, rtrA)) {
			t.Error("router A's namespace is still there")
		}
		for _, tap := range rA.TapNames() {
			if _, err := tb.host.H.LinkByName(tap); err == nil {
				t.Errorf("%s still exists", tap)
			}
		}
		expectGet(t, vmB, "198.51.100.7", "outside:80 203.0.113.40")
		reconcile(t, tb.m)
	})
}

// TestForeignNamespaces: namespaces of another prefix, or not routers, are
// never touched; invalid routers are reported and build nothing.
func TestForeignNamespaces(t *testing.T) {
	tb := newTestbed(t)
	t.Parallel()
	foreign := strings.TrimSuffix(tb.prefix, "-") + "x-" + NamespaceInfix + rtrA
	other := tb.prefix + "qdhcp-" + rtrA
	for _, n := range []string{foreign, other} {
		if err := namedns.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = namedns.Delete(n) })
	}
	bad := twoRouter(rtrB, portB1, portBG, 2)
	bad.Interfaces[0].MAC = mustMAC("01:00:5e:00:00:01")
	res, err := tb.m.Reconcile(context.Background(), Desired{Routers: []Router{twoRouter(rtrA, portA1, portAG, 1), bad}})
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Routers[rtrB]; st.Err == nil || st.Ready {
		t.Errorf("invalid router: %+v", st)
	}
	if st := res.Routers[rtrA]; st.Err != nil || !st.Ready {
		t.Errorf("valid router: %+v", st)
	}
	if namedns.Exists(NamespaceName(tb.prefix, rtrB)) {
		t.Error("the invalid router got a namespace")
	}
	reconcile(t, tb.m)
	for _, n := range []string{foreign, other} {
		if !namedns.Exists(n) {
			t.Errorf("%s was removed", n)
		}
	}
}

// checkNftListing compares the rules nft lists for the router's table with
// the rendering, chain by chain: the text of the golden files is what the
// expressions really are.
func checkNftListing(t *testing.T, ns string, p *plan) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("nft is not installed")
	}
	var out bytes.Buffer
	cmd := exec.Command(nft, "list", "table", "ip", TableName)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := namedns.Do(ns, cmd.Start); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("nft list: %v\n%s", err, out.String())
	}
	listed := map[string][]string{}
	chain := ""
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "chain "):
			chain = strings.TrimSuffix(strings.TrimPrefix(line, "chain "), " {")
		case line == "}":
			chain = ""
		case chain != "" && line != "" && !strings.HasPrefix(line, "type "):
			listed[chain] = append(listed[chain], line)
		}
	}
	rs := render(p)
	for _, c := range rs.chains {
		var want []string
		for _, r := range c.rules {
			want = append(want, r.text)
		}
		if strings.Join(listed[c.chain.Name], "\n") != strings.Join(want, "\n") {
			t.Errorf("chain %s: nft lists\n%s\nrendered\n%s", c.chain.Name, strings.Join(listed[c.chain.Name], "\n"), strings.Join(want, "\n"))
		}
	}
	if st := listed[chainState]; len(st) != 1 || !strings.Contains(st[0], rs.digest()) {
		t.Errorf("state chain %q does not carry digest %s", st, rs.digest())
	}
	elems := listedElements(out.String())
	for _, s := range rs.sets {
		if len(elems[s.set.Name]) != len(s.texts) {
			t.Errorf("map %s: nft lists %d elements, rendered %d", s.set.Name, len(elems[s.set.Name]), len(s.texts))
		}
		for _, e := range s.texts {
			if !elems[s.set.Name][e] {
				t.Errorf("map %s: element %q not listed", s.set.Name, e)
			}
		}
	}
}

// listedElements parses the elements of each map out of `nft list table`.
func listedElements(listing string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, block := range strings.Split(listing, "\tmap ")[1:] {
		name, rest, _ := strings.Cut(block, " {")
		out[name] = map[string]bool{}
		_, elems, ok := strings.Cut(rest, "elements = {")
		if !ok {
			continue
		}
		elems, _, _ = strings.Cut(elems, "}")
		for _, e := range strings.Split(elems, ",") {
			if e = strings.Join(strings.Fields(e), " "); e != "" {
				out[name][e] = true
			}
		}
	}
	return out
}

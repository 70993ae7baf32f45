package secgroup

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
)

// TestStatelessGroupNeedsBothDirections: a port in a stateless group gets
// no conntrack: an ingress rule alone does not let the replies out, and
// connections it opens get no replies in unless a rule lets them.
func TestStatelessGroupNeedsBothDirections(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqsl")
	a := h.vm(t, "brqsl", 1, "10.64.0.1/24")
	b := h.vm(t, "brqsl", 1, "10.64.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	// a is stateful and lets its subnet in: b's packets reach it untracked.
	client := Group{ID: "client", Stateful: true, Rules: []Rule{
		{ID: "ce", Direction: Egress, Ethertype: IPv4},
		{ID: "ci", Direction: Ingress, Ethertype: IPv4, RemoteIPPrefix: pfx("10.64.0.0/24")},
	}}
	sl := Group{ID: "sl", Stateful: false, Rules: []Rule{tcpIn("in5000", 5000)}}
	d := Desired{Ports: []Port{a.withGroups("client"), b.withGroups("sl")}, Groups: map[string]Group{"client": client, "sl": sl}}
	h.reconcile(t, d)
	b.listen(t, 5000)
	a.listen(t, 80)
	a.cannotConnect(t, b.ip(0), 5000) // the SYN gets in, the SYN-ACK not out

	sl.Rules = append(sl.Rules, Rule{ID: "out", Direction: Egress, Ethertype: IPv4, Protocol: "tcp"})
	d.Groups["sl"] = sl
	h.reconcile(t, d)
	a.canConnect(t, b.ip(0), 5000)
	// b's own connection out: the SYN leaves, the SYN-ACK is not
	// "established" for a port without conntrack, and no rule lets it in.
	b.cannotConnect(t, a.ip(0), 80)

	// The same group made stateful lets that reply in.
	sl.Stateful = true
	d.Groups["sl"] = sl
	h.reconcile(t, d)
	b.canConnect(t, a.ip(0), 80)
}

// TestEstablishedConnectionSurvivesUnrelatedChangesDiesWithItsRule: an open
// TCP connection keeps working while other rules come and go, and stops
// when the rule that allowed it is removed, or when its port leaves the
// group that has the rule.
func TestEstablishedConnectionSurvivesUnrelatedChangesDiesWithItsRule(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqest")
	a := h.vm(t, "brqest", 1, "10.65.0.1/24")
	srv := h.vm(t, "brqest", 1, "10.65.0.2/24")
	settle(t, h.NS, a.NS, srv.NS)
	srv.listen(t, 22)
	out := Group{ID: "out", Stateful: true, Rules: []Rule{{ID: "e", Direction: Egress, Ethertype: IPv4}}}
	ssh := Group{ID: "ssh", Stateful: true, Rules: []Rule{tcpIn("ssh", 22), tcpIn("http", 80)}}
	d := Desired{Ports: []Port{a.withGroups("out"), srv.withGroups("out", "ssh")}, Groups: map[string]Group{"out": out, "ssh": ssh}}
	h.reconcile(t, d)

	conn, err := a.dial(netip.Addr{}, srv.ip(0), 22, okWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echo(conn, okWait); err != nil {
		t.Fatalf("echo before any change: %v", err)
	}
	ssh.Rules = []Rule{tcpIn("ssh", 22)} // the http rule goes
	d.Groups["ssh"] = ssh
	res := h.reconcile(t, d)
	if res.ConntrackDeleted != 0 {
		t.Errorf("removing the http rule cut %d connections", res.ConntrackDeleted)
	}
	if err := echo(conn, okWait); err != nil {
		t.Fatalf("echo after an unrelated rule went: %v", err)
	}
	ssh.Rules = append(ssh.Rules, tcpIn("smtp", 25))
	d.Groups["ssh"] = ssh
	h.reconcile(t, d)
	if err := echo(conn, okWait); err != nil {
		t.Fatalf("echo after an unrelated rule came: %v", err)
	}

	ssh.Rules = []Rule{tcpIn("smtp", 25)} // its own rule goes
	d.Groups["ssh"] = ssh
	res = h.reconcile(t, d)
	if res.ConntrackDeleted < 1 {
		t.Errorf("removing the ssh rule cut %d connections, want at least 1", res.ConntrackDeleted)
	}
	if err := echo(conn, blockWait); err == nil {
		t.Fatal("the connection survived the removal of the rule that allowed it")
	}

	// The rule back, a new connection, then the port leaves the group.
	ssh.Rules = []Rule{tcpIn("ssh", 22)}
	d.Groups["ssh"] = ssh
	h.reconcile(t, d)
	conn2, err := a.dial(netip.Addr{}, srv.ip(0), 22, okWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if err := echo(conn2, okWait); err != nil {
		t.Fatal(err)
	}
	d.Ports[1] = srv.withGroups("out")
	res = h.reconcile(t, d)
	if res.ConntrackDeleted < 1 {
		t.Errorf("leaving the group cut %d connections, want at least 1", res.ConntrackDeleted)
	}
	if err := echo(conn2, blockWait); err == nil {
		t.Fatal("the connection survived its port leaving the group that allowed it")
	}

	// A port that goes takes its connections along: they are not left
	// for a port that may get its address next.
	d.Ports[1] = srv.withGroups("out", "ssh")
	h.reconcile(t, d)
	conn3, err := a.dial(netip.Addr{}, srv.ip(0), 22, okWait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn3.Close()
	if err := echo(conn3, okWait); err != nil {
		t.Fatal(err)
	}
	d.Ports = d.Ports[:1]
	if res = h.reconcile(t, d); res.ConntrackDeleted < 1 {
		t.Errorf("removing the port cut %d connections, want at least 1", res.ConntrackDeleted)
	}
}

// TestZonesKeepIdenticalAddressesApart: two networks with the same
// addresses on one host. In a shared conntrack zone, a packet of one
// network matches a connection of the other and passes as its reply; with
// a zone per network it is new and meets the rules, which drop it.
func TestZonesKeepIdenticalAddressesApart(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqz1")
	h.bridge(t, "brqz2")
	a1 := h.vm(t, "brqz1", 1, "10.70.0.1/24")
	b1 := h.vm(t, "brqz1", 1, "10.70.0.2/24")
	a2 := h.vm(t, "brqz2", 1, "10.70.0.1/24")
	b2 := h.vm(t, "brqz2", 1, "10.70.0.2/24")
	settle(t, h.NS, a1.NS, b1.NS, a2.NS, b2.NS)
	groups := map[string]Group{
		"cli": {ID: "cli", Stateful: true, Rules: []Rule{{ID: "ce", Direction: Egress, Ethertype: IPv4}}},
		"srv": {ID: "srv", Stateful: true, Rules: []Rule{{ID: "si", Direction: Ingress, Ethertype: IPv4, Protocol: "udp", PortMin: intp(5000), PortMax: intp(5000)}}},
	}
	d := Desired{Ports: []Port{a1.withGroups("cli"), b1.withGroups("srv"), a2.withGroups("cli"), b2.withGroups("srv")}, Groups: groups}
	probe := func(sport int) bool {
		t.Helper()
		server := b1.udpListen(t, "0.0.0.0", 5000)
		a1.udpSend(t, "0.0.0.0", sport, 5000, "request", "10.70.0.2")
		if !received(server, "request", okWait) {
			t.Fatal("the request within network 1 did not arrive")
		}
		server.Close()
		victim := a2.udpListen(t, "0.0.0.0", sport)
		b2.udpSend(t, "0.0.0.0", 5000, sport, "reply?", "10.70.0.1")
		return received(victim, "reply?", blockWait)
	}
	h.reconcile(t, d) // both networks in zone 1
	if !probe(4000) {
		t.Fatal("control: with one zone for both networks, network 2's packet should have passed as a reply")
	}
	d.Ports[2].Zone, d.Ports[3].Zone = 2, 2
	h.reconcile(t, d)
	if probe(4001) {
		t.Fatal("with a zone per network, network 2's packet passed as the reply of network 1's connection")
	}
}

// TestRestartRebuildsWithoutUnfilteredWindow: a new Manager (an agent
// restart) replaces the tables whole in one transaction; a stream of
// blocked datagrams sent meanwhile never gets through, while the Manager
// that left keeps its tables in place.
func TestRestartRebuildsWithoutUnfilteredWindow(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqrst")
	a := h.vm(t, "brqrst", 1, "10.66.0.1/24")
	b := h.vm(t, "brqrst", 1, "10.66.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	out := Group{ID: "out", Stateful: true, Rules: []Rule{{ID: "e", Direction: Egress, Ethertype: IPv4}}}
	d := Desired{Ports: []Port{a.withGroups("out"), b.withGroups("out")}, Groups: map[string]Group{"out": out}}
	h.reconcile(t, d)
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	sink := b.udpListen(t, "0.0.0.0", 7000)
	var got atomic.Int64
	go func() {
		buf := make([]byte, 100)
		for {
			n, _, err := sink.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "x" {
				got.Add(1)
			}
		}
	}()
	src := a.udpListen(t, "0.0.0.0", 7001)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		dst := netip.AddrPortFrom(b.ip(0), 7000)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := src.WriteToUDPAddrPort([]byte("x"), dst); err == nil {
				sent.Add(1)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for i := range 5 {
		m, err := NewManager(Options{NetNS: h.Name})
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Reconcile(d)
		if err != nil || !res.Full {
			t.Fatalf("restart %d: full=%v err=%v", i, res.Full, err)
		}
		_ = m.Close()
	}
	close(stop)
	wg.Wait()
	if sent.Load() == 0 {
		t.Fatal("no datagram was sent")
	}
	if n := got.Load(); n > 0 {
		t.Fatalf("%d of %d blocked datagrams got through during restarts", n, sent.Load())
	}
	// Control: once a rule allows it, the stream arrives.
	m, err := NewManager(Options{NetNS: h.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	d.Groups["in"] = Group{ID: "in", Stateful: true, Rules: []Rule{{ID: "u", Direction: Ingress, Ethertype: IPv4, Protocol: "udp", PortMin: intp(7000), PortMax: intp(7000)}}}
	d.Ports[1] = b.withGroups("out", "in")
	if _, err := m.Reconcile(d); err != nil {
		t.Fatal(err)
	}
	a.udpSend(t, "0.0.0.0", 7002, 7000, "x", b.ip(0).String())
	deadline := time.Now().Add(okWait)
	for got.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() == 0 {
		t.Fatal("control: the allowed datagram did not arrive")
	}
}

// TestCloseKeepsTablesCleanupRemovesThem: Close leaves the tables (the
// ports stay filtered); Cleanup removes both, and only them.
func TestCloseKeepsTablesCleanupRemovesThem(t *testing.T) {
	h := newHost(t)
	c, err := nftables.New(nftables.WithNetNSFd(int(h.Fd)))
	if err != nil {
		t.Fatal(err)
	}
	foreign := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "someone-else"})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	h.reconcile(t, Desired{})
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	names := func() map[string]int {
		ts, err := c.ListTables()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, tb := range ts {
			out[tb.Name]++
		}
		return out
	}
	if n := names(); n[TableName] != 2 || n[foreign.Name] != 1 {
		t.Fatalf("after Close: tables %v, want both %s and %s", n, TableName, foreign.Name)
	}
	if err := Cleanup(h.Name); err != nil {
		t.Fatal(err)
	}
	if n := names(); n[TableName] != 0 || n[foreign.Name] != 1 {
		t.Fatalf("after Cleanup: tables %v, want only %s", n, foreign.Name)
	}
	if err := Cleanup(h.Name); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
}

// TestResyncRepairsTablesChangedBehindItsBack: Reconcile trusts its last
// transaction; after Resync it rebuilds the tables and blocks again what
// someone else's change opened.
func TestResyncRepairsTablesChangedBehindItsBack(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqsync")
	a := h.vm(t, "brqsync", 1, "10.67.0.1/24")
	b := h.vm(t, "brqsync", 1, "10.67.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	out := Group{ID: "out", Stateful: true, Rules: []Rule{{ID: "e", Direction: Egress, Ethertype: IPv4}}}
	d := Desired{Ports: []Port{a.withGroups("out"), b.withGroups("out")}, Groups: map[string]Group{"out": out}}
	h.reconcile(t, d)
	b.listen(t, 80)
	a.cannotConnect(t, b.ip(0), 80)
	if err := Cleanup(h.Name); err != nil { // the tampering
		t.Fatal(err)
	}
	a.canConnect(t, b.ip(0), 80)
	h.m.Resync()
	if res := h.reconcile(t, d); !res.Full {
		t.Fatal("the reconcile after Resync did not rebuild the tables")
	}
	a.cannotConnect(t, b.ip(0), 80)
}

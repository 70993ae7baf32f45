package dns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// freePort finds a port free on 127.0.0.1 for both UDP and TCP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// fakeUpstream answers every A query with 192.0.2.99 and stops with the test.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &mdns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.99")})
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

func exchange(t *testing.T, netw, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: netw, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(query(name, qtype), addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, mdns.TypeToString[qtype], netw, err)
	}
	return r
}

func TestServerLoopback(t *testing.T) {
	port := freePort(t)
	up := fakeUpstream(t)
	srv := NewServer(testTable(), ServerOptions{Port: port, Upstreams: []string{"127.0.0.1:1", up}})
	if err := srv.Start("", []netip.Addr{netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for _, netw := range []string{"udp", "tcp"} {
		if got := answers(exchange(t, netw, addr, "web.openstacklocal.", mdns.TypeA)); !slices.Equal(got, []string{"10.0.0.5"}) {
			t.Errorf("%s: web: %v", netw, got)
		}
		if r := exchange(t, netw, addr, "nope.openstacklocal.", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
			t.Errorf("%s: nope: %s", netw, mdns.RcodeToString[r.Rcode])
		}
	}
	// Outside names go upstream; the first one, where nothing listens,
	// fails at once (ICMP port unreachable) and the next answers.
	if got := answers(exchange(t, "udp", addr, "example.com.", mdns.TypeA)); !slices.Equal(got, []string{"192.0.2.99"}) {
		t.Errorf("forwarded: %v", got)
	}
	// New records resolve at once.
	srv.SetRecords(NewTable("openstacklocal", nil, Record{Hostname: "new", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.50")}}))
	if got := answers(exchange(t, "udp", addr, "new.openstacklocal.", mdns.TypeA)); !slices.Equal(got, []string{"10.0.0.50"}) {
		t.Errorf("after SetRecords: %v", got)
	}
	// Garbage and responses are not answered, and do not disturb the server.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := query("web.openstacklocal.", mdns.TypeA)
	resp.Response = true
	rb, _ := resp.Pack()
	for _, b := range [][]byte{{1, 2, 3}, rb} {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Errorf("garbage got a %d-byte reply", n)
	}
	if got := answers(exchange(t, "udp", addr, "new.openstacklocal.", mdns.TypeA)); len(got) != 1 {
		t.Errorf("after garbage: %v", got)
	}
	if st := srv.Stats(); st.Forwarded != 1 || st.Failed != 0 || st.Panics != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestServerNoUpstreamRefuses(t *testing.T) {
	port := freePort(t)
	srv := NewServer(testTable(), ServerOptions{Port: port})
	if err := srv.Start("", []netip.Addr{netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if r := exchange(t, "udp", fmt.Sprintf("127.0.0.1:%d", port), "example.com.", mdns.TypeA); r.Rcode != mdns.RcodeRefused {
		t.Errorf("rcode %s", mdns.RcodeToString[r.Rcode])
	}
	if err := srv.Start("", []netip.Addr{netip.MustParseAddr("127.0.0.1")}); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestServerStartFailureLeavesNothing(t *testing.T) {
	srv := NewServer(testTable(), ServerOptions{Port: freePort(t)})
	if err := srv.Start("", nil); err == nil {
		t.Error("started without addresses")
	}
	if err := srv.Start("vland-no-such-namespace", []netip.Addr{netip.MustParseAddr("127.0.0.1")}); err == nil {
		t.Error("started in a missing namespace")
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
}

func TestManagerLoopback(t *testing.T) {
	port := freePort(t)
	m := NewManager(ManagerOptions{Port: port})
	defer m.Close()
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if err := m.Reconcile([]Service{{NetworkID: "n1", Addrs: lo, Table: testTable()}}); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if got := answers(exchange(t, "udp", addr, "web.openstacklocal.", mdns.TypeA)); len(got) != 1 {
		t.Errorf("web: %v", got)
	}
	tbl := NewTable("", nil, Record{Hostname: "other", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.7")}})
	if err := m.Reconcile([]Service{{NetworkID: "n1", Addrs: lo, Table: tbl}}); err != nil {
		t.Fatal(err)
	}
	if got := answers(exchange(t, "udp", addr, "other.openstacklocal.", mdns.TypeA)); len(got) != 1 {
		t.Errorf("other after the table changed: %v", got)
	}
	if err := m.Reconcile(nil); err != nil || len(m.Networks()) != 0 {
		t.Fatalf("%v %v", err, m.Networks())
	}
	c := &mdns.Client{Net: "tcp", Timeout: 300 * time.Millisecond}
	if _, _, err := c.Exchange(query("other.openstacklocal.", mdns.TypeA), addr); err == nil {
		t.Error("a stopped server answered")
	}
}

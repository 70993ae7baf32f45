package udploop

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestPanicCostsOneDatagram: a handler that panics on one datagram leaves
// the loop serving the next; Stop ends it and a second Start works.
func TestPanicCostsOneDatagram(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var l Loop
	var panics atomic.Int32
	got := make(chan string, 4)
	handle := func(c *net.UDPConn, pkt []byte, from netip.AddrPort) {
		if string(pkt) == "boom" {
			panic("boom")
		}
		got <- string(pkt)
	}
	if err := l.Start(conn, handle, slog.Default(), func() { panics.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(conn, handle, slog.Default(), nil); err == nil {
		t.Error("a second Start of a running Loop succeeded")
	}
	send, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	for _, m := range []string{"boom", "hello"} {
		if _, err := send.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-got:
		if m != "hello" {
			t.Errorf("served %q, want hello", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the datagram after the panic was not served")
	}
	if panics.Load() != 1 {
		t.Errorf("onPanic called %d times, want 1", panics.Load())
	}
	if err := l.Stop(); err != nil || l.Running() {
		t.Fatalf("Stop: %v, running %v", err, l.Running())
	}
}

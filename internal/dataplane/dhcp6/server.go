package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/udploop"
	"github.com/vland/vland/internal/namedns"
)

// Well-known DHCPv6 ports.
const (
	serverPort = 547
	clientPort = 546
)

// allServers is All_DHCP_Relay_Agents_and_Servers, where clients send.
var allServers = netip.MustParseAddr("ff02::1:2")

// Stats counts what a Server has done.
type Stats struct {
	Received, Malformed, Ignored, Replies, SendErrors, Panics uint64
}

// Server answers DHCPv6 for one network on one interface of one namespace.
// Its methods are safe for concurrent use.
type Server struct {
	log   *slog.Logger
	duid  dhcpv6.DUID
	table atomic.Pointer[Table]

	loop udploop.Loop

	received, malformed, ignored, replies, sendErrs, panics atomic.Uint64
}

// NewServer returns a stopped Server answering from t with server
// identifier duid (ServerDUID of the device's MAC).
func NewServer(t Table, duid dhcpv6.DUID, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log, duid: duid}
	s.SetTable(t)
	return s
}

// SetTable replaces what the server answers from; the next packet sees it.
func (s *Server) SetTable(t Table) {
	c := t.clone()
	s.table.Store(&c)
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	return Stats{s.received.Load(), s.malformed.Load(), s.ignored.Load(), s.replies.Load(), s.sendErrs.Load(), s.panics.Load()}
}

// Start opens UDP [::]:547 on ifname inside namespace ns ("" for the
// caller's, a name or a path), joins ff02::1:2 there and serves until Stop.
func (s *Server) Start(ns, ifname string) error {
	if s.loop.Running() {
		return errors.New("dhcpv6 server already started")
	}
	var conn *net.UDPConn
	err := namedns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) })
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", serverPort))
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		if err := ipv6.NewPacketConn(conn).JoinGroup(ifi, &net.UDPAddr{IP: allServers.AsSlice()}); err != nil {
			conn.Close()
			return fmt.Errorf("join %s: %w", allServers, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dhcpv6 server on %s in namespace %q: %w", ifname, ns, err)
	}
	log := s.log.With("netns", ns, "interface", ifname, "server", "DHCPv6")
	serve := func(c *net.UDPConn, pkt []byte, from netip.AddrPort) { s.serveOne(c, pkt, from, log) }
	if err := s.loop.Start(conn, serve, log, func() { s.panics.Add(1) }); err != nil {
		conn.Close()
		return fmt.Errorf("dhcpv6 server on %s in namespace %q: %w", ifname, ns, err)
	}
	log.Info("DHCPv6 server started")
	return nil
}

// Stop closes the socket and waits for the server's goroutine.
func (s *Server) Stop() error {
	if err := s.loop.Stop(); err != nil {
		return fmt.Errorf("dhcpv6 server: %w", err)
	}
	return nil
}

// serveOne answers one datagram (package udploop runs the loop and keeps a
// panic here to that packet).
func (s *Server) serveOne(conn *net.UDPConn, pkt []byte, from netip.AddrPort, log *slog.Logger) {
	s.received.Add(1)
	resp, err := Handle(pkt, from.Addr(), *s.table.Load(), s.duid)
	if err != nil {
		s.malformed.Add(1)
		log.Debug("dropped malformed DHCPv6 packet", "from", from, "len", len(pkt), "err", err)
		return
	}
	if resp == nil {
		s.ignored.Add(1)
		return
	}
	// Relayed messages are not supported (no relay in a tenant network), so
	// the answer goes straight back to the client's link-local address.
	if _, err := conn.WriteToUDPAddrPort(resp.ToBytes(), netip.AddrPortFrom(from.Addr(), clientPort)); err != nil {
		s.sendErrs.Add(1)
		log.Warn("DHCPv6 reply not sent", "to", from, "err", err)
		return
	}
	s.replies.Add(1)
}

// Handle parses one datagram from peer and computes the reply; resp is nil
// when the server stays silent, err set only when the datagram is not a
// DHCPv6 client message.
func Handle(pkt []byte, peer netip.Addr, t Table, duid dhcpv6.DUID) (*dhcpv6.Message, error) {
	msg, err := dhcpv6.MessageFromBytes(pkt)
	if err != nil {
		return nil, fmt.Errorf("parse DHCPv6: %w", err)
	}
	mac, _ := ClientMAC(msg, peer.WithZone(""))
	resp, ok := Reply(msg, mac, t, duid)
	if !ok {
		return nil, nil
	}
	return resp, nil
}

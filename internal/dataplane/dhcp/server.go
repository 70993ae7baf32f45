package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/udploop"
	"github.com/vland/vland/internal/namedns"
)

// Well-known DHCPv4 ports.
const (
	serverPort = 67
	clientPort = 68
)

// ServerOptions tune a Server.
type ServerOptions struct {
	// Logger receives the server's events; nil means slog.Default(). Every
	// packet is logged at Debug level.
	Logger *slog.Logger
}

// Stats counts what a Server has done since it was made.
type Stats struct {
	Received   uint64 // datagrams read
	Malformed  uint64 // datagrams that did not parse as DHCPv4
	Ignored    uint64 // requests answered with silence
	Offers     uint64 // DHCPOFFERs sent
	Acks       uint64 // DHCPACKs sent
	Naks       uint64 // DHCPNAKs sent
	SendErrors uint64 // replies the kernel refused
	Panics     uint64 // packets whose handling panicked (a bug; logged)
}

// Server answers DHCPv4 for one network on one interface of one network
// namespace (Neutron's qdhcp-<netid> with its ns-<portid11> device), in the
// agent's process. It holds one UDP socket and one goroutine, which sleeps in
// the Go netpoller between packets, so an agent runs one Server per network
// it serves, hundreds if need be. Its methods are safe for concurrent use.
type Server struct {
	log   *slog.Logger
	table atomic.Pointer[Table]

	loop udploop.Loop

	received, malformed, ignored         atomic.Uint64
	offers, acks, naks, sendErrs, panics atomic.Uint64
}

// NewServer returns a stopped Server that will answer from t.
func NewServer(t Table, opts ServerOptions) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log}
	s.SetTable(t)
	return s
}

// SetTable replaces the reservations and server addresses at once; the next
// packet is answered from t. The Server keeps its own copy of t's map and
// slice, but the Reservations in it share their slices with the caller, who
// must not change them afterwards.
func (s *Server) SetTable(t Table) {
	c := t.clone()
	s.table.Store(&c)
}

// Table returns the table the Server currently answers from; it must not be
// modified.
func (s *Server) Table() Table { return *s.table.Load() }

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Received:   s.received.Load(),
		Malformed:  s.malformed.Load(),
		Ignored:    s.ignored.Load(),
		Offers:     s.offers.Load(),
		Acks:       s.acks.Load(),
		Naks:       s.naks.Load(),
		SendErrors: s.sendErrs.Load(),
		Panics:     s.panics.Load(),
	}
}

// Start opens UDP port 67 on interface ifname inside network namespace ns
// ("" for the caller's own, a name from `ip netns add`, or a path) and serves
// it until Stop. Errors opening the socket (no such namespace or interface,
// port taken) are returned here; afterwards the Server only logs. The socket
// is bound to the interface's index: if the interface is deleted and made
// again, Stop and Start the Server.
func (s *Server) Start(ns, ifname string) error {
	if s.loop.Running() {
		return errors.New("dhcp server already started")
	}
	var conn *net.UDPConn
	err := namedns.Do(ns, func() error {
		var err error
		conn, err = listen(ifname)
		return err
	})
	if err != nil {
		return fmt.Errorf("dhcp server on %s in namespace %q: %w", ifname, ns, err)
	}
	log := s.log.With("netns", ns, "interface", ifname, "server", "DHCPv4")
	serve := func(c *net.UDPConn, pkt []byte, from netip.AddrPort) { s.serveOne(c, pkt, from, log) }
	if err := s.loop.Start(conn, serve, log, func() { s.panics.Add(1) }); err != nil {
		conn.Close()
		return fmt.Errorf("dhcp server on %s in namespace %q: %w", ifname, ns, err)
	}
	log.Info("DHCPv4 server started")
	return nil
}

// Stop closes the socket and waits for the Server's goroutine to finish. A
// stopped Server may be started again.
func (s *Server) Stop() error {
	if err := s.loop.Stop(); err != nil {
		return fmt.Errorf("dhcp server: %w", err)
	}
	return nil
}

// Serve is Start, then Stop when ctx is done; it returns Start's error or nil.
func (s *Server) Serve(ctx context.Context, ns, ifname string) error {
	if err := s.Start(ns, ifname); err != nil {
		return err
	}
	<-ctx.Done()
	return s.Stop()
}

// listen opens the server's socket in the calling thread's namespace: UDP
// 0.0.0.0:67, allowed to broadcast, and bound to the interface so it sees
// only that network's clients (SO_BINDTODEVICE) and its broadcasts leave
// through it. There is no SO_REUSEADDR: a second server on the same
// interface fails loudly instead of splitting the traffic.
func listen(ifname string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				serr = fmt.Errorf("SO_BROADCAST: %w", serr)
				return
			}
			if serr = unix.BindToDevice(int(fd), ifname); serr != nil {
				serr = fmt.Errorf("bind to device %s: %w", ifname, serr)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", serverPort))
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// serveOne answers one datagram (package udploop runs the loop and keeps
// a panic here to that packet).
func (s *Server) serveOne(conn *net.UDPConn, pkt []byte, from netip.AddrPort, log *slog.Logger) {
	s.received.Add(1)
	req, resp, dst, err := handle(pkt, *s.table.Load())
	if err != nil {
		s.malformed.Add(1)
		if log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("dropped malformed DHCP packet", "from", from, "len", len(pkt), "err", err)
		}
		return
	}
	s.logRequest(log, req, resp)
	if resp == nil {
		s.ignored.Add(1)
		return
	}
	out := resp.ToBytes()
	_, err = conn.WriteToUDPAddrPort(out, dst)
	if err != nil && dst.Addr() != broadcastAddr {
		// A client's unicast address may be unreachable from here (not on
		// the interface's subnet): fall back to broadcast, which always is.
		_, err = conn.WriteToUDPAddrPort(out, netip.AddrPortFrom(broadcastAddr, clientPort))
	}
	if err != nil {
		s.sendErrs.Add(1)
		log.Warn("DHCP reply not sent", "to", dst, "mac", req.ClientHWAddr.String(), "err", err)
		return
	}
	switch resp.MessageType() {
	case dhcpv4.MessageTypeOffer:
		s.offers.Add(1)
	case dhcpv4.MessageTypeAck:
		s.acks.Add(1)
	case dhcpv4.MessageTypeNak:
		s.naks.Add(1)
	}
}

// logRequest records a request and its outcome. DECLINE is worth a warning:
// the client found its reserved address in use by another host.
func (s *Server) logRequest(log *slog.Logger, req, resp *dhcpv4.DHCPv4) {
	mt := req.MessageType()
	if mt == dhcpv4.MessageTypeDecline {
		log.Warn("client declined its address: another host may be using it",
			"mac", req.ClientHWAddr.String(), "address", req.RequestedIPAddress().String())
		return
	}
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	answer, yiaddr := "none", ""
	if resp != nil {
		answer, yiaddr = resp.MessageType().String(), resp.YourIPAddr.String()
	}
	log.Debug("DHCP request", "type", mt.String(), "mac", req.ClientHWAddr.String(),
		"xid", req.TransactionID.String(), "ciaddr", req.ClientIPAddr.String(),
		"requested", req.RequestedIPAddress().String(), "answer", answer, "yiaddr", yiaddr)
}

// broadcastAddr is the limited broadcast address replies go to by default.
var broadcastAddr = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// handle parses one datagram, computes the reply with Reply and where to send
// it. resp is nil when the server stays silent; err is set only when the
// datagram is not DHCPv4.
func handle(pkt []byte, t Table) (req, resp *dhcpv4.DHCPv4, dst netip.AddrPort, err error) {
	req, err = dhcpv4.FromBytes(pkt)
	if err != nil {
		return nil, nil, dst, fmt.Errorf("parse DHCPv4: %w", err)
	}
	resp, ok := Reply(req, t)
	if !ok {
		return req, nil, dst, nil
	}
	return req, resp, destination(req, resp), nil
}

// destination picks where a reply goes, by RFC 2131 section 4.1: to the relay
// when there is one, NAKs always broadcast, to ciaddr when the client already
// has an address, and broadcast otherwise. Broadcasting instead of unicasting
// to yiaddr with the client's MAC needs no raw socket, and every client
// accepts it (udhcpc and dhclient listen on packet sockets while unbound).
func destination(req, resp *dhcpv4.DHCPv4) netip.AddrPort {
	if g := ip4(req.GatewayIPAddr); g.IsValid() {
		return netip.AddrPortFrom(g, serverPort)
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return netip.AddrPortFrom(broadcastAddr, clientPort)
	}
	if c := ip4(req.ClientIPAddr); c.IsValid() {
		return netip.AddrPortFrom(c, clientPort)
	}
	return netip.AddrPortFrom(broadcastAddr, clientPort)
}

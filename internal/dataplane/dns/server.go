package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// Port is the DNS port servers listen on unless told otherwise.
const Port = 53

// forwardTimeout bounds one exchange with one upstream.
const forwardTimeout = 2 * time.Second

// ServerOptions tune a Server.
type ServerOptions struct {
	// Upstreams are the resolvers names outside the table are forwarded to,
	// tried in order ("ip" or "ip:port"); none means such names are REFUSED.
	Upstreams []string
	// Port to listen on; 0 means 53.
	Port int
	// Logger receives the server's events; nil means slog.Default().
	Logger *slog.Logger
}

// Stats counts what a Server has done.
type Stats struct {
	Queries   uint64 // requests handled
	Forwarded uint64 // requests sent upstream
	Failed    uint64 // forwarded requests no upstream answered (SERVFAIL)
	Panics    uint64 // requests whose handling panicked (a bug; logged)
}

// Server answers DNS for one network on a set of addresses of one network
// namespace, over UDP and TCP. Its methods are safe for concurrent use.
type Server struct {
	log       *slog.Logger
	upstreams []string
	port      int
	table     atomic.Pointer[Table]

	mu      sync.Mutex
	servers []*mdns.Server
	wg      sync.WaitGroup

	queries, forwarded, failed, panics atomic.Uint64
}

// NewServer returns a stopped Server answering from t.
func NewServer(t *Table, o ServerOptions) *Server {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	port := o.Port
	if port == 0 {
		port = Port
	}
	s := &Server{log: log, port: port}
	for _, u := range o.Upstreams {
		if u = normalizeUpstream(u); u != "" {
			s.upstreams = append(s.upstreams, u)
		}
	}
	s.SetRecords(t)
	return s
}

// normalizeUpstream makes "ip" or "ip:port" a dialable address; "" when it
// is neither.
func normalizeUpstream(u string) string {
	if ap, err := netip.ParseAddrPort(u); err == nil {
		return ap.String()
	}
	if a, err := netip.ParseAddr(u); err == nil {
		return netip.AddrPortFrom(a, Port).String()
	}
	return ""
}

// ParseUpstreams splits a comma-separated list of resolvers ("ip" or
// "ip:port"), rejecting what is neither.
func ParseUpstreams(list string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if normalizeUpstream(f) == "" {
			return nil, fmt.Errorf("DNS upstream %q is not an IP address or IP:port", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// SetRecords replaces the table at once; the next query is answered from t
// (nil: an empty table for the default domain).
func (s *Server) SetRecords(t *Table) {
	if t == nil {
		t = NewTable("", nil)
	}
	s.table.Store(t)
}

// Records is the current table.
func (s *Server) Records() *Table { return s.table.Load() }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Queries: s.queries.Load(), Forwarded: s.forwarded.Load(), Failed: s.failed.Load(), Panics: s.panics.Load()}
}

// Start listens on every address of addrs, UDP and TCP, inside the named
// namespace ("" is the caller's own), and serves until Stop. Sockets are
// bound with IP_FREEBIND, so an address that is not yet (or no longer) on a
// device does not stop the server. On error nothing is left running.
func (s *Server) Start(namespace string, addrs []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.servers != nil {
		return errors.New("DNS server already started")
	}
	if len(addrs) == 0 {
		return errors.New("DNS server needs an address")
	}
	var pcs []net.PacketConn
	var lns []net.Listener
	closeAll := func() {
		for _, c := range pcs {
			c.Close()
		}
		for _, l := range lns {
			l.Close()
		}
	}
	open := func() error {
		lc := net.ListenConfig{Control: freebind}
		for _, a := range addrs {
			hp := netip.AddrPortFrom(a.Unmap(), uint16(s.port)).String()
			pc, err := lc.ListenPacket(context.Background(), "udp", hp)
			if err != nil {
				return fmt.Errorf("DNS on udp %s: %w", hp, err)
			}
			pcs = append(pcs, pc)
			l, err := lc.Listen(context.Background(), "tcp", hp)
			if err != nil {
				return fmt.Errorf("DNS on tcp %s: %w", hp, err)
			}
			lns = append(lns, l)
		}
		return nil
	}
	var err error
	if namespace == "" {
		err = open()
	} else {
		err = namedns.Do(namespace, open)
	}
	if err != nil {
		closeAll()
		return err
	}
	h := mdns.HandlerFunc(s.serveDNS)
	var started sync.WaitGroup
	run := func(srv *mdns.Server) {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		s.servers = append(s.servers, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Warn("DNS listener ended", "err", err)
			}
		}()
	}
	for _, pc := range pcs {
		run(&mdns.Server{PacketConn: pc, Handler: h, MsgAcceptFunc: accept})
	}
	for _, l := range lns {
		run(&mdns.Server{Listener: l, Handler: h, MsgAcceptFunc: accept, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	}
	started.Wait()
	s.log.Info("DNS server started", "namespace", namespace, "addrs", addrs, "upstreams", s.upstreams)
	return nil
}

// freebind lets a socket bind an address its namespace does not hold yet.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "udp6" || network == "tcp6" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// accept lets through queries only: responses (which could be reflected)
// and everything else the default rejects are not answered as queries.
func accept(dh mdns.Header) mdns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 { // QR: a response
		return mdns.MsgIgnore
	}
	return mdns.DefaultMsgAcceptFunc(dh)
}

// Stop closes the server's sockets and waits for its goroutines.
func (s *Server) Stop() error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// serveDNS answers one request: from the table, by forwarding, or not at
// all.
func (s *Server) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("DNS request handling panicked", "panic", r)
		}
	}()
	s.queries.Add(1)
	tcp := false
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		tcp = true
	}
	resp := s.respond(req, tcp)
	if resp == nil {
		return
	}
	if !tcp {
		size := mdns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = max(int(o.UDPSize()), mdns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("DNS reply not sent", "err", err)
	}
}

// respond is the reply to req: Answer's for names of the table or with no
// upstream, an upstream's otherwise.
func (s *Server) respond(req *mdns.Msg, tcp bool) *mdns.Msg {
	t := s.table.Load()
	if len(s.upstreams) == 0 || req == nil || req.Response || req.Opcode != mdns.OpcodeQuery ||
		len(req.Question) != 1 || t.Authoritative(req.Question[0].Name) {
		return Answer(req, t)
	}
	s.forwarded.Add(1)
	if r := s.forward(req, tcp); r != nil {
		return r
	}
	s.failed.Add(1)
	m := new(mdns.Msg)
	m.SetRcode(req, mdns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// forward asks the upstreams in order, retrying over TCP a truncated UDP
// answer; nil when none answered.
func (s *Server) forward(req *mdns.Msg, tcp bool) *mdns.Msg {
	for _, u := range s.upstreams {
		c := &mdns.Client{Net: "udp", Timeout: forwardTimeout}
		if tcp {
			c.Net = "tcp"
		}
		r, _, err := c.Exchange(req, u)
		if err == nil && r != nil && r.Truncated && !tcp {
			c.Net = "tcp"
			r, _, err = c.Exchange(req, u)
		}
		if err != nil || r == nil {
			s.log.Debug("DNS upstream failed", "upstream", u, "err", err)
			continue
		}
		r.Id = req.Id
		return r
	}
	return nil
}

// handleWire is the server's whole path for one datagram from the wire, as
// the fuzz test drives it: nil for what gets no reply.
func (s *Server) handleWire(b []byte) []byte {
	req := new(mdns.Msg)
	if err := req.Unpack(b); err != nil {
		return nil
	}
	if req.Response {
		return nil
	}
	resp := s.respond(req, false)
	if resp == nil {
		return nil
	}
	resp.Truncate(mdns.MinMsgSize)
	out, err := resp.Pack()
	if err != nil {
		return nil
	}
	return out
}

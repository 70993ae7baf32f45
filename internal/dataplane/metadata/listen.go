package metadata

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// Listener is one socket the Server serves, with its http.Server.
type Listener struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error // Serve's error other than a close, once done is closed
}

// Listen opens a TCP socket on addr ("0.0.0.0:9697", "169.254.169.254:80",
// "[fe80::a9fe:a9fe%ns-xxx]:80") inside the named network namespace ns (""
// for the caller's own) and serves it with Handler(key) until Close. The
// socket is opened on a thread switched into the namespace and stays there
// for its whole life; the rest of the process stays where it is. It is
// freebind, so an agent may open it before the address is configured (it
// opens its sockets before its first reconcile).
func (s *Server) Listen(ns, addr, key string) (*Listener, error) {
	network, freebind, err := listenFamily(addr)
	if err != nil {
		return nil, fmt.Errorf("metadata listener %s in namespace %q: %w", addr, ns, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if freebind == 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			lvl, opt := unix.SOL_IP, unix.IP_FREEBIND
			if freebind == 6 {
				lvl, opt = unix.SOL_IPV6, unix.IPV6_FREEBIND
			}
			if serr = unix.SetsockoptInt(int(fd), lvl, opt, 1); serr != nil {
				serr = fmt.Errorf("freebind: %w", serr)
			}
		})
		return errors.Join(err, serr)
	}}
	var ln net.Listener
	open := func() error {
		var err error
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	}
	if ns == "" {
		err = open()
	} else {
		err = namedns.Do(ns, open)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata listener %s in namespace %q: %w", addr, ns, err)
	}
	l := s.Serve(ln, key)
	s.log.Info("metadata service listening", "netns", ns, "addr", ln.Addr().String(), "key", key)
	return l, nil
}

// listenFamily picks the socket family from addr's host: an IPv4 literal
// listens on IPv4 only (Go's "tcp" would make 0.0.0.0 dual-stack), an IPv6
// literal on IPv6 only. freebind is 4 or 6 for a specific address, 0 for a
// wildcard.
func listenFamily(addr string) (network string, freebind int, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		return "tcp", 0, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	network, freebind = "tcp4", 4
	if a.Is6() && !a.Is4In6() {
		network, freebind = "tcp6", 6
	}
	if a.IsUnspecified() {
		freebind = 0
	}
	return network, freebind, nil
}

// Serve serves an already open listener with Handler(key) until the
// returned Listener is closed; it takes ownership of ln.
func (s *Server) Serve(ln net.Listener, key string) *Listener {
	l := &Listener{
		ln:   &connLimiter{Listener: ln, max: s.opts.MaxConnsPerCaller, open: map[netip.Addr]int{}, refused: &s.connsRefused},
		srv:  s.newHTTPServer(key),
		done: make(chan struct{}),
	}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
			l.err = err
			s.log.Error("metadata listener failed", "addr", ln.Addr().String(), "key", key, "err", err)
		}
	}()
	return l
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close closes the socket and every connection on it at once (a guest
// retries) and waits for the serving goroutine; it returns the error that
// stopped serving early, if one did.
func (l *Listener) Close() error {
	err := l.srv.Close()
	<-l.done
	if err != nil {
		return fmt.Errorf("close metadata listener: %w", err)
	}
	return l.err
}

// connLimiter closes, as soon as they are accepted, the connections of a
// source that already holds max of them open, so one guest cannot exhaust
// the agent's descriptors or goroutines.
type connLimiter struct {
	net.Listener
	max     int
	refused *atomic.Uint64

	mu   sync.Mutex
	open map[netip.Addr]int
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src, err := sourceAddr(c.RemoteAddr().String())
		if err != nil {
			return c, nil // not TCP/IP: nothing to count it by
		}
		l.mu.Lock()
		if l.open[src] >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.open[src]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
}

// countedConn gives its slot back when closed (once, however often Close
// is called).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// Package udploop runs the receive loop of the agent's UDP servers (DHCPv4,
// DHCPv6): one goroutine per socket reading datagrams until the socket is
// closed, each handled in turn, a panic in the handler costing that datagram
// only, never the agent that serves every network of the host.
package udploop

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// recvBufSize holds any datagram an Ethernet or jumbo-frame network
// delivers; a longer one is truncated and then fails to parse.
const recvBufSize = 9000

// Handler answers one datagram on conn. pkt is reused after it returns.
type Handler func(conn *net.UDPConn, pkt []byte, from netip.AddrPort)

// Loop is a socket and the goroutine serving it; the zero Loop is stopped.
// Its methods are safe for concurrent use.
type Loop struct {
	mu   sync.Mutex
	conn *net.UDPConn
	done chan struct{}
}

// Start serves conn with handle until Stop. onPanic, if set, is called
// after a handler panic has been logged. It fails if the Loop already runs.
func (l *Loop) Start(conn *net.UDPConn, handle Handler, log *slog.Logger, onPanic func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		return errors.New("server already started")
	}
	l.conn, l.done = conn, make(chan struct{})
	go run(conn, l.done, handle, log, onPanic)
	return nil
}

// Running reports whether the Loop has a socket.
func (l *Loop) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}

// Stop closes the socket and waits for the goroutine to finish; a stopped
// Loop may be started again.
func (l *Loop) Stop() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	<-l.done
	l.conn, l.done = nil, nil
	if err != nil {
		return fmt.Errorf("close socket: %w", err)
	}
	return nil
}

func run(conn *net.UDPConn, done chan struct{}, handle Handler, log *slog.Logger, onPanic func()) {
	defer close(done)
	buf := make([]byte, recvBufSize)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				log.Info("server stopped")
				return
			}
			// Transient (a full socket buffer, an ICMP error surfacing);
			// pause so a persistent error cannot spin the CPU.
			log.Warn("receive failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		serveOne(conn, buf[:n], from, handle, log, onPanic)
	}
}

func serveOne(conn *net.UDPConn, pkt []byte, from netip.AddrPort, handle Handler, log *slog.Logger, onPanic func()) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("BUG: panic answering a packet", "panic", r, "from", from, "len", len(pkt))
			if onPanic != nil {
				onPanic()
			}
		}
	}()
	handle(conn, pkt, from)
}

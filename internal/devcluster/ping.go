package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// pingConn is a raw ICMP socket opened inside a VM's namespace: it sends
// and receives there whichever thread uses it.
type pingConn struct {
	conn *icmp.PacketConn
	dst  netip.Addr
	id   int
	v6   bool
}

// openPing opens an ICMP socket inside the VM's namespace towards dst.
func (c *Cluster) openPing(vm, dst string) (*pingConn, error) {
	v, err := c.VM(vm)
	if err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(dst)
	if err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	pc := &pingConn{dst: ip, v6: ip.Is6()}
	var id [2]byte
	_, _ = rand.Read(id[:])
	pc.id = int(binary.BigEndian.Uint16(id[:]))
	network, laddr := "ip4:icmp", "0.0.0.0"
	if pc.v6 {
		network, laddr = "ip6:ipv6-icmp", "::"
	}
	err = namedns.Do(v.Namespace, func() error {
		var err error
		pc.conn, err = icmp.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ping from VM %s: %w", vm, err)
	}
	return pc, nil
}

func (pc *pingConn) close() { pc.conn.Close() }

// send sends echo request seq.
func (pc *pingConn) send(seq int) error {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if pc.v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: pc.id, Seq: seq, Data: []byte("vland-dev-ping")}}
	b, err := m.Marshal(nil)
	if err != nil {
		return err
	}
	_, err = pc.conn.WriteTo(b, &net.IPAddr{IP: pc.dst.AsSlice()})
	return err
}

// recv returns the sequence number of the next echo reply from the peer to
// this pinger, or an error when the deadline passes.
func (pc *pingConn) recv(deadline time.Time) (int, error) {
	return pc.recvEcho(deadline, false)
}

// recvEcho returns the sequence number of the next ICMP echo reply (or,
// with request set, echo request) from the peer carrying this pinger's id.
func (pc *pingConn) recvEcho(deadline time.Time, request bool) (int, error) {
	if err := pc.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	proto := 1
	var want icmp.Type = ipv4.ICMPTypeEchoReply
	switch {
	case pc.v6 && request:
		proto, want = 58, ipv6.ICMPTypeEchoRequest
	case pc.v6:
		proto, want = 58, ipv6.ICMPTypeEchoReply
	case request:
		want = ipv4.ICMPTypeEcho
	}
	buf := make([]byte, 1500)
	for {
		n, peer, err := pc.conn.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		from, ok := peer.(*net.IPAddr)
		if !ok {
			continue
		}
		if a, ok := netip.AddrFromSlice(from.IP); !ok || a.Unmap() != pc.dst {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != want {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == pc.id {
			return e.Seq, nil
		}
	}
}

// Ping sends one ICMP echo request from the VM to dst and reports whether
// the reply came within timeout (ping -c1 -W timeout).
func (c *Cluster) Ping(vm, dst string, timeout time.Duration) (bool, error) {
	pc, err := c.openPing(vm, dst)
	if err != nil {
		return false, err
	}
	defer pc.close()
	if err := pc.send(1); err != nil {
		return false, nil // no route, for example: unreachable
	}
	deadline := time.Now().Add(timeout)
	for {
		seq, err := pc.recv(deadline)
		if err != nil {
			return false, nil
		}
		if seq == 1 {
			return true, nil
		}
	}
}

// WaitPing pings dst from the VM until it answers or timeout passes.
func (c *Cluster) WaitPing(ctx context.Context, vm, dst string, timeout time.Duration) error {
	return poll(ctx, timeout, 10*time.Millisecond, fmt.Sprintf("ping %s from %s", dst, vm), func() (bool, error) {
		return c.Ping(vm, dst, 500*time.Millisecond)
	})
}

// PingRun is a ping running in the background (ping -i interval).
type PingRun struct {
	pc       *pingConn
	cancel   context.CancelFunc
	done     sync.WaitGroup
	mu       sync.Mutex
	sent     int
	replies  map[int]bool
	stopOnce sync.Once
}

// PingStats counts a PingRun's requests: Lost = Sent - Received.
type PingStats struct{ Sent, Received, Lost int }

// StartPing pings dst from the VM every interval until Stop.
func (c *Cluster) StartPing(vm, dst string, interval time.Duration) (*PingRun, error) {
	pc, err := c.openPing(vm, dst)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &PingRun{pc: pc, cancel: cancel, replies: map[int]bool{}}
	r.done.Add(2)
	go r.sendLoop(ctx, interval)
	go r.recvLoop(ctx)
	return r, nil
}

func (r *PingRun) sendLoop(ctx context.Context, interval time.Duration) {
	defer r.done.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := 1; ; seq++ {
		_ = r.pc.send(seq & 0xffff) // a failed send is a lost request
		r.mu.Lock()
		r.sent = seq
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *PingRun) recvLoop(ctx context.Context) {
	defer r.done.Done()
	for {
		seq, err := r.pc.recv(time.Now().Add(200 * time.Millisecond))
		if err != nil {
			if ctx.Err() != nil || !isTimeout(err) {
				return
			}
			continue
		}
		r.mu.Lock()
		r.replies[seq] = true
		r.mu.Unlock()
	}
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, unix.EAGAIN)
}

// Received is the number of replies so far.
func (r *PingRun) Received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.replies)
}

// Stop stops sending, gives the last request a second to be answered, and
// returns the totals.
func (r *PingRun) Stop() PingStats {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		last := r.sent
		r.mu.Unlock()
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) && !r.answered(last) {
			time.Sleep(20 * time.Millisecond)
		}
		r.cancel()
		r.done.Wait()
		r.pc.close()
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return PingStats{Sent: r.sent, Received: len(r.replies), Lost: r.sent - len(r.replies)}
}

func (r *PingRun) answered(seq int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.replies[seq&0xffff]
}

// Neighbor returns the MAC address the VM's neighbour table holds for ip:
// after a ping, the station that answered ARP for it.
func (c *Cluster) Neighbor(vm, ip string) (net.HardwareAddr, error) {
	v, err := c.VM(vm)
	if err != nil {
		return nil, err
	}
	h, err := namedns.Handle(v.Namespace)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	want := net.ParseIP(ip)
	var neighs []netlink.Neigh
	for range 10 {
		if neighs, err = h.NeighList(0, netlink.FAMILY_ALL); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("neighbours of VM %s: %w", vm, err)
	}
	for _, n := range neighs {
		if n.IP.Equal(want) && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return n.HardwareAddr, nil
		}
	}
	return nil, nil
}

// FlushNeighbor removes the VM's neighbour entry for ip, so the next packet
// to it asks ARP afresh.
func (c *Cluster) FlushNeighbor(vm, ip string) error {
	v, err := c.VM(vm)
	if err != nil {
		return err
	}
	h, err := namedns.Handle(v.Namespace)
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName(vmIface)
	if err != nil {
		return err
	}
	err = h.NeighDel(&netlink.Neigh{LinkIndex: eth.Attrs().Index, IP: net.ParseIP(ip)})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("flush neighbour %s in VM %s: %w", ip, vm, err)
	}
	return nil
}

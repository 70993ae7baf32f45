package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/l2"
	"github.com/vland/vland/internal/devcluster"
)

// dpVM is a VM of the data-plane benchmark, built the way `vland dev vm
// create` builds one but with every step timed by the caller: a namespace
// whose eth0 (the port's MAC and the network's MTU) pairs with
// tap<portid11> in its host's namespace, addressed statically from the port
// (no DHCP: the bring-up target excludes it).
type dpVM struct {
	Name   string
	NS     string // <prefix>-<name>
	Host   string
	HostNS string
	PortID string
	MAC    net.HardwareAddr
	Addr   netip.Prefix // the port's address with its subnet's length
	MTU    int
}

func (v *dpVM) tap() string { return l2.TapName(v.PortID) }

// apiPort is the part of a Neutron port the benchmark reads.
type apiPort struct {
	ID       string `json:"id"`
	MAC      string `json:"mac_address"`
	Status   string `json:"status"`
	VIFType  string `json:"binding:vif_type"`
	FixedIPs []struct {
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

// vmIface is a VM's interface; arpRetransMs the ARP retransmission time set
// on it (Linux's default is 1000 ms).
const (
	vmIface      = "eth0"
	arpRetransMs = 10
)

// createPortAPI creates a port with the given attributes (network_id, and
// binding:host_id when the client is admin).
func createPortAPI(ctx context.Context, cl *devcluster.Client, attrs map[string]any) (apiPort, error) {
	body := map[string]any{"device_owner": "compute:nova", "device_id": newUUID()}
	for k, v := range attrs {
		body[k] = v
	}
	var out struct {
		Port apiPort `json:"port"`
	}
	if err := cl.Do(ctx, http.MethodPost, "/v2.0/ports", map[string]any{"port": body}, &out); err != nil {
		return apiPort{}, err
	}
	if len(out.Port.FixedIPs) == 0 {
		return out.Port, fmt.Errorf("port %s has no fixed IP", out.Port.ID)
	}
	return out.Port, nil
}

// bindPortAPI binds a port to a host as admin, as Nova does before plugging.
func bindPortAPI(ctx context.Context, admin *devcluster.Client, id, host string) error {
	var out struct {
		Port apiPort `json:"port"`
	}
	body := map[string]any{"port": map[string]any{"binding:host_id": host}}
	if err := admin.Do(ctx, http.MethodPut, "/v2.0/ports/"+id, body, &out); err != nil {
		return err
	}
	if out.Port.VIFType != "bridge" {
		return fmt.Errorf("port %s bound to %s has vif_type %q", id, host, out.Port.VIFType)
	}
	return nil
}

// portStatus reads a port's status.
func portStatus(ctx context.Context, admin *devcluster.Client, id string) (string, error) {
	var out struct {
		Port apiPort `json:"port"`
	}
	err := admin.Do(ctx, http.MethodGet, "/v2.0/ports/"+url.PathEscape(id)+"?fields=status", nil, &out)
	return out.Port.Status, err
}

// waitStatus polls a port every interval until it has status and returns
// when it was first seen so.
func waitStatus(ctx context.Context, admin *devcluster.Client, id, status string, interval, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		st, err := portStatus(ctx, admin, id)
		if err == nil && st == status {
			return time.Now(), nil
		}
		if err == nil {
			last = st
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("port %s not %s within %s (last %q)", id, status, timeout, last)
		case <-t.C:
		}
	}
}

// vmFromPort fills a VM's port fields from the API's answer.
func vmFromPort(v *dpVM, p apiPort, subnet netip.Prefix) error {
	mac, err := net.ParseMAC(p.MAC)
	if err != nil {
		return fmt.Errorf("port %s MAC: %w", p.ID, err)
	}
	ip, err := netip.ParseAddr(p.FixedIPs[0].IPAddress)
	if err != nil {
		return fmt.Errorf("port %s address: %w", p.ID, err)
	}
	v.PortID, v.MAC, v.Addr = p.ID, mac, netip.PrefixFrom(ip, subnet.Bits())
	return nil
}

// plugVM does the hypervisor's part: the VM namespace, eth0 paired with the
// tap created directly in the host namespace (with the MAC a hypervisor
// gives taps: fe: and the port MAC's last five bytes, and the network's
// MTU), the address, everything up, and a short ARP retransmission time
// (so the first ping measures when the path works, not ARP's 1 s back-off).
// It returns when the tap appeared in the host namespace: the agent may
// wire it (and set it up) before plugVM is done.
func plugVM(v *dpVM) (tapCreated time.Time, err error) {
	if err := namedns.Create(v.NS); err != nil {
		return tapCreated, err
	}
	h, err := namedns.Handle(v.NS)
	if err != nil {
		return tapCreated, err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return tapCreated, err
	}
	hostFd, err := netns.GetFromName(v.HostNS)
	if err != nil {
		return tapCreated, fmt.Errorf("open host namespace: %w", err)
	}
	defer hostFd.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.MTU = vmIface, v.MAC, v.MTU
	veth := &netlink.Veth{LinkAttrs: la, PeerName: v.tap(), PeerHardwareAddr: tapMAC(v.MAC), PeerNamespace: netlink.NsFd(hostFd)}
	if err := h.LinkAdd(veth); err != nil {
		return tapCreated, fmt.Errorf("create %s of VM %s paired with %s: %w", vmIface, v.Name, v.tap(), err)
	}
	tapCreated = time.Now()
	eth, err := h.LinkByName(vmIface)
	if err != nil {
		return tapCreated, err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: v.Addr.Addr().AsSlice(), Mask: net.CIDRMask(v.Addr.Bits(), v.Addr.Addr().BitLen())}}
	if err := h.AddrAdd(eth, addr); err != nil {
		return tapCreated, fmt.Errorf("add %s to VM %s: %w", v.Addr, v.Name, err)
	}
	if err := setSysctl(v.NS, "ipv4/neigh/"+vmIface+"/retrans_time_ms", fmt.Sprint(arpRetransMs)); err != nil {
		return tapCreated, err
	}
	if err := h.LinkSetUp(eth); err != nil {
		return tapCreated, fmt.Errorf("set %s of VM %s up: %w", vmIface, v.Name, err)
	}
	hh, err := netlink.NewHandleAt(hostFd)
	if err != nil {
		return tapCreated, fmt.Errorf("netlink in host namespace: %w", err)
	}
	defer hh.Close()
	return tapCreated, linkUp(hh, v.tap())
}

// tapMAC is the MAC a hypervisor gives the host side of a port's device.
func tapMAC(port net.HardwareAddr) net.HardwareAddr {
	return append(net.HardwareAddr{0xfe}, port[1:]...)
}

// prober pings from inside a namespace (a raw ICMP socket opened there)
// and reports when each destination first answers.
type prober struct {
	conn *icmp.PacketConn
	id   int
	mu   sync.Mutex
	wait map[netip.Addr]chan time.Time
	done chan struct{}
}

func openProber(ns string) (*prober, error) {
	var b [2]byte
	_, _ = rand.Read(b[:])
	p := &prober{id: int(binary.BigEndian.Uint16(b[:])), wait: map[netip.Addr]chan time.Time{}, done: make(chan struct{})}
	err := namedns.Do(ns, func() error {
		var err error
		p.conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ICMP socket in %s: %w", ns, err)
	}
	go p.recvLoop()
	return p, nil
}

func (p *prober) close() {
	p.conn.Close()
	<-p.done
}

func (p *prober) recvLoop() {
	defer close(p.done)
	buf := make([]byte, 1500)
	for {
		n, peer, err := p.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		at := time.Now()
		from, ok := peer.(*net.IPAddr)
		if !ok {
			continue
		}
		src, ok := netip.AddrFromSlice(from.IP)
		if !ok {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); !ok || e.ID != p.id {
			continue
		}
		p.mu.Lock()
		if ch := p.wait[src.Unmap()]; ch != nil {
			ch <- at
			delete(p.wait, src.Unmap())
		}
		p.mu.Unlock()
	}
}

// firstReply sends an echo request to dst every interval until one is
// answered, and returns when the first answer arrived.
func (p *prober) firstReply(ctx context.Context, dst netip.Addr, interval, timeout time.Duration) (time.Time, error) {
	ch := make(chan time.Time, 1)
	p.mu.Lock()
	p.wait[dst] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.wait, dst)
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := 1; ; seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq & 0xffff, Data: []byte("vland-bench")}}
		b, err := m.Marshal(nil)
		if err != nil {
			return time.Time{}, err
		}
		// A failed send (no ARP answer yet: EHOSTUNREACH) is a lost request.
		_, _ = p.conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()})
		select {
		case at := <-ch:
			return at, nil
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no answer from %s within %s", dst, timeout)
		case <-t.C:
		}
	}
}

// linkWatch follows the links of a namespace through netlink events: when
// each tap was first seen enslaved and up, and how many link and permanent
// neighbour and FDB changes happened, since the last reset.
type linkWatch struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	wired     map[string]time.Time
	linkEvs   map[string]int // link events by name
	permNeigh map[int]int    // permanent neighbour and FDB entries added, changed or removed, by link index
	lost      error          // the subscription failed: events were missed
	changed   chan struct{}  // closed and replaced on every recorded change
}

// watchNS subscribes to a namespace's link and neighbour changes.
func watchNS(ns string) (*linkWatch, error) {
	fd, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer fd.Close()
	w := &linkWatch{stop: make(chan struct{}), changed: make(chan struct{})}
	w.reset()
	links := make(chan netlink.LinkUpdate, 4096)
	neighs := make(chan netlink.NeighUpdate, 4096)
	// The library reports errors it skips (a message from a non-kernel
	// sender, say) and, last, the one that ends the subscription; only the
	// end loses events, and it shows as the channel closing.
	var lastErr error
	var errMu sync.Mutex
	note := func(err error) {
		errMu.Lock()
		lastErr = err
		errMu.Unlock()
	}
	ended := func(what string) {
		select {
		case <-w.stop:
			return
		default:
		}
		errMu.Lock()
		err := fmt.Errorf("%s subscription ended: %v", what, lastErr)
		errMu.Unlock()
		w.mu.Lock()
		if w.lost == nil {
			w.lost = err
		}
		w.mu.Unlock()
	}
	// A large socket buffer: a cold sync changes thousands of links at once.
	const rcvbuf = 16 << 20
	if err := netlink.LinkSubscribeWithOptions(links, w.stop, netlink.LinkSubscribeOptions{
		Namespace: &fd, ErrorCallback: note, ReceiveBufferSize: rcvbuf, ReceiveBufferForceSize: true,
	}); err != nil {
		return nil, fmt.Errorf("subscribe to links in %s: %w", ns, err)
	}
	if err := netlink.NeighSubscribeWithOptions(neighs, w.stop, netlink.NeighSubscribeOptions{
		Namespace: &fd, ErrorCallback: note, ReceiveBufferSize: rcvbuf, ReceiveBufferForceSize: true,
	}); err != nil {
		close(w.stop)
		return nil, fmt.Errorf("subscribe to neighbours in %s: %w", ns, err)
	}
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		for u := range links {
			w.onLink(u, time.Now())
		}
		ended("link")
	}()
	go func() {
		defer w.wg.Done()
		for u := range neighs {
			if u.State&netlink.NUD_PERMANENT != 0 {
				w.mu.Lock()
				w.permNeigh[u.LinkIndex]++
				w.mu.Unlock()
			}
		}
		ended("neighbour")
	}()
	return w, nil
}

func (w *linkWatch) onLink(u netlink.LinkUpdate, at time.Time) {
	a := u.Link.Attrs()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.linkEvs[a.Name]++
	if u.Header.Type == unix.RTM_NEWLINK && a.MasterIndex != 0 && a.Flags&net.FlagUp != 0 {
		if _, seen := w.wired[a.Name]; !seen {
			w.wired[a.Name] = at
			close(w.changed)
			w.changed = make(chan struct{})
		}
	}
}

// close ends the subscriptions.
func (w *linkWatch) close() {
	close(w.stop)
	w.wg.Wait()
}

// reset forgets what was seen so far.
func (w *linkWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wired = map[string]time.Time{}
	w.linkEvs = map[string]int{}
	w.permNeigh = map[int]int{}
}

// counts returns the link events by link name and the permanent neighbour
// and FDB changes by link index since the reset, and whether events were
// lost.
func (w *linkWatch) counts() (map[string]int, map[int]int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.linkEvs), maps.Clone(w.permNeigh), w.lost
}

// waitWired waits until every named link has been seen enslaved and up
// since the reset, and returns how many were and when the last one was.
func (w *linkWatch) waitWired(ctx context.Context, names []string, timeout time.Duration) (int, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		w.mu.Lock()
		n, last := 0, time.Time{}
		for _, name := range names {
			if at, ok := w.wired[name]; ok {
				n++
				if at.After(last) {
					last = at
				}
			}
		}
		changed, lost := w.changed, w.lost
		w.mu.Unlock()
		if n == len(names) {
			return n, last, nil
		}
		if lost != nil {
			return n, last, fmt.Errorf("link events lost (%v): %d of %d taps seen wired", lost, n, len(names))
		}
		select {
		case <-ctx.Done():
			return n, last, fmt.Errorf("%d of %d taps wired within %s", n, len(names), timeout)
		case <-changed:
		case <-time.After(100 * time.Millisecond): // to notice a lost subscription
		}
	}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// firstWired is when the first of the named links was seen wired since the
// reset (zero if none was).
func (w *linkWatch) firstWired(names []string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first time.Time
	for _, name := range names {
		if at, ok := w.wired[name]; ok && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

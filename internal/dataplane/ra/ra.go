// Package ra sends IPv6 router advertisements from a device inside a
// namespace, in the agent's process, where Neutron runs one radvd per
// router: the M (managed) and O (other configuration) flags and prefix
// information that tell hosts whether to use SLAAC, DHCPv6 for addresses or
// DHCPv6 for DNS only, the link MTU, and RDNSS. It is used from the DHCP
// namespace of a network without a router (with a router lifetime of zero:
// the DHCP port is no router) and from router namespaces.
//
// An Advertiser multicasts an RA to all nodes at start, a few times quickly
// (RFC 4861's initial advertisements), then every Interval or so, answers
// each router solicitation at once with a unicast RA, and on Stop sends a
// final one with router lifetime zero so hosts drop it as a default router.
package ra

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// Prefix is one Prefix Information option.
type Prefix struct {
	Prefix     netip.Prefix
	OnLink     bool // L flag
	Autonomous bool // A flag: hosts make SLAAC addresses in it
	// Valid and Preferred lifetimes; zero means radvd's defaults (1 day and
	// 4 hours).
	Valid, Preferred time.Duration
}

// Config is what an Advertiser announces.
type Config struct {
	Managed bool // M flag: addresses by DHCPv6 (dhcpv6-stateful)
	Other   bool // O flag: other configuration by DHCPv6 (stateless and stateful)
	// RouterLifetime zero says "not a default router".
	RouterLifetime time.Duration
	MTU            int // 0 sends no MTU option
	Prefixes       []Prefix
	DNS            []netip.Addr // RDNSS option; none sends none
	// Interval is the most time between unsolicited RAs; zero means
	// Neutron's max_rtr_adv_interval of 100 s. The least is a third of it.
	Interval time.Duration
}

// Equal reports whether two configurations announce the same.
func (c Config) Equal(o Config) bool {
	if c.Managed != o.Managed || c.Other != o.Other || c.RouterLifetime != o.RouterLifetime ||
		c.MTU != o.MTU || c.Interval != o.Interval || len(c.Prefixes) != len(o.Prefixes) || len(c.DNS) != len(o.DNS) {
		return false
	}
	for i := range c.Prefixes {
		if c.Prefixes[i] != o.Prefixes[i] {
			return false
		}
	}
	for i := range c.DNS {
		if c.DNS[i] != o.DNS[i] {
			return false
		}
	}
	return true
}

// Default lifetimes, radvd's.
const (
	defaultValid     = 24 * time.Hour
	defaultPreferred = 4 * time.Hour
	defaultInterval  = 100 * time.Second
)

// Marshal is the ICMPv6 message (checksum left zero: the kernel fills it in
// on raw ICMPv6 sockets) of an RA from a device with MAC mac.
func (c Config) Marshal(mac net.HardwareAddr) []byte {
	b := make([]byte, 16, 128)
	b[0] = byte(ipv6.ICMPTypeRouterAdvertisement)
	b[4] = 64 // current hop limit for hosts, the kernel's default
	if c.Managed {
		b[5] |= 0x80
	}
	if c.Other {
		b[5] |= 0x40
	}
	binary.BigEndian.PutUint16(b[6:], uint16(min(c.RouterLifetime/time.Second, 9000)))
	if len(mac) == 6 {
		b = append(b, 1, 1)
		b = append(b, mac...)
	}
	if c.MTU > 0 {
		o := make([]byte, 8)
		o[0], o[1] = 5, 1
		binary.BigEndian.PutUint32(o[4:], uint32(c.MTU))
		b = append(b, o...)
	}
	for _, p := range c.Prefixes {
		o := make([]byte, 32)
		o[0], o[1], o[2] = 3, 4, byte(p.Prefix.Bits())
		if p.OnLink {
			o[3] |= 0x80
		}
		if p.Autonomous {
			o[3] |= 0x40
		}
		valid, pref := p.Valid, p.Preferred
		if valid == 0 {
			valid = defaultValid
		}
		if pref == 0 {
			pref = defaultPreferred
		}
		binary.BigEndian.PutUint32(o[4:], uint32(valid/time.Second))
		binary.BigEndian.PutUint32(o[8:], uint32(pref/time.Second))
		a := p.Prefix.Masked().Addr().As16()
		copy(o[16:], a[:])
		b = append(b, o...)
	}
	if len(c.DNS) > 0 {
		o := make([]byte, 8, 8+16*len(c.DNS))
		o[0], o[1] = 25, byte(1+2*len(c.DNS))
		interval := c.Interval
		if interval == 0 {
			interval = defaultInterval
		}
		binary.BigEndian.PutUint32(o[4:], uint32(2*interval/time.Second))
		for _, d := range c.DNS {
			a := d.As16()
			o = append(o, a[:]...)
		}
		b = append(b, o...)
	}
	return b
}

// Advertiser sends RAs on one device of one namespace.
type Advertiser struct {
	log *slog.Logger

	mu     sync.Mutex
	cfg    Config
	mac    net.HardwareAddr
	ifi    *net.Interface
	conn   *ipv6.PacketConn
	raw    net.PacketConn
	kick   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

// New returns a stopped Advertiser announcing cfg.
func New(cfg Config, log *slog.Logger) *Advertiser {
	if log == nil {
		log = slog.Default()
	}
	return &Advertiser{log: log, cfg: cfg}
}

// allNodes and allRouters are the link-scope multicast groups of RAs and RSs.
var (
	allNodes   = net.ParseIP("ff02::1")
	allRouters = net.ParseIP("ff02::2")
)

// Start opens a raw ICMPv6 socket on ifname in namespace ns ("" the
// caller's, a name or a path) and advertises until Stop.
func (a *Advertiser) Start(ns, ifname string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		return errors.New("advertiser already started")
	}
	var (
		raw net.PacketConn
		pc  *ipv6.PacketConn
		ifi *net.Interface
	)
	err := namedns.Do(ns, func() error {
		var err error
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) })
			return errors.Join(err, serr)
		}}
		if raw, err = lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::"); err != nil {
			return err
		}
		pc = ipv6.NewPacketConn(raw)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterSolicitation)
		err = errors.Join(
			pc.SetICMPFilter(&f),
			pc.SetMulticastHopLimit(255), // RFC 4861: hosts drop RAs with less
			pc.SetHopLimit(255),
			pc.SetMulticastInterface(ifi),
			pc.SetMulticastLoopback(false),
			pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true),
			pc.JoinGroup(ifi, &net.IPAddr{IP: allRouters}),
		)
		if err != nil {
			raw.Close()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("router advertisements on %s in namespace %q: %w", ifname, ns, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.raw, a.conn, a.ifi, a.mac = raw, pc, ifi, ifi.HardwareAddr
	a.kick, a.done, a.cancel = make(chan struct{}, 1), make(chan struct{}), cancel
	log := a.log.With("netns", ns, "interface", ifname)
	go a.solicitations(pc, log)
	go a.periodic(ctx, log)
	log.Info("router advertisements started")
	return nil
}

// SetConfig changes what is announced; a change is multicast at once.
func (a *Advertiser) SetConfig(cfg Config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.Equal(cfg) {
		return
	}
	a.cfg = cfg
	if a.kick != nil {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// Config returns what is announced.
func (a *Advertiser) Config() Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Stop sends a last RA with router lifetime zero and closes the socket.
func (a *Advertiser) Stop() error {
	a.mu.Lock()
	conn, raw, done, cancel := a.conn, a.raw, a.done, a.cancel
	last := a.cfg
	a.conn, a.raw = nil, nil
	a.mu.Unlock()
	if conn == nil {
		return nil
	}
	cancel()
	<-done
	last.RouterLifetime = 0
	_ = a.send(conn, last, allNodes)
	err := raw.Close()
	if err != nil {
		return fmt.Errorf("close RA socket: %w", err)
	}
	return nil
}

// send writes one RA to dst on the advertiser's interface.
func (a *Advertiser) send(conn *ipv6.PacketConn, cfg Config, dst net.IP) error {
	a.mu.Lock()
	ifi, mac := a.ifi, a.mac
	a.mu.Unlock()
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}
	_, err := conn.WriteTo(cfg.Marshal(mac), cm, &net.IPAddr{IP: dst, Zone: ifi.Name})
	return err
}

// periodic multicasts RAs: three at short intervals, then one every
// Interval/3..Interval, and one whenever the configuration changes. A send
// that fails (the link-local address still tentative) is retried soon.
func (a *Advertiser) periodic(ctx context.Context, log *slog.Logger) {
	defer close(a.done)
	initial := 3
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-time.After(wait):
		}
		cfg := a.Config()
		a.mu.Lock()
		conn := a.conn
		a.mu.Unlock()
		if conn == nil {
			return
		}
		if err := a.send(conn, cfg, allNodes); err != nil {
			log.Debug("RA not sent; retrying", "err", err)
			wait = 200 * time.Millisecond
			continue
		}
		interval := cfg.Interval
		if interval <= 0 {
			interval = defaultInterval
		}
		if initial > 0 {
			initial--
			wait = min(interval, 4*time.Second)
			continue
		}
		wait = interval/3 + rand.N(interval-interval/3+1)
	}
}

// solicitations answers router solicitations with a unicast RA at once.
func (a *Advertiser) solicitations(conn *ipv6.PacketConn, log *slog.Logger) {
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Debug("RS receive failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		m, err := icmp.ParseMessage(58, buf[:n])
		if err != nil || m.Type != ipv6.ICMPTypeRouterSolicitation || (cm != nil && cm.HopLimit != 255) {
			continue // RFC 4861 6.1.1: not a valid solicitation
		}
		dst := allNodes
		if ip, ok := src.(*net.IPAddr); ok && !ip.IP.IsUnspecified() {
			dst = ip.IP
		}
		if err := a.send(conn, a.Config(), dst); err != nil {
			log.Debug("solicited RA not sent", "to", src, "err", err)
		}
	}
}

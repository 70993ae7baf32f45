package secgroup

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
	"github.com/vland/vland/internal/namedns/nstest"
)

// Root tests build a host namespace with Linux bridges and "VM"
// namespaces whose eth0 pairs with a tap<port id11> on a bridge, apply a
// Manager in the host namespace and send real packets between the VMs.

// host is the namespace the firewall runs in.
type host struct {
	*nstest.NS
	m *Manager
}

func newHost(t *testing.T) *host {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces, bridges, veth pairs and nftables tables")
	ns := nstest.New(t, "vsgh")
	if err := EnableBridgeNetfilter(ns.Name); err != nil {
		t.Fatal(err)
	}
	if on, err := BridgeNetfilterEnabled(ns.Name); err != nil || !on {
		t.Fatalf("br_netfilter in %s: on=%v err=%v", ns.Name, on, err)
	}
	m, err := NewManager(Options{NetNS: ns.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return &host{NS: ns, m: m}
}

// bridge creates a bridge that is up.
func (h *host) bridge(t *testing.T, name string) {
	t.Helper()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.H.LinkAdd(br); err != nil {
		t.Fatalf("bridge %s: %v", name, err)
	}
	if err := h.H.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
}

// reconcile applies d and fails the test on an error or a skipped item.
func (h *host) reconcile(t *testing.T, d Desired) Result {
	t.Helper()
	res, err := h.m.Reconcile(d)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if len(res.Skipped) > 0 {
		t.Fatalf("reconcile skipped: %v", res.Skipped)
	}
	return res
}

// vm is a namespace playing a virtual machine.
type vm struct {
	*nstest.NS
	port Port
}

var portSeq atomic.Int64

// vm creates a VM on bridge with the given addresses (CIDR notation) and
// returns it with its Port (port security on, no groups yet).
func (h *host) vm(t *testing.T, bridge string, zone uint16, cidrs ...string) *vm {
	t.Helper()
	n := portSeq.Add(1)
	id := fmt.Sprintf("%08x-aaaa-4bbb-8ccc-%012x", n, time.Now().UnixNano()&0xffffffffffff)
	tap := "tap" + id[:11]
	v := &vm{NS: nstest.New(t, "vsgv")}
	la := netlink.NewLinkAttrs()
	la.Name = tap
	if err := h.H.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(v.Fd))}); err != nil {
		t.Fatalf("veth %s: %v", tap, err)
	}
	tl, err := h.H.LinkByName(tap)
	if err != nil {
		t.Fatal(err)
	}
	br, err := h.H.LinkByName(bridge)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.H.LinkSetMaster(tl, br); err != nil {
		t.Fatal(err)
	}
	if err := h.H.LinkSetUp(tl); err != nil {
		t.Fatal(err)
	}
	eth, err := v.H.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	v.port = Port{ID: id, Device: tap, Bridge: bridge, Zone: zone, MAC: eth.Attrs().HardwareAddr, PortSecurity: true}
	for _, c := range cidrs {
		v.addAddr(t, c)
		v.port.IPs = append(v.port.IPs, netip.MustParsePrefix(c).Addr())
	}
	if err := v.H.LinkSetUp(eth); err != nil {
		t.Fatal(err)
	}
	return v
}

// addAddr adds an address to eth0 without the port knowing it (IPv6
// without DAD, so that it is usable at once).
func (v *vm) addAddr(t *testing.T, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.To4() == nil {
		a.Flags = unix.IFA_F_NODAD
	}
	eth, err := v.H.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.H.AddrAdd(eth, a); err != nil {
		t.Fatalf("%s: add %s: %v", v.Name, cidr, err)
	}
}

// ip is the VM's n-th fixed IP.
func (v *vm) ip(n int) netip.Addr { return v.port.IPs[n] }

// settle waits until every link that is up in the namespaces is
// operational: until then a bridge port drops frames.
func settle(t *testing.T, nss ...*nstest.NS) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range nss {
		for {
			links, err := n.H.LinkList()
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(links, func(l netlink.Link) bool {
				a := l.Attrs()
				return a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown
			})
			if i < 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s is up but not operational after 5s", n.Name, links[i].Attrs().Name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// listen starts a TCP server on port of every address of v that accepts
// connections and echoes what it reads; it is closed when the test ends.
func (v *vm) listen(t *testing.T, port int) {
	t.Helper()
	var l net.Listener
	err := namedns.Do(v.Name, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort("::", strconv.Itoa(port)))
		return err
	})
	if err != nil {
		t.Fatalf("%s: listen on %d: %v", v.Name, port, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// dial connects from v (from src, when valid) to dst:port within timeout.
func (v *vm) dial(src, dst netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := namedns.Do(v.Name, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	})
	return c, err
}

// Timeouts of probes: an expected success gets time for ARP/ND and a SYN
// retransmission; an expected failure is always paired with a success of
// the same kind elsewhere in its test, so a short wait is meaningful.
const (
	okWait    = 4 * time.Second
	blockWait = 1500 * time.Millisecond
)

// canConnect asserts that a TCP connection from v to dst:port succeeds.
func (v *vm) canConnect(t *testing.T, dst netip.Addr, port int) {
	t.Helper()
	c, err := v.dial(netip.Addr{}, dst, port, okWait)
	if err != nil {
		t.Fatalf("%s -> %s:%d: %v, want a connection", v.Name, dst, port, err)
	}
	c.Close()
}

// cannotConnect asserts that a TCP connection from v to dst:port fails.
func (v *vm) cannotConnect(t *testing.T, dst netip.Addr, port int) {
	t.Helper()
	c, err := v.dial(netip.Addr{}, dst, port, blockWait)
	if err == nil {
		c.Close()
		t.Fatalf("%s -> %s:%d connected, want it blocked", v.Name, dst, port)
	}
}

// echo writes a line on c and reports whether it comes back within wait.
func echo(c net.Conn, wait time.Duration) error {
	msg := []byte("ping\n")
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += k
	}
	return nil
}

// udpListen opens a UDP socket of v on addr:port (addr may be the
// unspecified address) that receives broadcasts; it is closed when the
// test ends.
func (v *vm) udpListen(t *testing.T, addr string, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := namedns.Do(v.Name, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscallRawConn) error { return setBroadcast(rc) }}
		pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: udp listen %s:%d: %v", v.Name, addr, port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpSend sends payload from v's src:sport to each dst:dport (broadcast
// addresses allowed).
func (v *vm) udpSend(t *testing.T, src string, sport int, dport int, payload string, dsts ...string) {
	t.Helper()
	c := v.udpListen(t, src, sport)
	defer c.Close()
	for _, dst := range dsts {
		if _, err := c.WriteToUDP([]byte(payload), net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(dst), uint16(dport)))); err != nil {
			t.Fatalf("%s: send to %s:%d: %v", v.Name, dst, dport, err)
		}
	}
}

// received waits for a datagram with payload on c; false after wait.
func received(c *net.UDPConn, payload string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			return false
		}
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == payload {
			return true
		}
	}
}

// ping sends one echo request from v and waits a second for the reply.
func (v *vm) ping(t *testing.T, dst netip.Addr) error {
	t.Helper()
	p, err := exec.LookPath("ping")
	if err != nil {
		t.Skip("needs ping (iputils-ping)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", v.Name, p, "-c", "1", "-W", "1", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", dst, v.Name, err, out)
	}
	return nil
}

// pingWithin retries ping until it answers or wait passes (the first may
// be lost while neighbours resolve).
func (v *vm) pingWithin(t *testing.T, dst netip.Addr, wait time.Duration) error {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := v.ping(t, dst)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// Group and rule builders.

func ip4(s string) netip.Addr { return netip.MustParseAddr(s) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// tcpIn is an ingress rule for one TCP port from any IPv4 address.
func tcpIn(id string, port int) Rule {
	return Rule{ID: id, Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(port), PortMax: intp(port)}
}

// defaultGroup is Neutron's default group: all egress, ingress from members.
func defaultGroup(id string) Group {
	return Group{ID: id, Stateful: true, Rules: []Rule{
		{ID: id + "-e4", Direction: Egress, Ethertype: IPv4},
		{ID: id + "-e6", Direction: Egress, Ethertype: IPv6},
		{ID: id + "-i4", Direction: Ingress, Ethertype: IPv4, RemoteGroupID: id},
		{ID: id + "-i6", Direction: Ingress, Ethertype: IPv6, RemoteGroupID: id},
	}}
}

// members lists the addresses of ports, for Desired.RemoteGroups.
func members(vms ...*vm) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range vms {
		for _, a := range v.port.IPs {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
		for _, ap := range v.port.AllowedPairs {
			out = append(out, ap.Prefix)
		}
	}
	return out
}

// withGroups returns v's port in the given groups.
func (v *vm) withGroups(groups ...string) Port {
	p := v.port
	p.Groups = groups
	return p
}

// syscallRawConn is what net.ListenConfig.Control hands over.
type syscallRawConn = syscall.RawConn

// setBroadcast allows a UDP socket to send to broadcast addresses, and
// binds it to eth0, where 255.255.255.255 goes without a route.
func setBroadcast(rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		if serr == nil {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "eth0")
		}
	})
	if err != nil {
		return err
	}
	return serr
}

package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/vland/vland/internal/namedns"
)

// udhcpcScript records the variables busybox udhcpc hands its script, one
// block per call, and configures the address on the VM's own eth0 (inside
// the VM namespace) so that renewals can be unicast from it like a real VM's.
const udhcpcScript = `out='%s'
{
  echo "event=$1"
  for v in interface ip subnet mask router dns mtu domain hostname staticroutes msstaticroutes lease serverid broadcast siaddr tftp bootfile message; do
    eval "echo \"$v=\${$v}\""
  done
  echo .
} >>"$out"
case "$1" in
bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
deconfig|nak) ip -4 addr flush dev "$interface" ;;
esac
exit 0
`

// udhcpc is one VM's busybox DHCP client and what its script recorded.
type udhcpc struct {
	vm     *testNS
	script string
	out    string
	cmd    *exec.Cmd
	seen   int
}

func newUdhcpc(t *testing.T, vm *testNS) *udhcpc {
	t.Helper()
	requireTool(t, "udhcpc", "udhcpc (busybox)")
	dir := t.TempDir()
	out := filepath.Join(dir, "records")
	return &udhcpc{vm: vm, out: out, script: writeScript(t, dir, "record.sh", fmt.Sprintf(udhcpcScript, out))}
}

// args are the client's common flags: eth0, our script, DISCOVER every
// second up to tries times.
func (u *udhcpc) args(tries int, extra ...string) []string {
	a := []string{"netns", "exec", u.vm.name, "udhcpc", "-f", "-i", "eth0", "-s", u.script,
		"-t", fmt.Sprint(tries), "-T", "1", "-A", "1"}
	return append(a, extra...)
}

// once runs `udhcpc -q -n`: obtain a lease and exit, or fail after tries
// DISCOVERs. It returns the bound record, or nil and the client's error.
func (u *udhcpc) once(t *testing.T, tries int) (record, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(tries+10)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", u.args(tries, "-q", "-n")...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("udhcpc: %w\n%s", err, out)
	}
	r, n := waitRecord(t, u.out, "event", u.seen, time.Second, "bound")
	u.seen = n
	return r, nil
}

// start runs a long-lived `udhcpc -f` that renews on SIGUSR1.
func (u *udhcpc) start(t *testing.T) {
	t.Helper()
	u.cmd = exec.Command("ip", u.args(5)...)
	var buf strings.Builder
	u.cmd.Stdout, u.cmd.Stderr = &buf, &buf
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		u.cmd.Process.Kill()
		u.cmd.Wait()
		if t.Failed() {
			t.Logf("udhcpc output:\n%s", buf.String())
		}
	})
}

// renew sends SIGUSR1, udhcpc's "renew now".
func (u *udhcpc) renew(t *testing.T) {
	t.Helper()
	if err := u.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
}

// wait returns the next record whose event is one of want.
func (u *udhcpc) wait(t *testing.T, want ...string) record {
	t.Helper()
	r, n := waitRecord(t, u.out, "event", u.seen, 10*time.Second, want...)
	u.seen = n
	return r
}

// checkRecord compares recorded variables with the wanted ones.
func checkRecord(t *testing.T, r record, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s=%q, want %q", k, r[k], v)
		}
	}
}

// fullLease is what udhcpc must report for portA.
var fullLease = map[string]string{
	"ip": "10.20.0.10", "subnet": "255.255.255.0", "mask": "24", "router": "10.20.0.1",
	"dns": "10.20.0.2 10.20.0.3", "mtu": "1450", "domain": "openstacklocal",
	"hostname": "host-10-20-0-10", "lease": "3600", "serverid": "10.20.0.2", "broadcast": "10.20.0.255",
	"staticroutes":   "172.16.0.0/12 10.20.0.254 169.254.169.254/32 10.20.0.2 0.0.0.0/0 10.20.0.1",
	"msstaticroutes": "172.16.0.0/12 10.20.0.254 169.254.169.254/32 10.20.0.2 0.0.0.0/0 10.20.0.1",
}

func TestUdhcpcGetsReservation(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l := newLAN(t, testTable(portA()))
	u := newUdhcpc(t, l.addVM(t, macA))
	r, err := u.once(t, 5)
	if err != nil {
		t.Fatal(err)
	}
	checkRecord(t, r, fullLease)
}

func TestUnknownMACThenPortAdded(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l := newLAN(t, testTable(portA()))
	u := newUdhcpc(t, l.addVM(t, macB))
	if r, err := u.once(t, 2); err == nil {
		t.Fatalf("a MAC without reservation got a lease: %v", r)
	}
	if s := l.srv.Stats(); s.Offers != 0 || s.Ignored < 2 {
		t.Fatalf("stats after unknown client: %+v", s)
	}
	// The agent learns the port: the next DISCOVER is answered.
	l.srv.SetTable(testTable(portA(), portB()))
	start := time.Now()
	r, err := u.once(t, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lease %s %v after the table change", r["ip"], time.Since(start).Round(time.Millisecond))
	checkRecord(t, r, map[string]string{"ip": "10.20.0.11", "mask": "24", "router": "", "lease": "86400", "serverid": "10.20.0.2"})
}

func TestRenewAfterFixedIPChangeAndDelete(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l := newLAN(t, testTable(portA()))
	vm := l.addVM(t, macA)
	u := newUdhcpc(t, vm)
	u.start(t)
	checkRecord(t, u.wait(t, "bound"), map[string]string{"ip": "10.20.0.10"})

	// A renewal with nothing changed keeps the address.
	u.renew(t)
	checkRecord(t, u.wait(t, "renew", "bound", "nak"), map[string]string{"event": "renew", "ip": "10.20.0.10"})

	// The port's fixed IP changes: the renewal of the old address is
	// refused and the client's new DISCOVER gets the new one.
	moved := portA()
	moved.IP = addr("10.20.0.42")
	l.srv.SetTable(testTable(moved))
	u.renew(t)
	checkRecord(t, u.wait(t, "nak", "renew"), map[string]string{"event": "nak"})
	checkRecord(t, u.wait(t, "bound"), map[string]string{"ip": "10.20.0.42", "router": "10.20.0.1"})

	// The port is deleted: its renewal gets a NAK, and nothing after.
	l.srv.SetTable(testTable())
	u.renew(t)
	checkRecord(t, u.wait(t, "nak", "renew"), map[string]string{"event": "nak"})
	if s := l.srv.Stats(); s.Naks < 2 || s.Panics != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// dhclientConf declares option 121 (ISC dhclient knows it by no name) and
// asks for everything the server sends; timeout bounds a failed run.
const dhclientConf = `option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name,
  interface-mtu, rfc3442-classless-static-routes, dhcp-lease-time, dhcp-server-identifier;
timeout 15;
`

// dhclientScript records what ISC dhclient reports and configures nothing.
const dhclientScript = `out='%s'
{
  echo "reason=$reason"
  for v in new_ip_address new_subnet_mask new_routers new_domain_name_servers new_interface_mtu new_domain_name new_host_name new_rfc3442_classless_static_routes new_dhcp_lease_time new_dhcp_server_identifier; do
    eval "echo \"$v=\${$v}\""
  done
  echo .
} >>"$out"
exit 0
`

func TestDhclientGetsReservation(t *testing.T) {
	requireRoot(t)
	requireTool(t, "dhclient", "isc-dhcp-client")
	t.Parallel()
	l := newLAN(t, testTable(portA()))
	vm := l.addVM(t, macA)
	dir := t.TempDir()
	out := filepath.Join(dir, "records")
	script := writeScript(t, dir, "record.sh", fmt.Sprintf(dhclientScript, out))
	conf := filepath.Join(dir, "dhclient.conf")
	writeFile(t, conf, dhclientConf)
	cmd := exec.Command("ip", "netns", "exec", vm.name, "dhclient", "-4", "-1", "-d", "-v",
		"-sf", script, "-cf", conf, "-pf", filepath.Join(dir, "pid"), "-lf", filepath.Join(dir, "leases"), "eth0")
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dhclient output:\n%s", buf.String())
		}
	})
	r, _ := waitRecord(t, out, "reason", 0, 20*time.Second, "BOUND")
	checkRecord(t, r, map[string]string{
		"new_ip_address": "10.20.0.10", "new_subnet_mask": "255.255.255.0", "new_routers": "10.20.0.1",
		"new_domain_name_servers": "10.20.0.2 10.20.0.3", "new_interface_mtu": "1450",
		"new_domain_name": "openstacklocal", "new_host_name": "host-10-20-0-10",
		"new_dhcp_lease_time": "3600", "new_dhcp_server_identifier": "10.20.0.2",
		"new_rfc3442_classless_static_routes": "12 172 16 10 20 0 254 32 169 254 169 254 10 20 0 2 0 10 20 0 1",
	})
}

// goClient opens an insomniacslk nclient4 client on eth0 inside a VM
// namespace; its packet socket stays there.
func goClient(tb testing.TB, ns string, opts ...nclient4.ClientOpt) *nclient4.Client {
	tb.Helper()
	var c *nclient4.Client
	err := namedns.Do(ns, func() error {
		var err error
		c, err = nclient4.New("eth0", append([]nclient4.ClientOpt{nclient4.WithTimeout(2 * time.Second), nclient4.WithRetry(2)}, opts...)...)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func TestGoClientLeaseRenewRelease(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l := newLAN(t, testTable(portA()))
	vm := l.addVM(t, macA)
	c := goClient(t, vm.name)
	lease, err := c.Request(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := netipOf(lease.ACK.YourIPAddr); got != addr("10.20.0.10") {
		t.Fatalf("leased %s", got)
	}
	if got := lease.ACK.IPAddressLeaseTime(0); got != time.Hour {
		t.Errorf("lease time %s", got)
	}
	// Configured like a real client, it renews; the ACK comes unicast.
	vm.addr(t, "eth0", "10.20.0.10/24")
	renewed, err := c.Renew(t.Context(), lease)
	if err != nil {
		t.Fatal(err)
	}
	if got := netipOf(renewed.ACK.YourIPAddr); got != addr("10.20.0.10") {
		t.Errorf("renewed %s", got)
	}
	if err := c.Release(renewed); err != nil {
		t.Fatal(err)
	}
}

// TestMalformedPacketsDropped sends garbage to port 67 from a VM: truncated
// and corrupted DHCP, empty and random datagrams. The server drops them all
// and keeps serving the real client that follows.
func TestMalformedPacketsDropped(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l := newLAN(t, testTable(portA()))
	attacker := l.addVM(t, "fa:16:3e:00:00:66")
	attacker.addr(t, "eth0", "10.20.0.66/24")
	good := wire(t, macA, dhcpv4.MessageTypeDiscover).ToBytes()
	bad := [][]byte{
		{}, {1}, good[:100], good[:236], good[:240], good[:243],
		append(append([]byte{}, good[:240]...), 53, 200, 1), // option longer than the packet
		append([]byte{2}, good[1:]...),                      // a BOOTREPLY
		[]byte(strings.Repeat("\xff", 1400)),
	}
	err := namedns.Do(attacker.name, func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 20, 0, 66), Port: 6800})
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, b := range bad {
			if _, err := conn.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(10, 20, 0, 2), Port: serverPort}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for l.srv.Stats().Received < uint64(len(bad)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Two of them parse (a header without options, a BOOTREPLY) and are
	// ignored; the rest do not parse at all.
	s := l.srv.Stats()
	if s.Received != uint64(len(bad)) || s.Malformed+s.Ignored != s.Received || s.Malformed < uint64(len(bad)-2) ||
		s.Offers+s.Acks+s.Naks != 0 || s.Panics != 0 {
		t.Fatalf("stats after garbage: %+v", s)
	}
	c := goClient(t, l.addVM(t, macA).name)
	if _, err := c.Request(t.Context()); err != nil {
		t.Fatalf("service disturbed: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	s := NewServer(testTable(), ServerOptions{})
	if err := s.Start("vdhcpt-no-such-namespace", "ns0"); err == nil {
		t.Error("started in a namespace that does not exist")
	}
	n := newNS(t)
	if err := s.Start(n.name, "nosuchdev"); err == nil {
		t.Error("started on an interface that does not exist")
	}
	l := newLAN(t, testTable())
	if err := l.srv.Start(l.dhcp.name, "ns0"); err == nil {
		t.Error("started twice")
	}
	other := NewServer(testTable(), ServerOptions{})
	if err := other.Start(l.dhcp.name, "ns0"); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second server on the same interface: %v", err)
		other.Stop()
	}
	// Serve runs until its context ends, then releases the socket.
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- other.Serve(ctx, n.name, "lo") }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// Stop and start again: the port is free again at once.
	if err := l.srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Start(l.dhcp.name, "ns0"); err != nil {
		t.Fatal(err)
	}
}

// TestManyNetworks serves 50 networks from one process, each in its own
// qdhcp- namespace with the same overlapping subnet, and gets a lease on
// every one of them, each with its own network's answer.
func TestManyNetworks(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	nets := buildNetworks(t, 50, 1)
	for i, n := range nets {
		lease, err := n.clients[0].Request(t.Context())
		if err != nil {
			t.Fatalf("network %d: %v (server stats %+v)", i, err, n.srv.Stats())
		}
		if got, want := netipOf(lease.ACK.YourIPAddr), n.ip(0); got != want {
			t.Errorf("network %d: leased %s, want %s", i, got, want)
		}
	}
}

// network is one of many served networks with Go clients on its far end.
type network struct {
	srv     *Server
	clients []*nclient4.Client // one per reserved MAC
	index   int
}

// ip is the address network n reserves for its i-th MAC (i < 240): the
// networks share one CIDR, as tenants' may, and differ in the third octet.
func (n network) ip(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 20, byte(n.index + 1), byte(i + 10)})
}

// buildNetworks makes count qdhcp- namespaces, each with a Server on ns0
// serving hosts reservations, and one load-generator namespace holding the
// far end of every network (lg<i>) with a Go client per reserved MAC on it
// (nclient4 accepts only replies for its own MAC).
func buildNetworks(tb testing.TB, count, hosts int) []network {
	tb.Helper()
	lg := newNS(tb)
	out := make([]network, count)
	var macs [][]net.HardwareAddr
	for i := range out {
		d := newNS(tb)
		dev := fmt.Sprintf("lg%d", i)
		veth(tb, d, "ns0", lg, dev, nil)
		d.addr(tb, "ns0", "10.20.0.2/16")
		d.up(tb, "ns0")
		lg.up(tb, dev)
		n := network{index: i}
		var rs []Reservation
		macs = append(macs, nil)
		for h := range hosts {
			m := net.HardwareAddr{0xfa, 0x16, 0x3e, byte(i), byte(h >> 8), byte(h)}
			macs[i] = append(macs[i], m)
			rs = append(rs, Reservation{MAC: m, IP: n.ip(h), Prefix: prefix("10.20.0.0/16"), Router: addr("10.20.0.1"),
				DNS: []netip.Addr{addr("10.20.0.2")}, MTU: 1450, Hostname: "host", DomainName: "openstacklocal", LeaseTime: time.Hour})
		}
		n.srv = NewServer(NewTable([]netip.Prefix{prefix("10.20.0.2/16")}, rs...), ServerOptions{Logger: quietLogger(tb)})
		if err := n.srv.Start(d.name, "ns0"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { n.srv.Stop() })
		out[i] = n
	}
	settle(tb, lg)
	err := namedns.Do(lg.name, func() error {
		for i := range out {
			for _, m := range macs[i] {
				c, err := nclient4.New(fmt.Sprintf("lg%d", i), nclient4.WithHWAddr(m),
					nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
				if err != nil {
					return err
				}
				tb.Cleanup(func() { c.Close() })
				out[i].clients = append(out[i].clients, c)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

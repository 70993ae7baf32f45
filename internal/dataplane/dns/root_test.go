package dns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

var nsSeq atomic.Int64

// newNS creates a fresh named namespace with lo up, removed with the test.
func newNS(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	name := fmt.Sprintf("vdnst-%d-%d", os.Getpid(), nsSeq.Add(1))
	if err := namedns.Create(name); err != nil {
		t.Fatal(err)
	}
	h, err := namedns.Handle(name)
	if err != nil {
		_ = namedns.Delete(name)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := namedns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatal(err)
	}
	return name, h
}

// TestRootDig runs a server in one namespace on a veth address, IPv4 and
// IPv6, and asks it with dig from a peer namespace.
func TestRootDig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and a veth pair")
	}
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig (Debian package bind9-dnsutils)")
	}
	srvNS, sh := newNS(t)
	cliNS, ch := newNS(t)
	la := netlink.NewLinkAttrs()
	la.Name = "dns0"
	v := &netlink.Veth{LinkAttrs: la, PeerName: "cli0"}
	if err := sh.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	peer, err := sh.LinkByName("cli0")
	if err != nil {
		t.Fatal(err)
	}
	cfd, err := os.Open(namedns.Path(cliNS))
	if err != nil {
		t.Fatal(err)
	}
	defer cfd.Close()
	if err := sh.LinkSetNsFd(peer, int(cfd.Fd())); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		h     *netlink.Handle
		dev   string
		addrs []string
	}{{sh, "dns0", []string{"10.9.0.2/24", "fd09::2/64"}}, {ch, "cli0", []string{"10.9.0.5/24", "fd09::5/64"}}} {
		l, err := x.h.LinkByName(x.dev)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range x.addrs {
			ad, _ := netlink.ParseAddr(a)
			ad.Flags = unix.IFA_F_NODAD
			if err := x.h.AddrAdd(l, ad); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	tbl := NewTable("openstacklocal", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24"), netip.MustParsePrefix("fd09::/64")},
		Record{Hostname: "host-10-9-0-2", Addrs: []netip.Addr{netip.MustParseAddr("10.9.0.2")}},
		Record{Hostname: "host-fd09--2", Addrs: []netip.Addr{netip.MustParseAddr("fd09::2")}},
		Record{Hostname: "vm5", Addrs: []netip.Addr{netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("fd09::5")}},
	)
	srv := NewServer(tbl, ServerOptions{})
	if err := srv.Start(srvNS, []netip.Addr{netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("fd09::2")}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}()
	dig := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", cliNS, "dig", "+time=2", "+tries=1"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, server := range []string{"@10.9.0.2", "@fd09::2"} {
		for _, tc := range []struct{ args, want string }{
			{"+short vm5.openstacklocal A", "10.9.0.5"},
			{"+short vm5.openstacklocal AAAA", "fd09::5"},
			{"+short host-10-9-0-2.openstacklocal", "10.9.0.2"},
			{"+short -x 10.9.0.5", "vm5.openstacklocal."},
			{"+short -x fd09::5", "vm5.openstacklocal."},
			{"+short -x 10.9.0.2", "host-10-9-0-2.openstacklocal."},
			{"+short +tcp vm5.openstacklocal", "10.9.0.5"},
		} {
			if got := dig(append([]string{server}, strings.Fields(tc.args)...)...); got != tc.want {
				t.Errorf("dig %s %s: %q, want %q", server, tc.args, got, tc.want)
			}
		}
		for _, tc := range []struct{ args, status string }{
			{"nope.openstacklocal", "NXDOMAIN"},
			{"-x 10.9.0.77", "NXDOMAIN"},
			{"example.com", "REFUSED"},
		} {
			if got := dig(append([]string{server}, strings.Fields(tc.args)...)...); !strings.Contains(got, "status: "+tc.status) {
				t.Errorf("dig %s %s: want %s, got\n%s", server, tc.args, tc.status, got)
			}
		}
	}
	// New records resolve as soon as they are set.
	srv.SetRecords(NewTable("openstacklocal", nil, Record{Hostname: "late", Addrs: []netip.Addr{netip.MustParseAddr("10.9.0.8")}}))
	if got := dig("@10.9.0.2", "+short", "late.openstacklocal"); got != "10.9.0.8" {
		t.Errorf("late: %q", got)
	}
}

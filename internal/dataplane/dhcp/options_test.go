package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestParseOption(t *testing.T) {
	server := addr("10.20.0.2")
	cases := []struct {
		opt  Option
		code uint8
		want []byte
		omit bool
		err  string
	}{
		// By dnsmasq name, with and without the option: prefix.
		{opt: Option{Name: "tftp-server", Value: "10.0.0.5"}, code: 66, want: []byte("10.0.0.5")}, // OT_NAME: text even if it looks like an address
		{opt: Option{Name: "option:bootfile-name", Value: "pxelinux.0"}, code: 67, want: []byte("pxelinux.0")},
		{opt: Option{Name: "tftp-server-address", Value: "10.0.0.5"}, code: 150, want: []byte{10, 0, 0, 5}},
		{opt: Option{Name: "server-ip-address", Value: "10.0.0.5"}, code: 255, want: []byte{10, 0, 0, 5}},
		{opt: Option{Name: "mtu", Value: "9000"}, code: 26, want: []byte{0x23, 0x28}},
		{opt: Option{Name: "MTU", Value: "1400"}, code: 26, want: []byte{0x05, 0x78}},
		{opt: Option{Name: "ntp-server", Value: "10.0.0.7, 10.0.0.8"}, code: 42, want: []byte{10, 0, 0, 7, 10, 0, 0, 8}},
		{opt: Option{Name: "dns-server", Value: "0.0.0.0,10.0.0.9"}, code: 6, want: []byte{10, 20, 0, 2, 10, 0, 0, 9}},
		{opt: Option{Name: "time-offset", Value: "-3600"}, code: 2, want: []byte{0xff, 0xff, 0xf1, 0xf0}},
		{opt: Option{Name: "ip-forward-enable", Value: "1"}, code: 19, want: []byte{1}},
		{opt: Option{Name: "T1", Value: "1h"}, code: 58, want: []byte{0, 0, 0x0e, 0x10}},
		{opt: Option{Name: "t2", Value: "2d"}, code: 59, want: []byte{0, 0x02, 0xa3, 0x00}},
		{opt: Option{Name: "domain-search", Value: "a.example,example"}, code: 119, want: []byte("\x01a\x07example\x00\x07example\x00")},
		{opt: Option{Name: "classless-static-route", Value: "10.1.0.0/16,10.20.0.9,0.0.0.0/0,10.20.0.1"}, code: 121,
			want: []byte{16, 10, 1, 10, 20, 0, 9, 0, 10, 20, 0, 1}},
		{opt: Option{Name: "sip-server", Value: "10.0.0.1"}, code: 120, want: []byte{1, 10, 0, 0, 1}},
		// By number: known numbers take the named option's type.
		{opt: Option{Name: "66", Value: "tftp.example"}, code: 66, want: []byte("tftp.example")},
		{opt: Option{Name: "option:26", Value: "1400"}, code: 26, want: []byte{0x05, 0x78}},
		{opt: Option{Code: 42, Value: "10.0.0.7"}, code: 42, want: []byte{10, 0, 0, 7}},
		// Unknown numbers: the value's shape decides.
		{opt: Option{Name: "252", Value: "http://wpad.example/wpad.dat"}, code: 252, want: []byte("http://wpad.example/wpad.dat")},
		{opt: Option{Name: "224", Value: "01:02:0a:ff"}, code: 224, want: []byte{1, 2, 10, 255}},
		{opt: Option{Name: "224", Value: "7"}, code: 224, want: []byte{7}},
		{opt: Option{Name: "224", Value: "300"}, code: 224, want: []byte{1, 0x2c}},
		{opt: Option{Name: "224", Value: "70000"}, code: 224, want: []byte{0, 1, 0x11, 0x70}},
		{opt: Option{Name: "224", Value: "7i"}, code: 224, want: []byte{0, 0, 0, 7}},
		{opt: Option{Name: "224", Value: "10.0.0.1,10.0.0.2"}, code: 224, want: []byte{10, 0, 0, 1, 10, 0, 0, 2}},
		{opt: Option{Name: "224", Value: `"10.0.0.1"`}, code: 224, want: []byte("10.0.0.1")},
		{opt: Option{Name: "224", Value: "hello world"}, code: 224, want: []byte("hello world")},
		// Empty values: defaulted options are removed, others sent empty.
		{opt: Option{Name: "router", Value: ""}, code: 3, omit: true, want: []byte{}},
		{opt: Option{Name: "option:dns-server"}, code: 6, omit: true, want: []byte{}},
		{opt: Option{Name: "rapid-commit"}, code: 80, want: []byte{}},
		// Tags are parsed off the name.
		{opt: Option{Name: "tag:ipxe,bootfile-name", Value: "http://boot/x.ipxe"}, code: 67, want: []byte("http://boot/x.ipxe")},
		// Errors.
		{opt: Option{Name: "no-such-option", Value: "1"}, err: "unknown option name"},
		{opt: Option{Name: "option6:dns-server", Value: "[fd00::1]"}, err: "DHCPv6"},
		{opt: Option{Name: "vendor:PXEClient,1", Value: "0.0.0.0"}, err: "not a tag"},
		{opt: Option{Name: "lease-time", Value: "3600"}, err: "set by the server"},
		{opt: Option{Name: "54", Value: "10.0.0.1"}, err: "set by the server"},
		{opt: Option{Name: "router", Value: "gateway"}, err: "not a list of IPv4 addresses"},
		{opt: Option{Name: "router", Value: "10.0.0.256"}, err: "bad IPv4 address"},
		{opt: Option{Name: "224", Value: "01:zz"}, code: 224, want: []byte("01:zz")}, // not hex: text
		{opt: Option{Name: "root-path", Value: strings.Repeat("x", 256)}, err: "more than 255"},
		{opt: Option{}, err: "neither name nor code"},
	}
	for _, c := range cases {
		p, err := parseOption(c.opt, server)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want %q", c.opt, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.opt, err)
			continue
		}
		if p.code != c.code || !bytes.Equal(p.value, c.want) || p.omit != c.omit {
			t.Errorf("%+v: got code %d value %v omit %v, want %d %v %v", c.opt, p.code, p.value, p.omit, c.code, c.want, c.omit)
		}
	}
}

func TestExtraOptionsInReply(t *testing.T) {
	r := portA()
	r.ExtraOptions = []Option{
		{Name: "router", Value: "10.20.0.254"},               // moves the default route of 121 too
		{Name: "mtu", Value: "1400"},                         // overrides the network MTU
		{Name: "option:domain-name"},                         // removes option 15
		{Name: "tftp-server", Value: "tftp.example"},         // adds 66
		{Name: "server-ip-address", Value: "10.20.0.5"},      // siaddr
		{Name: "tag:ipxe,bootfile-name", Value: "boot.ipxe"}, // only for iPXE
		{Name: "tag:!ipxe,bootfile-name", Value: "undionly.kpxe"},
		{Name: "tag:other,119", Value: "never.example"}, // unknown tag: never set
		{Name: "no-such-option", Value: "skipped"},      // invalid: skipped, not fatal
	}
	tbl := testTable(r)
	resp := reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), tbl, dhcpv4.MessageTypeOffer)
	if got := resp.Router(); len(got) != 1 || !got[0].Equal(net.IPv4(10, 20, 0, 254)) {
		t.Errorf("router %v", got)
	}
	routes := resp.GetOneOption(dhcpv4.OptionClasslessStaticRoute)
	if !bytes.HasSuffix(routes, []byte{0, 10, 20, 0, 254}) {
		t.Errorf("121 default route not moved to the overriding router: %v", routes)
	}
	if got := resp.GetOneOption(dhcpv4.OptionInterfaceMTU); !bytes.Equal(got, []byte{0x05, 0x78}) {
		t.Errorf("mtu %v", got)
	}
	if resp.Options.Has(dhcpv4.OptionDomainName) {
		t.Error("domain name not removed")
	}
	if resp.TFTPServerName() != "tftp.example" || resp.BootFileNameOption() != "undionly.kpxe" {
		t.Errorf("tftp %q bootfile %q", resp.TFTPServerName(), resp.BootFileNameOption())
	}
	if !resp.ServerIPAddr.Equal(net.IPv4(10, 20, 0, 5)) {
		t.Errorf("siaddr %s", resp.ServerIPAddr)
	}
	if resp.Options.Has(dhcpv4.OptionDNSDomainSearchList) {
		t.Error("option guarded by an unset tag was sent")
	}
	ipxe := wire(t, macA, dhcpv4.MessageTypeDiscover, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{1, 1, 1}))
	if got := reply(t, ipxe, tbl, dhcpv4.MessageTypeOffer).BootFileNameOption(); got != "boot.ipxe" {
		t.Errorf("iPXE client got bootfile %q", got)
	}

	// Removing the router removes the default route from 121 as well.
	r.ExtraOptions = []Option{{Name: "3"}}
	resp = reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(r), dhcpv4.MessageTypeOffer)
	if resp.Options.Has(dhcpv4.OptionRouter) {
		t.Error("router not removed")
	}
	for _, rt := range resp.ClasslessStaticRoute() {
		if ones, _ := rt.Dest.Mask.Size(); ones == 0 {
			t.Errorf("default route %s kept after removing the router", rt)
		}
	}
	// Overriding 121 keeps 249 in step.
	r.ExtraOptions = []Option{{Name: "121", Value: "10.9.0.0/16,10.20.0.9"}}
	resp = reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(r), dhcpv4.MessageTypeOffer)
	want := []byte{16, 10, 9, 10, 20, 0, 9}
	if !bytes.Equal(resp.GetOneOption(dhcpv4.OptionClasslessStaticRoute), want) || !bytes.Equal(resp.GetOneOption(optMSClasslessRoutes), want) {
		t.Errorf("121/249 after override: %s", resp.Options)
	}
}

func TestBroadcastOf(t *testing.T) {
	for in, want := range map[string]string{"10.20.0.0/24": "10.20.0.255", "10.20.0.77/20": "10.20.15.255", "0.0.0.0/0": "255.255.255.255", "10.0.0.8/30": "10.0.0.11"} {
		if got := broadcastOf(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

package dhcp

import (
	"bytes"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

const (
	macA       = "fa:16:3e:00:00:0a"
	macB       = "fa:16:3e:00:00:0b"
	macUnknown = "fa:16:3e:00:00:ff"
)

// portA is a fully featured reservation on subnet 10.20.0.0/24, whose DHCP
// port is 10.20.0.2.
func portA() Reservation {
	return Reservation{
		MAC:    mac(macA),
		IP:     addr("10.20.0.10"),
		Prefix: prefix("10.20.0.0/24"),
		Router: addr("10.20.0.1"),
		DNS:    []netip.Addr{addr("10.20.0.2"), addr("10.20.0.3")},
		HostRoutes: []Route{
			{Dst: prefix("172.16.0.0/12"), NextHop: addr("10.20.0.254")},
			{Dst: prefix("169.254.169.254/32"), NextHop: addr("10.20.0.2")},
		},
		MTU:        1450,
		DomainName: "openstacklocal",
		Hostname:   "host-10-20-0-10",
		LeaseTime:  time.Hour,
	}
}

// portB is a bare reservation: no gateway, no routes, defaults elsewhere.
func portB() Reservation {
	return Reservation{MAC: mac(macB), IP: addr("10.20.0.11"), Prefix: prefix("10.20.0.0/24")}
}

func testTable(rs ...Reservation) Table {
	return NewTable([]netip.Prefix{prefix("10.20.0.2/24")}, rs...)
}

var fixedXID = dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}

// wire builds a request as a client would send it and parses it back from
// bytes, so every test also goes through the parser the server uses.
func wire(t testing.TB, hw string, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	mods = append([]dhcpv4.Modifier{
		dhcpv4.WithTransactionID(fixedXID),
		dhcpv4.WithHwAddr(mac(hw)),
		dhcpv4.WithMessageType(mt),
	}, mods...)
	d, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dhcpv4.FromBytes(d.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func withRequested(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip)))
}

func withServerID(ip string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(ip)))
}

// reply runs Reply and checks the answer's message type (0: no answer).
func reply(t *testing.T, req *dhcpv4.DHCPv4, tbl Table, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	t.Helper()
	resp, ok := Reply(req, tbl)
	if want == dhcpv4.MessageTypeNone {
		if ok {
			t.Fatalf("want no reply, got %s", resp.Summary())
		}
		return nil
	}
	if !ok {
		t.Fatalf("want %s, got no reply", want)
	}
	if got := resp.MessageType(); got != want {
		t.Fatalf("want %s, got %s: %s", want, got, resp.Summary())
	}
	// What the server sends must parse back to the same reply.
	if _, err := dhcpv4.FromBytes(resp.ToBytes()); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if resp.TransactionID != req.TransactionID || !bytes.Equal(resp.ClientHWAddr, req.ClientHWAddr) {
		t.Fatalf("reply xid/chaddr %s/%s, want %s/%s", resp.TransactionID, resp.ClientHWAddr, req.TransactionID, req.ClientHWAddr)
	}
	return resp
}

func TestOfferGolden(t *testing.T) {
	tbl := testTable(portA(), portB())
	for name, hw := range map[string]string{"offer-full": macA, "offer-bare": macB} {
		t.Run(name, func(t *testing.T) {
			resp := reply(t, wire(t, hw, dhcpv4.MessageTypeDiscover), tbl, dhcpv4.MessageTypeOffer)
			golden(t, name, resp.Summary())
		})
	}
}

func TestOfferOptions(t *testing.T) {
	resp := reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(portA()), dhcpv4.MessageTypeOffer)
	checks := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"yiaddr", resp.YourIPAddr.To4(), []byte{10, 20, 0, 10}},
		{"mask", resp.GetOneOption(dhcpv4.OptionSubnetMask), []byte{255, 255, 255, 0}},
		{"broadcast", resp.GetOneOption(dhcpv4.OptionBroadcastAddress), []byte{10, 20, 0, 255}},
		{"router", resp.GetOneOption(dhcpv4.OptionRouter), []byte{10, 20, 0, 1}},
		{"dns", resp.GetOneOption(dhcpv4.OptionDomainNameServer), []byte{10, 20, 0, 2, 10, 20, 0, 3}},
		{"mtu", resp.GetOneOption(dhcpv4.OptionInterfaceMTU), []byte{0x05, 0xaa}},
		{"domain", resp.GetOneOption(dhcpv4.OptionDomainName), []byte("openstacklocal")},
		{"hostname", resp.GetOneOption(dhcpv4.OptionHostName), []byte("host-10-20-0-10")},
		{"lease", resp.GetOneOption(dhcpv4.OptionIPAddressLeaseTime), []byte{0, 0, 0x0e, 0x10}},
		{"T1", resp.GetOneOption(dhcpv4.OptionRenewTimeValue), []byte{0, 0, 0x07, 0x08}},
		{"T2", resp.GetOneOption(dhcpv4.OptionRebindingTimeValue), []byte{0, 0, 0x0c, 0x4e}},
		{"server id", resp.GetOneOption(dhcpv4.OptionServerIdentifier), []byte{10, 20, 0, 2}},
		// RFC 3442: 172.16/12 via .254, 169.254.169.254/32 via .2, default via .1.
		{"121", resp.GetOneOption(dhcpv4.OptionClasslessStaticRoute), []byte{
			12, 172, 16, 10, 20, 0, 254,
			32, 169, 254, 169, 254, 10, 20, 0, 2,
			0, 10, 20, 0, 1,
		}},
	}
	for _, c := range checks {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if ms := resp.GetOneOption(optMSClasslessRoutes); !bytes.Equal(ms, resp.GetOneOption(dhcpv4.OptionClasslessStaticRoute)) {
		t.Errorf("option 249 %v differs from 121", ms)
	}
	routes := resp.ClasslessStaticRoute()
	if len(routes) != 3 || routes[2].Dest.String() != "0.0.0.0/0" || !routes[2].Router.Equal(net.IPv4(10, 20, 0, 1)) {
		t.Errorf("library reads routes as %v", routes)
	}
}

func TestOfferWithoutGateway(t *testing.T) {
	r := portA()
	r.Router = netip.Addr{}
	resp := reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(r), dhcpv4.MessageTypeOffer)
	if resp.Options.Has(dhcpv4.OptionRouter) {
		t.Errorf("router option sent for a subnet without gateway: %v", resp.Router())
	}
	for _, rt := range resp.ClasslessStaticRoute() {
		if ones, _ := rt.Dest.Mask.Size(); ones == 0 {
			t.Errorf("default route %s sent without a gateway", rt)
		}
	}
	// Without host routes there is no option 121 at all.
	bare := reply(t, wire(t, macB, dhcpv4.MessageTypeDiscover), testTable(portB()), dhcpv4.MessageTypeOffer)
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRouter, dhcpv4.OptionClasslessStaticRoute, optMSClasslessRoutes,
		dhcpv4.OptionDomainNameServer, dhcpv4.OptionInterfaceMTU, dhcpv4.OptionHostName, dhcpv4.OptionDomainName} {
		if bare.Options.Has(code) {
			t.Errorf("bare reservation got option %s", code)
		}
	}
	if got := bare.IPAddressLeaseTime(0); got != DefaultLeaseTime {
		t.Errorf("default lease %s, want %s", got, DefaultLeaseTime)
	}
}

func TestExplicitDefaultHostRouteNotDuplicated(t *testing.T) {
	r := portA()
	r.HostRoutes = []Route{{Dst: prefix("0.0.0.0/0"), NextHop: addr("10.20.0.254")}, {Dst: prefix("10.30.0.0/24")}}
	resp := reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(r), dhcpv4.MessageTypeOffer)
	want := []byte{0, 10, 20, 0, 254, 24, 10, 30, 0, 0, 0, 0, 0}
	if got := resp.GetOneOption(dhcpv4.OptionClasslessStaticRoute); !bytes.Equal(got, want) {
		t.Errorf("121: got %v, want %v", got, want)
	}
}

func TestInfiniteLease(t *testing.T) {
	r := portA()
	r.LeaseTime = Infinite
	resp := reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(r), dhcpv4.MessageTypeOffer)
	if got := resp.GetOneOption(dhcpv4.OptionIPAddressLeaseTime); !bytes.Equal(got, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("lease %v, want infinite", got)
	}
	if resp.Options.Has(dhcpv4.OptionRenewTimeValue) || resp.Options.Has(dhcpv4.OptionRebindingTimeValue) {
		t.Error("T1/T2 sent with an infinite lease")
	}
}

func TestDiscoverUnknownIsSilent(t *testing.T) {
	reply(t, wire(t, macUnknown, dhcpv4.MessageTypeDiscover), testTable(portA()), dhcpv4.MessageTypeNone)
}

func TestRequestStates(t *testing.T) {
	tbl := testTable(portA())
	ciaddr := func(ip string) dhcpv4.Modifier { return dhcpv4.WithClientIP(net.ParseIP(ip)) }
	cases := []struct {
		name string
		mac  string
		mods []dhcpv4.Modifier
		want dhcpv4.MessageType
		dst  string
	}{
		{"selecting ours", macA, []dhcpv4.Modifier{withServerID("10.20.0.2"), withRequested("10.20.0.10")}, dhcpv4.MessageTypeAck, "255.255.255.255:68"},
		{"selecting wrong address", macA, []dhcpv4.Modifier{withServerID("10.20.0.2"), withRequested("10.20.0.99")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"selecting other server", macA, []dhcpv4.Modifier{withServerID("10.20.0.3"), withRequested("10.20.0.10")}, dhcpv4.MessageTypeNone, ""},
		{"selecting ours, unknown mac", macUnknown, []dhcpv4.Modifier{withServerID("10.20.0.2"), withRequested("10.20.0.10")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"init-reboot", macA, []dhcpv4.Modifier{withRequested("10.20.0.10")}, dhcpv4.MessageTypeAck, "255.255.255.255:68"},
		{"init-reboot old address", macA, []dhcpv4.Modifier{withRequested("10.20.0.77")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"init-reboot other network", macA, []dhcpv4.Modifier{withRequested("192.168.7.7")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"init-reboot unknown mac, our subnet", macUnknown, []dhcpv4.Modifier{withRequested("10.20.0.50")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"init-reboot unknown mac, elsewhere", macUnknown, []dhcpv4.Modifier{withRequested("192.168.7.7")}, dhcpv4.MessageTypeNone, ""},
		{"renewing", macA, []dhcpv4.Modifier{ciaddr("10.20.0.10")}, dhcpv4.MessageTypeAck, "10.20.0.10:68"},
		{"renewing changed address", macA, []dhcpv4.Modifier{ciaddr("10.20.0.9")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"renewing deleted port", macUnknown, []dhcpv4.Modifier{ciaddr("10.20.0.10")}, dhcpv4.MessageTypeNak, "255.255.255.255:68"},
		{"renewing stranger elsewhere", macUnknown, []dhcpv4.Modifier{ciaddr("172.20.0.10")}, dhcpv4.MessageTypeNone, ""},
		{"no address at all", macA, nil, dhcpv4.MessageTypeNone, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := wire(t, c.mac, dhcpv4.MessageTypeRequest, c.mods...)
			resp := reply(t, req, tbl, c.want)
			if resp == nil {
				return
			}
			if got := destination(req, resp).String(); got != c.dst {
				t.Errorf("sent to %s, want %s", got, c.dst)
			}
			switch c.want {
			case dhcpv4.MessageTypeAck:
				if !resp.YourIPAddr.Equal(net.IPv4(10, 20, 0, 10)) || !resp.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
					t.Errorf("ACK without the lease: %s", resp.Summary())
				}
			case dhcpv4.MessageTypeNak:
				if !resp.YourIPAddr.IsUnspecified() || resp.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || resp.Options.Has(dhcpv4.OptionSubnetMask) {
					t.Errorf("NAK carries configuration: %s", resp.Summary())
				}
				if !resp.ServerIdentifier().Equal(net.IPv4(10, 20, 0, 2)) {
					t.Errorf("NAK server id %s", resp.ServerIdentifier())
				}
			}
		})
	}
}

func TestInformReleaseDecline(t *testing.T) {
	tbl := testTable(portA())
	inf := wire(t, macA, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.20.0.10")))
	resp := reply(t, inf, tbl, dhcpv4.MessageTypeAck)
	if !resp.YourIPAddr.IsUnspecified() || resp.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || resp.Options.Has(dhcpv4.OptionRenewTimeValue) {
		t.Errorf("INFORM ACK carries a lease: %s", resp.Summary())
	}
	if !resp.Options.Has(dhcpv4.OptionDomainNameServer) || !resp.Options.Has(dhcpv4.OptionClasslessStaticRoute) {
		t.Errorf("INFORM ACK lacks configuration: %s", resp.Summary())
	}
	if got := destination(inf, resp).String(); got != "10.20.0.10:68" {
		t.Errorf("INFORM ACK to %s", got)
	}
	reply(t, wire(t, macUnknown, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.ParseIP("10.20.0.50"))), tbl, dhcpv4.MessageTypeNone)
	reply(t, wire(t, macA, dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.ParseIP("10.20.0.10"))), tbl, dhcpv4.MessageTypeNone)
	reply(t, wire(t, macA, dhcpv4.MessageTypeDecline, withRequested("10.20.0.10")), tbl, dhcpv4.MessageTypeNone)
}

func TestNotARequest(t *testing.T) {
	tbl := testTable(portA())
	offer := wire(t, macA, dhcpv4.MessageTypeOffer)
	reply(t, offer, tbl, dhcpv4.MessageTypeNone)
	bootp := wire(t, macA, dhcpv4.MessageTypeDiscover, dhcpv4.WithoutOption(dhcpv4.OptionDHCPMessageType))
	reply(t, bootp, tbl, dhcpv4.MessageTypeNone)
	reply := bootp
	reply.OpCode = dhcpv4.OpcodeBootReply
	if _, ok := Reply(reply, tbl); ok {
		t.Error("answered a BOOTREPLY")
	}
	if _, ok := Reply(nil, tbl); ok {
		t.Error("answered nil")
	}
	if _, ok := Reply(wire(t, macA, dhcpv4.MessageTypeDiscover), Table{}); ok {
		t.Error("answered from an empty table")
	}
	// A reservation the server cannot give a server identifier for is not
	// offered: the table has no server address.
	if _, ok := Reply(wire(t, macA, dhcpv4.MessageTypeDiscover), NewTable(nil, portA())); ok {
		t.Error("offered without a server identifier")
	}
}

func TestClientIdentifierAndRelay(t *testing.T) {
	req := wire(t, macA, dhcpv4.MessageTypeDiscover,
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0xfa, 0x16, 0x3e, 0, 0, 0x0a})),
		dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("circuit")))))
	resp := reply(t, req, testTable(portA()), dhcpv4.MessageTypeOffer)
	if !bytes.Equal(resp.GetOneOption(dhcpv4.OptionClientIdentifier), req.GetOneOption(dhcpv4.OptionClientIdentifier)) {
		t.Error("client identifier not echoed (RFC 6842)")
	}
	if !bytes.Equal(resp.GetOneOption(dhcpv4.OptionRelayAgentInformation), req.GetOneOption(dhcpv4.OptionRelayAgentInformation)) {
		t.Error("relay agent information not echoed")
	}
	if got := destination(req, resp).String(); got != "10.20.0.1:67" {
		t.Errorf("relayed reply to %s, want the relay", got)
	}
}

func TestServerIdentifierPerSubnet(t *testing.T) {
	second := Reservation{MAC: mac(macB), IP: addr("10.30.0.5"), Prefix: prefix("10.30.0.0/24")}
	tbl := NewTable([]netip.Prefix{prefix("10.20.0.2/24"), prefix("10.30.0.2/24")}, portA(), second)
	resp := reply(t, wire(t, macB, dhcpv4.MessageTypeDiscover), tbl, dhcpv4.MessageTypeOffer)
	if !resp.ServerIdentifier().Equal(net.IPv4(10, 30, 0, 2)) {
		t.Errorf("server id %s, want the DHCP port's address in the client's subnet", resp.ServerIdentifier())
	}
	// The client may select with either server identifier of ours.
	reply(t, wire(t, macB, dhcpv4.MessageTypeRequest, withServerID("10.30.0.2"), withRequested("10.30.0.5")), tbl, dhcpv4.MessageTypeAck)
	reply(t, wire(t, macB, dhcpv4.MessageTypeRequest, withServerID("10.20.0.2"), withRequested("10.30.0.5")), tbl, dhcpv4.MessageTypeAck)
}

func TestOversizedReplyTrimmed(t *testing.T) {
	r := portA()
	for i := range 30 {
		r.HostRoutes = append(r.HostRoutes, Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i), 0, 0}), 16), NextHop: addr("10.20.0.254")})
	}
	r.ExtraOptions = []Option{{Name: "root-path", Value: string(bytes.Repeat([]byte("x"), 200))}}
	req := wire(t, macA, dhcpv4.MessageTypeDiscover, dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter))
	resp := reply(t, req, testTable(r), dhcpv4.MessageTypeOffer)
	if n := len(resp.ToBytes()); n > 576-28 {
		t.Errorf("reply is %d bytes, client accepts %d", n, 576-28)
	}
	if !resp.Options.Has(dhcpv4.OptionClasslessStaticRoute) || resp.Options.Has(optMSClasslessRoutes) || resp.Options.Has(dhcpv4.OptionRootPath) {
		t.Errorf("trimmed the wrong options: %s", resp.Options)
	}
	// A client that accepts more gets everything.
	big := wire(t, macA, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)))
	full := reply(t, big, testTable(r), dhcpv4.MessageTypeOffer)
	if !full.Options.Has(optMSClasslessRoutes) || !full.Options.Has(dhcpv4.OptionRootPath) {
		t.Errorf("trimmed a reply that fits: %s", full.Options)
	}
}

func TestWireLen(t *testing.T) {
	resp := reply(t, wire(t, macA, dhcpv4.MessageTypeDiscover), testTable(portA()), dhcpv4.MessageTypeOffer)
	resp.Options[43] = bytes.Repeat([]byte{1}, 300) // split in two pieces
	if got, want := wireLen(resp), len(resp.ToBytes()); got != want {
		t.Errorf("wireLen %d, ToBytes %d", got, want)
	}
}

func TestValidate(t *testing.T) {
	if err := testTable(portA(), portB()).Validate(); err != nil {
		t.Errorf("valid table: %v", err)
	}
	bad := portA()
	bad.IP = addr("10.99.0.1")
	bad.ExtraOptions = []Option{{Name: "no-such-option", Value: "1"}}
	tbl := testTable(bad)
	tbl.Hosts["fa:16:3e:00:00:99"] = portB()
	err := tbl.Validate()
	if err == nil {
		t.Fatal("invalid table passed")
	}
	for _, want := range []string{"not inside subnet", "unknown option name", "keyed under"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := NewTable(nil).Validate(); err == nil {
		t.Error("table without server address passed")
	}
}

func TestDefaultHostname(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.5": "host-10-0-0-5", "fd00::5": "host-fd00--5"} {
		if got := DefaultHostname(addr(in)); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

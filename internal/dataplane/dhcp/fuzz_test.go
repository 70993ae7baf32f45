package dhcp

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fuzzTable is the table the fuzzer's packets are answered from: one known
// MAC with every option kind, extra options included.
func fuzzTable() Table {
	r := portA()
	r.ExtraOptions = []Option{
		{Name: "tftp-server", Value: "tftp.example"},
		{Name: "tag:ipxe,bootfile-name", Value: "boot.ipxe"},
		{Name: "server-ip-address", Value: "10.20.0.5"},
	}
	return testTable(r, portB())
}

// FuzzHandle feeds arbitrary datagrams through parsing and Reply: nothing may
// panic, a datagram that is not DHCP gets no answer, and every answer
// serializes into a packet that parses again and fits a client's buffer.
func FuzzHandle(f *testing.F) {
	for _, req := range seedRequests(f) {
		b := req.ToBytes()
		f.Add(b)
		f.Add(b[:len(b)/2])            // truncated inside the options
		f.Add(b[:236])                 // header only, no cookie
		f.Add(append(b[:240:240], 53)) // option code without length
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 6, 0})
	tbl := fuzzTable()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		req, resp, dst, err := handle(pkt, tbl)
		if err != nil {
			if resp != nil {
				t.Fatal("reply to a packet that did not parse")
			}
			return
		}
		if resp == nil {
			return
		}
		out := resp.ToBytes()
		back, err := dhcpv4.FromBytes(out)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if back.MessageType() != resp.MessageType() || back.TransactionID != req.TransactionID {
			t.Fatalf("reply changed on the wire: %s", back.Summary())
		}
		if !dst.IsValid() || (dst.Port() != 67 && dst.Port() != 68) {
			t.Fatalf("reply to %s", dst)
		}
	})
}

// seedRequests are well-formed requests of every kind, from known and
// unknown clients.
func seedRequests(tb testing.TB) []*dhcpv4.DHCPv4 {
	ci := dhcpv4.WithClientIP(net.ParseIP("10.20.0.10"))
	return []*dhcpv4.DHCPv4{
		wire(tb, macA, dhcpv4.MessageTypeDiscover),
		wire(tb, macUnknown, dhcpv4.MessageTypeDiscover),
		wire(tb, macA, dhcpv4.MessageTypeDiscover, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{1})),
		wire(tb, macA, dhcpv4.MessageTypeRequest, withServerID("10.20.0.2"), withRequested("10.20.0.10")),
		wire(tb, macA, dhcpv4.MessageTypeRequest, withRequested("10.20.0.99")),
		wire(tb, macA, dhcpv4.MessageTypeRequest, ci),
		wire(tb, macUnknown, dhcpv4.MessageTypeRequest, ci),
		wire(tb, macA, dhcpv4.MessageTypeInform, ci),
		wire(tb, macA, dhcpv4.MessageTypeRelease, ci),
		wire(tb, macA, dhcpv4.MessageTypeDecline, withRequested("10.20.0.10")),
		wire(tb, macA, dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IPv4(10, 20, 0, 1)),
			dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(100))),
	}
}

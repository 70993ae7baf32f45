package dhcp6

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

var (
	srvMAC  = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	vmMAC   = net.HardwareAddr{0xfa, 0x16, 0x3e, 0xaa, 0xbb, 0xcc}
	vmLL    = netip.MustParseAddr("fe80::f816:3eff:feaa:bbcc")
	vmAddr  = netip.MustParseAddr("fd00:1::5")
	subnet6 = netip.MustParsePrefix("fd00:1::/64")
	dns6    = netip.MustParseAddr("fd00:1::2")
)

func table() Table {
	return NewTable([]netip.Prefix{subnet6}, Reservation{
		MAC: vmMAC, Addrs: []netip.Addr{vmAddr}, DNS: []netip.Addr{dns6},
		DomainSearch: []string{"openstacklocal"}, LeaseTime: time.Hour,
	})
}

func solicit(t *testing.T, mac net.HardwareAddr) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewSolicit(mac)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// roundTrip encodes and decodes m, as the wire does.
func roundTrip(t *testing.T, m *dhcpv6.Message) *dhcpv6.Message {
	t.Helper()
	out, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return out
}

func TestStatefulSolicitRequestRenew(t *testing.T) {
	sid := ServerDUID(srvMAC)
	sol := roundTrip(t, solicit(t, vmMAC))
	adv, ok := Reply(sol, vmMAC, table(), sid)
	if !ok || adv.Type() != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("solicit: got %v, %v", adv, ok)
	}
	adv = roundTrip(t, adv)
	ia := adv.Options.OneIANA()
	if ia == nil || ia.Options.OneAddress() == nil || !ia.Options.OneAddress().IPv6Addr.Equal(vmAddr.AsSlice()) {
		t.Fatalf("advertise has no IA_NA with %s: %v", vmAddr, adv.Summary())
	}
	if ia.T1 != 30*time.Minute || ia.T2 != 48*time.Minute || ia.Options.OneAddress().ValidLifetime != time.Hour {
		t.Errorf("times: T1 %v T2 %v valid %v", ia.T1, ia.T2, ia.Options.OneAddress().ValidLifetime)
	}
	if d := adv.Options.DNS(); len(d) != 1 || !d[0].Equal(dns6.AsSlice()) {
		t.Errorf("DNS = %v", d)
	}
	if l := adv.Options.DomainSearchList(); l == nil || len(l.Labels) != 1 || l.Labels[0] != "openstacklocal" {
		t.Errorf("search list = %v", l)
	}
	req, err := dhcpv6.NewRequestFromAdvertise(adv)
	if err != nil {
		t.Fatal(err)
	}
	rep, ok := Reply(roundTrip(t, req), vmMAC, table(), sid)
	if !ok || rep.Type() != dhcpv6.MessageTypeReply || rep.Options.OneIANA().Options.OneAddress() == nil {
		t.Fatalf("request: %v %v", rep, ok)
	}
	// A request to another server is not ours to answer.
	other := roundTrip(t, req)
	other.UpdateOption(dhcpv6.OptServerID(ServerDUID(net.HardwareAddr{2, 0, 0, 0, 0, 9})))
	if _, ok := Reply(other, vmMAC, table(), sid); ok {
		t.Error("answered a request addressed to another server")
	}
}

func TestRenewAfterAddressChangeVoidsOld(t *testing.T) {
	sid := ServerDUID(srvMAC)
	old := netip.MustParseAddr("fd00:1::99")
	renew := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeRenew, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	renew.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: vmMAC}))
	renew.AddOption(dhcpv6.OptServerID(sid))
	ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}}
	ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: old.AsSlice(), ValidLifetime: time.Hour, PreferredLifetime: time.Hour})
	renew.AddOption(ia)
	renew = roundTrip(t, renew)

	rep, ok := Reply(renew, vmMAC, table(), sid)
	if !ok {
		t.Fatal("renew not answered")
	}
	got := map[netip.Addr]time.Duration{}
	for _, a := range roundTrip(t, rep).Options.OneIANA().Options.Addresses() {
		ip, _ := netip.AddrFromSlice(a.IPv6Addr)
		got[ip] = a.ValidLifetime
	}
	if got[vmAddr] != time.Hour || got[old] != 0 || len(got) != 2 {
		t.Errorf("renew answer lifetimes = %v; want %s for an hour and %s voided", got, vmAddr, old)
	}

	// The port deleted: a stranger renewing an address here is voided.
	rep, ok = Reply(renew, vmMAC, NewTable([]netip.Prefix{subnet6}), sid)
	if !ok {
		t.Fatal("renew of a deleted port not answered")
	}
	ia2 := roundTrip(t, rep).Options.OneIANA()
	if a := ia2.Options.OneAddress(); a == nil || a.ValidLifetime != 0 || ia2.Options.Status() == nil || ia2.Options.Status().StatusCode != iana.StatusNoBinding {
		t.Errorf("deleted port's renew: %v", rep.Summary())
	}
}

func TestStatelessAndStrangers(t *testing.T) {
	sid := ServerDUID(srvMAC)
	stateless := NewTable(nil, Reservation{MAC: vmMAC, DNS: []netip.Addr{dns6}})
	info := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeInformationRequest}
	info.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, LinkLayerAddr: vmMAC, Time: 5}))
	info = roundTrip(t, info)
	mac, ok := ClientMAC(info, vmLL)
	if !ok || mac.String() != vmMAC.String() {
		t.Fatalf("ClientMAC = %v %v", mac, ok)
	}
	rep, ok := Reply(info, mac, stateless, sid)
	if !ok || len(rep.Options.DNS()) != 1 || rep.Options.OneIANA() != nil {
		t.Fatalf("information-request: %v %v", rep, ok)
	}
	// A stateless client soliciting gets no address offer.
	if _, ok := Reply(roundTrip(t, solicit(t, vmMAC)), vmMAC, stateless, sid); ok {
		t.Error("stateless client was offered an address")
	}
	// An unknown MAC gets silence.
	stranger := net.HardwareAddr{0xfa, 0x16, 0x3e, 1, 2, 3}
	if _, ok := Reply(roundTrip(t, solicit(t, stranger)), stranger, table(), sid); ok {
		t.Error("answered an unknown MAC")
	}
}

func TestClientMACFromLinkLocal(t *testing.T) {
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeInformationRequest}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDEN{EnterpriseNumber: 1, EnterpriseIdentifier: []byte{1}}))
	mac, ok := ClientMAC(m, vmLL)
	if !ok || mac.String() != vmMAC.String() {
		t.Errorf("from EUI-64 link-local: %v %v", mac, ok)
	}
	if _, ok := ClientMAC(m, netip.MustParseAddr("fe80::1234:5678:9abc:def0")); ok {
		t.Error("a non-EUI-64 address gave a MAC")
	}
}

func FuzzHandle(f *testing.F) {
	sol, _ := dhcpv6.NewSolicit(vmMAC)
	f.Add(sol.ToBytes())
	f.Add([]byte{1, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{12})
	sid := ServerDUID(srvMAC)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		resp, err := Handle(pkt, vmLL, table(), sid)
		if err == nil && resp != nil {
			if _, err := dhcpv6.MessageFromBytes(resp.ToBytes()); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
		}
	})
}

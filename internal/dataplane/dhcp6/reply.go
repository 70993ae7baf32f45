package dhcp6

import (
	"bytes"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// ServerDUID is the server identifier of a server on a device with MAC mac:
// a DUID-LL, stable across agent restarts.
func ServerDUID(mac net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}
}

// ClientMAC finds the hardware address of the client that sent msg from
// peer: the link-layer address of a DUID-LL or DUID-LLT client identifier,
// else the EUI-64 interface identifier of peer's link-local address. ok is
// false when neither gives one.
func ClientMAC(msg *dhcpv6.Message, peer netip.Addr) (net.HardwareAddr, bool) {
	switch d := msg.Options.ClientID().(type) {
	case *dhcpv6.DUIDLL:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			return d.LinkLayerAddr, true
		}
	case *dhcpv6.DUIDLLT:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			return d.LinkLayerAddr, true
		}
	}
	return macFromEUI64(peer)
}

// macFromEUI64 inverts modified EUI-64: fe80::XXYY:ZZff:feUU:VVWW has MAC
// (XX^2):YY:ZZ:UU:VV:WW.
func macFromEUI64(a netip.Addr) (net.HardwareAddr, bool) {
	if !a.Is6() || !a.IsLinkLocalUnicast() {
		return nil, false
	}
	b := a.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil, false
	}
	return net.HardwareAddr{b[8] ^ 2, b[9], b[10], b[13], b[14], b[15]}, true
}

// Reply computes the answer to msg from a client with hardware address mac
// (nil when unknown), by RFC 8415 with dnsmasq's static-only semantics;
// ok is false when the server stays silent: a message addressed to another
// server, a client it knows nothing of, a message a server never answers.
func Reply(msg *dhcpv6.Message, mac net.HardwareAddr, t Table, serverID dhcpv6.DUID) (*dhcpv6.Message, bool) {
	if msg.Options.ClientID() == nil && msg.Type() != dhcpv6.MessageTypeInformationRequest {
		return nil, false
	}
	sid := msg.Options.ServerID()
	switch msg.Type() {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		if sid != nil {
			return nil, false // RFC 8415 16: these carry no server identifier
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if sid == nil || !sid.Equal(serverID) {
			return nil, false
		}
	case dhcpv6.MessageTypeInformationRequest:
		if sid != nil && !sid.Equal(serverID) {
			return nil, false
		}
	default:
		return nil, false
	}
	var r Reservation
	known := false
	if mac != nil {
		r, known = t.Hosts[MACKey(mac)]
	}
	resp := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: msg.TransactionID}
	if cid := msg.GetOneOption(dhcpv6.OptionClientID); cid != nil {
		resp.AddOption(cid)
	}
	resp.AddOption(dhcpv6.OptServerID(serverID))

	switch msg.Type() {
	case dhcpv6.MessageTypeInformationRequest:
		if !known {
			return nil, false
		}
		addConfig(resp, r)
		return resp, true

	case dhcpv6.MessageTypeSolicit:
		if !known || len(r.Addrs) == 0 || len(msg.Options.IANA()) == 0 {
			return nil, false
		}
		if msg.GetOneOption(dhcpv6.OptionRapidCommit) != nil {
			resp.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
		} else {
			resp.MessageType = dhcpv6.MessageTypeAdvertise
		}
		addIAs(resp, msg, r, t, true)
		addConfig(resp, r)
		return resp, true

	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		if !known {
			if !holdsAuthoritative(msg, t) {
				return nil, false
			}
			// A deleted port renewing: every address it holds here is void.
			r = Reservation{}
		}
		addIAs(resp, msg, r, t, known)
		if known {
			addConfig(resp, r)
		}
		return resp, true

	case dhcpv6.MessageTypeConfirm:
		code := iana.StatusSuccess
		n := 0
		for _, ia := range msg.Options.IANA() {
			for _, a := range ia.Options.Addresses() {
				n++
				ip, ok := netip.AddrFromSlice(a.IPv6Addr)
				if !ok || !t.authoritative(ip) {
					code = iana.StatusNotOnLink
				}
			}
		}
		if n == 0 {
			return nil, false
		}
		resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: code})
		return resp, true

	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		// Reservations are static: nothing to free. Say so politely.
		resp.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
		return resp, true
	}
	return nil, false
}

// holdsAuthoritative reports whether msg asks about an address in one of
// the server's stateful subnets.
func holdsAuthoritative(msg *dhcpv6.Message, t Table) bool {
	for _, ia := range msg.Options.IANA() {
		for _, a := range ia.Options.Addresses() {
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok && t.authoritative(ip) {
				return true
			}
		}
	}
	return false
}

// addIAs answers each IA_NA of msg: the first gets the reservation's
// addresses (and zero lifetimes for any other address the client lists
// there, RFC 8415 18.3.4), the rest NoAddrsAvail; with no reserved address
// every IA is told NoBinding with its addresses voided.
func addIAs(resp, msg *dhcpv6.Message, r Reservation, t Table, known bool) {
	valid, t1, t2 := lifetimes(r.LeaseTime)
	for i, ia := range msg.Options.IANA() {
		out := &dhcpv6.OptIANA{IaId: ia.IaId}
		give := i == 0 && known && len(r.Addrs) > 0
		if give {
			out.T1, out.T2 = t1, t2
			for _, a := range r.Addrs {
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(a.AsSlice()), PreferredLifetime: valid, ValidLifetime: valid})
			}
		}
		for _, a := range ia.Options.Addresses() {
			if give && hasAddr(r.Addrs, a.IPv6Addr) {
				continue
			}
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok && t.authoritative(ip) {
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.IPv6Addr, PreferredLifetime: 0, ValidLifetime: 0})
			}
		}
		if !give {
			code := iana.StatusNoBinding
			if msg.Type() == dhcpv6.MessageTypeSolicit || msg.Type() == dhcpv6.MessageTypeRequest {
				code = iana.StatusNoAddrsAvail
			}
			out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: code})
		}
		resp.AddOption(out)
	}
}

func hasAddr(list []netip.Addr, ip net.IP) bool {
	for _, a := range list {
		if bytes.Equal(a.AsSlice(), ip.To16()) {
			return true
		}
	}
	return false
}

// addConfig adds the stateless configuration: DNS servers and search list.
func addConfig(resp *dhcpv6.Message, r Reservation) {
	if len(r.DNS) > 0 {
		ips := make([]net.IP, 0, len(r.DNS))
		for _, a := range r.DNS {
			ips = append(ips, net.IP(a.AsSlice()))
		}
		resp.AddOption(dhcpv6.OptDNS(ips...))
	}
	if len(r.DomainSearch) > 0 {
		dhcpv6.WithDomainSearchList(r.DomainSearch...)(resp)
	}
	if len(r.Addrs) == 0 {
		// Stateless clients ask again after this long (RFC 8415 21.23);
		// a day, like the lease, so DNS changes reach them.
		valid, _, _ := lifetimes(r.LeaseTime)
		if valid > 0 && valid < time.Duration(0xffffffff)*time.Second {
			resp.AddOption(dhcpv6.OptInformationRefreshTime(valid))
		}
	}
}

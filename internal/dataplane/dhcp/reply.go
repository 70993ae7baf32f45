package dhcp

import (
	"encoding/binary"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Option codes the server writes that the library has no name for.
const (
	optMSClasslessRoutes dhcpv4.GenericOptionCode = 249 // Windows' pre-RFC 3442 option 121
	optIPXE                                       = 175 // sent by iPXE; Neutron's "ipxe" tag
)

// Reply is the server's answer to one request, as dnsmasq serving a Neutron
// network in authoritative mode would give it, or false for silence:
//
//   - DISCOVER from a MAC with a reservation gets an OFFER of its address;
//     a stranger gets nothing.
//   - REQUEST naming another server (SELECTING) is ignored: the client took
//     that server's offer. Naming one of ours, or asking to keep an address
//     (INIT-REBOOT, RENEWING, REBINDING), it gets an ACK when the address is
//     the reservation's and a NAK otherwise; a stranger gets a NAK when the
//     address is inside one of the table's subnets (a deleted port's renew),
//     silence when it belongs elsewhere.
//   - INFORM from a known MAC gets an ACK with the options and no lease.
//   - RELEASE and DECLINE need no answer; addresses are reservations, so
//     there is no pool to return them to.
//
// Requests that are not BOOTREQUESTs or lack a message type are ignored.
func Reply(req *dhcpv4.DHCPv4, t Table) (*dhcpv4.DHCPv4, bool) {
	if req == nil || req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) == 0 {
		return nil, false
	}
	res, known := t.Hosts[MACKey(req.ClientHWAddr)]
	if known && !res.IP.Is4() {
		known = false // unusable reservation: treat as none rather than offer garbage
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		if !known {
			return nil, false
		}
		return configure(req, res, t, dhcpv4.MessageTypeOffer)
	case dhcpv4.MessageTypeRequest:
		return answerRequest(req, res, known, t)
	case dhcpv4.MessageTypeInform:
		if !known {
			return nil, false
		}
		return configure(req, res, t, dhcpv4.MessageTypeAck)
	default:
		return nil, false
	}
}

// answerRequest tells the four kinds of REQUEST apart by RFC 2131 section
// 4.3.2: the server identifier is set only when SELECTING, ciaddr only when
// RENEWING or REBINDING, and INIT-REBOOT carries the address in option 50.
func answerRequest(req *dhcpv4.DHCPv4, res Reservation, known bool, t Table) (*dhcpv4.DHCPv4, bool) {
	sid := ip4(req.ServerIdentifier())
	requested := ip4(req.RequestedIPAddress())
	ciaddr := ip4(req.ClientIPAddr)
	var want netip.Addr
	switch {
	case sid.IsValid():
		if !t.isServer(sid) {
			return nil, false // the client chose another server's offer
		}
		want = requested
		if !want.IsValid() {
			want = ciaddr // not allowed by the RFC, but unambiguous
		}
		if !known || want != res.IP {
			return nak(req, t, sid, "requested address is not reserved for this client")
		}
		return configure(req, res, t, dhcpv4.MessageTypeAck)
	case ciaddr.IsValid():
		want = ciaddr
	case requested.IsValid():
		want = requested
	default:
		return nil, false // no address asked for: malformed
	}
	if !known {
		if t.authoritative(want) {
			return nak(req, t, t.serverFor(want), "no reservation for this client")
		}
		return nil, false // somebody else's network: stay silent
	}
	if want != res.IP {
		return nak(req, t, t.serverFor(want), "address is not reserved for this client")
	}
	return configure(req, res, t, dhcpv4.MessageTypeAck)
}

// newReply starts a reply with the header fields RFC 2131 table 3 copies from
// the request, the message type and the server identifier.
func newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, sid netip.Addr) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       make(dhcpv4.Options, 16),
	}
	if g := ip4(req.GatewayIPAddr); g.IsValid() {
		r.GatewayIPAddr = g.AsSlice()
		if v, ok := req.Options[dhcpv4.OptionRelayAgentInformation.Code()]; ok {
			r.Options[dhcpv4.OptionRelayAgentInformation.Code()] = v
		}
	}
	if v, ok := req.Options[dhcpv4.OptionClientIdentifier.Code()]; ok {
		r.Options[dhcpv4.OptionClientIdentifier.Code()] = v // RFC 6842
	}
	r.UpdateOption(dhcpv4.OptMessageType(mt))
	r.UpdateOption(dhcpv4.OptServerIdentifier(sid.AsSlice()))
	return r
}

// nak refuses a REQUEST. It carries nothing but the identifiers and a reason
// (RFC 2131 table 3), so the client drops its address and starts over.
func nak(req *dhcpv4.DHCPv4, t Table, sid netip.Addr, why string) (*dhcpv4.DHCPv4, bool) {
	if !sid.IsValid() {
		if sid = t.serverFor(netip.Addr{}); !sid.IsValid() {
			return nil, false
		}
	}
	r := newReply(req, dhcpv4.MessageTypeNak, sid)
	r.UpdateOption(dhcpv4.OptMessage(why))
	return r, true
}

// configure builds an OFFER or ACK carrying the reservation; for an INFORM it
// is an ACK without address or lease times (RFC 2131 section 3.4).
func configure(req *dhcpv4.DHCPv4, res Reservation, t Table, mt dhcpv4.MessageType) (*dhcpv4.DHCPv4, bool) {
	sid := t.serverFor(res.IP)
	if !sid.IsValid() {
		return nil, false // no server identifier to give: the table is unusable
	}
	r := newReply(req, mt, sid)
	inform := req.MessageType() == dhcpv4.MessageTypeInform
	if inform {
		r.ClientIPAddr = req.ClientIPAddr
	} else {
		if ci := ip4(req.ClientIPAddr); ci.IsValid() {
			r.ClientIPAddr = ci.AsSlice()
		}
		r.YourIPAddr = res.IP.AsSlice()
	}
	extras := applicableExtras(req, res, sid)
	router := effectiveRouter(res.Router, extras)
	setSubnetOptions(r, res, router)
	if !inform {
		setLeaseOptions(r, res.LeaseTime)
	}
	applyExtras(r, extras)
	fitToSize(r, req)
	return r, true
}

// ip4 is the IPv4 address in a header field or option, invalid when absent
// or 0.0.0.0.
func ip4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// setSubnetOptions writes what the subnet and the port define: mask,
// broadcast, router, DNS, names, MTU and classless static routes.
func setSubnetOptions(r *dhcpv4.DHCPv4, res Reservation, router netip.Addr) {
	if res.Prefix.IsValid() && res.Prefix.Addr().Is4() {
		bits := res.Prefix.Bits()
		r.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(bits, 32)))
		if bits <= 30 {
			r.UpdateOption(dhcpv4.OptBroadcastAddress(broadcastOf(res.Prefix).AsSlice()))
		}
	}
	if router.Is4() {
		r.UpdateOption(dhcpv4.OptRouter(router.AsSlice()))
	}
	if dns := v4Slices(res.DNS); len(dns) > 0 {
		r.UpdateOption(dhcpv4.OptDNS(dns...))
	}
	if res.Hostname != "" {
		r.UpdateOption(dhcpv4.OptHostName(res.Hostname))
	}
	if res.DomainName != "" {
		r.UpdateOption(dhcpv4.OptDomainName(res.DomainName))
	}
	if res.MTU >= 68 && res.MTU <= 0xffff {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, binary.BigEndian.AppendUint16(nil, uint16(res.MTU))))
	}
	if routes := classlessRoutes(res.HostRoutes, router); routes != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClasslessStaticRoute, routes))
		r.UpdateOption(dhcpv4.OptGeneric(optMSClasslessRoutes, routes))
	}
}

// classlessRoutes encodes host routes for option 121, or nil when there are
// none. RFC 3442 makes clients that understand the option ignore option 3, so
// the default route via the router must be in the list itself; Neutron's
// dnsmasq driver appends it the same way.
func classlessRoutes(routes []Route, router netip.Addr) []byte {
	var out []byte
	hasDefault := false
	for _, rt := range routes {
		if !rt.Dst.IsValid() || !rt.Dst.Addr().Is4() {
			continue
		}
		hop := rt.NextHop
		if !hop.Is4() {
			hop = netip.IPv4Unspecified() // on-link
		}
		hasDefault = hasDefault || rt.Dst.Bits() == 0
		out = appendDescriptor(out, rt.Dst)
		h := hop.As4()
		out = append(out, h[:]...)
	}
	if out == nil {
		return nil
	}
	if !hasDefault && router.Is4() {
		out = appendDescriptor(out, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		h := router.As4()
		out = append(out, h[:]...)
	}
	return out
}

// setLeaseOptions writes the lease time with renewal (T1 = 1/2) and
// rebinding (T2 = 7/8) times, RFC 2131's defaults, stated explicitly because
// some clients compute them wrongly.
func setLeaseOptions(r *dhcpv4.DHCPv4, lease time.Duration) {
	switch {
	case lease < 0:
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionIPAddressLeaseTime, []byte{0xff, 0xff, 0xff, 0xff}))
		return
	case lease == 0:
		lease = DefaultLeaseTime
	case lease < time.Second:
		lease = time.Second
	case lease > 0xfffffffe*time.Second:
		lease = 0xfffffffe * time.Second
	}
	r.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lease))
	r.UpdateOption(dhcpv4.OptRenewTimeValue(lease / 2))
	r.UpdateOption(dhcpv4.OptRebindingTimeValue(lease * 7 / 8))
}

// applicableExtras parses the reservation's extra options for this request,
// keeping those whose tags match; options that do not parse are skipped
// (Table.Validate reports them).
func applicableExtras(req *dhcpv4.DHCPv4, res Reservation, sid netip.Addr) []parsedOption {
	if len(res.ExtraOptions) == 0 {
		return nil
	}
	_, ipxe := req.Options[optIPXE]
	out := make([]parsedOption, 0, len(res.ExtraOptions))
	for _, o := range res.ExtraOptions {
		p, err := parseOption(o, sid)
		if err != nil || !tagsMatch(p.tags, ipxe) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// effectiveRouter is the router after extra options: overriding option 3
// moves the default route of option 121 along with it, removing it removes
// the default route.
func effectiveRouter(router netip.Addr, extras []parsedOption) netip.Addr {
	for _, p := range extras {
		if p.code != dhcpv4.OptionRouter.Code() {
			continue
		}
		router = netip.Addr{}
		if len(p.value) >= 4 && !p.omit {
			router = netip.AddrFrom4([4]byte(p.value[:4]))
		}
	}
	return router
}

// applyExtras lets extra options override or remove computed ones, in order.
func applyExtras(r *dhcpv4.DHCPv4, extras []parsedOption) {
	for _, p := range extras {
		switch {
		case p.code == codeServerIPAddress:
			// dnsmasq's server-ip-address: the next server (siaddr) for PXE.
			r.ServerIPAddr = net.IPv4zero
			if len(p.value) >= 4 && !p.omit {
				r.ServerIPAddr = net.IP(slices.Clone(p.value[:4]))
			}
		case p.omit:
			delete(r.Options, p.code)
		default:
			r.Options[p.code] = p.value
			if p.code == dhcpv4.OptionClasslessStaticRoute.Code() {
				// Keep Windows' copy in step with the override.
				r.Options[optMSClasslessRoutes.Code()] = p.value
			}
		}
	}
}

// broadcastOf is the last address of an IPv4 prefix.
func broadcastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	if p.Bits() == 0 {
		host = ^uint32(0)
	}
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])|host)
	return netip.AddrFrom4(a)
}

// v4Slices converts the IPv4 addresses of a list for the library.
func v4Slices(as []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(as))
	for _, a := range as {
		if a.Is4() {
			out = append(out, a.AsSlice())
		}
	}
	return out
}

// Sizes of the maximum message a client must accept (RFC 2131 section 2:
// 576-byte IP datagrams) and of the IPv4 and UDP headers around it.
const (
	minMaxMessage = 576
	ipUDPHeaders  = 28
)

// essentialCodes survive trimming an oversized reply: without them the
// client cannot use the lease.
var essentialCodes = map[uint8]bool{1: true, 3: true, 51: true, 53: true, 54: true, 58: true, 59: true, 61: true, 82: true, 121: true}

// fitToSize keeps the reply within what the client said it can receive
// (option 57, at least 576 bytes of IP datagram), first dropping Windows'
// copy of the routes, then options the client did not ask for, as dnsmasq
// also sends less rather than a reply the client would discard.
func fitToSize(r *dhcpv4.DHCPv4, req *dhcpv4.DHCPv4) {
	limit := minMaxMessage
	if n, err := req.MaxMessageSize(); err == nil && int(n) > limit {
		limit = int(n)
	}
	limit -= ipUDPHeaders
	if wireLen(r) <= limit {
		return
	}
	delete(r.Options, optMSClasslessRoutes.Code())
	requested := req.ParameterRequestList()
	codes := slices.Sorted(maps.Keys(r.Options))
	slices.Reverse(codes) // high codes first: the standard ones stay longest
	for _, code := range codes {
		if wireLen(r) <= limit {
			return
		}
		if !essentialCodes[code] && !requested.Has(dhcpv4.GenericOptionCode(code)) {
			delete(r.Options, code)
		}
	}
}

// wireLen is the length ToBytes will produce: the fixed header and cookie,
// each option split into 255-byte pieces (RFC 3396), the end option, padded
// to BOOTP's 300 bytes.
func wireLen(r *dhcpv4.DHCPv4) int {
	n := 240 + 1
	for _, v := range r.Options {
		pieces := (len(v) + 254) / 255
		if pieces == 0 {
			pieces = 1
		}
		n += 2*pieces + len(v)
	}
	return max(n, 300)
}

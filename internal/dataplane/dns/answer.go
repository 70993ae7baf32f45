package dns

import (
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// Answer is the reply to req from table t, for names t is authoritative for
// (see Table.Authoritative); any other name is REFUSED (the server forwards
// those when it has upstreams). It returns nil for what deserves no reply
// at all: a nil request or a response (QR set). It is pure: it reads req
// and t and changes neither.
//
//   - Not a QUERY: NOTIMP. Not exactly one question, or a class other than
//     IN (or ANY): FORMERR / REFUSED.
//   - A name of t: NOERROR with its A / AAAA records (ANY: both), none for
//     other types (NODATA).
//   - A reverse name of an address of t: its PTR records.
//   - The domain itself: NOERROR, no data.
//   - Other names t is authoritative for: NXDOMAIN.
func Answer(req *mdns.Msg, t *Table) *mdns.Msg {
	if req == nil || req.Response {
		return nil
	}
	m := new(mdns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.Question = req.Question
	if req.Opcode != mdns.OpcodeQuery {
		m.Question = nil
		m.Rcode = mdns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Question = nil
		m.Rcode = mdns.RcodeFormatError
		return m
	}
	if o := req.IsEdns0(); o != nil {
		if o.Version() != 0 {
			m.SetEdns0(mdns.DefaultMsgSize, false)
			m.Rcode = mdns.RcodeBadVers
			return m
		}
		m.SetEdns0(mdns.DefaultMsgSize, false)
	}
	q := req.Question[0]
	if t == nil || (q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY) || !t.Authoritative(q.Name) {
		m.Rcode = mdns.RcodeRefused
		return m
	}
	m.RecursionAvailable = true
	m.Authoritative = true
	name := strings.ToLower(mdns.Fqdn(q.Name))
	hdr := func(rrtype uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: q.Name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: DefaultTTL}
	}
	if addrs, ok := t.names[name]; ok {
		for _, a := range addrs {
			switch {
			case a.Is4() && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY):
				m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: a.AsSlice()})
			case a.Is6() && (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY):
				m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr(mdns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
		return m
	}
	if targets, ok := t.reverse[name]; ok {
		if q.Qtype == mdns.TypePTR || q.Qtype == mdns.TypeANY {
			for _, n := range targets {
				m.Answer = append(m.Answer, &mdns.PTR{Hdr: hdr(mdns.TypePTR), Ptr: n})
			}
		}
		return m
	}
	if name == t.domain {
		return m
	}
	m.Rcode = mdns.RcodeNameError
	return m
}

// addrOf is the address of an A or AAAA record, for tests and logs.
func addrOf(rr mdns.RR) netip.Addr {
	switch r := rr.(type) {
	case *mdns.A:
		a, _ := netip.AddrFromSlice(r.A)
		return a.Unmap()
	case *mdns.AAAA:
		a, _ := netip.AddrFromSlice(r.AAAA)
		return a
	}
	return netip.Addr{}
}

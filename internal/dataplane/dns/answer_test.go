package dns

import (
	"net/netip"
	"slices"
	"testing"

	mdns "github.com/miekg/dns"
)

func testTable() *Table {
	return NewTable("openstacklocal.", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")},
		Record{Hostname: "host-10-0-0-2", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}},
		Record{Hostname: "host-fd00--2", Addrs: []netip.Addr{netip.MustParseAddr("fd00::2")}},
		Record{Hostname: "web", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}},
		Record{Hostname: "", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.9")}},
		Record{Hostname: "bad.name", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.10")}},
	)
}

func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	return m
}

func answers(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.PTR:
			out = append(out, v.Ptr)
		default:
			out = append(out, addrOf(rr).String())
		}
	}
	return out
}

func TestAnswer(t *testing.T) {
	tbl := testTable()
	rev4, _ := mdns.ReverseAddr("10.0.0.5")
	rev6, _ := mdns.ReverseAddr("fd00::5")
	revUnknown, _ := mdns.ReverseAddr("10.0.0.77")
	revOutside, _ := mdns.ReverseAddr("192.0.2.1")
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web.openstacklocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.5"}},
		{"WEB.OpenStackLocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.5"}},
		{"web.openstacklocal.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00::5"}},
		{"web.openstacklocal.", mdns.TypeANY, mdns.RcodeSuccess, []string{"10.0.0.5", "fd00::5"}},
		{"web.openstacklocal.", mdns.TypeMX, mdns.RcodeSuccess, nil},
		{"host-10-0-0-2.openstacklocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.2"}},
		{"host-10-0-0-2.openstacklocal.", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"host-fd00--2.openstacklocal.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00::2"}},
		{rev4, mdns.TypePTR, mdns.RcodeSuccess, []string{"web.openstacklocal."}},
		{rev6, mdns.TypePTR, mdns.RcodeSuccess, []string{"web.openstacklocal."}},
		{revUnknown, mdns.TypePTR, mdns.RcodeNameError, nil},
		{"nope.openstacklocal.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"bad.name.openstacklocal.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"openstacklocal.", mdns.TypeSOA, mdns.RcodeSuccess, nil},
		{"example.com.", mdns.TypeA, mdns.RcodeRefused, nil},
		{revOutside, mdns.TypePTR, mdns.RcodeRefused, nil},
	} {
		r := Answer(query(tc.name, tc.qtype), tbl)
		if r == nil {
			t.Fatalf("%s %s: no reply", tc.name, mdns.TypeToString[tc.qtype])
		}
		got := answers(r)
		if r.Rcode != tc.rcode || !slices.Equal(got, tc.want) || r.Id != 4242 || !r.Response {
			t.Errorf("%s %s: rcode %s answers %v, want %s %v", tc.name, mdns.TypeToString[tc.qtype],
				mdns.RcodeToString[r.Rcode], got, mdns.RcodeToString[tc.rcode], tc.want)
		}
		if tc.rcode != mdns.RcodeRefused && !r.Authoritative {
			t.Errorf("%s: not authoritative", tc.name)
		}
	}
}

func TestAnswerOddRequests(t *testing.T) {
	tbl := testTable()
	if Answer(nil, tbl) != nil {
		t.Error("nil request answered")
	}
	resp := query("web.openstacklocal.", mdns.TypeA)
	resp.Response = true
	if Answer(resp, tbl) != nil {
		t.Error("a response was answered")
	}
	two := query("web.openstacklocal.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if r := Answer(two, tbl); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s", mdns.RcodeToString[r.Rcode])
	}
	none := new(mdns.Msg)
	if r := Answer(none, tbl); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("no question: %s", mdns.RcodeToString[r.Rcode])
	}
	upd := query("web.openstacklocal.", mdns.TypeA)
	upd.Opcode = mdns.OpcodeUpdate
	if r := Answer(upd, tbl); r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("update: %s", mdns.RcodeToString[r.Rcode])
	}
	chaos := query("web.openstacklocal.", mdns.TypeA)
	chaos.Question[0].Qclass = mdns.ClassCHAOS
	if r := Answer(chaos, tbl); r.Rcode != mdns.RcodeRefused {
		t.Errorf("chaos class: %s", mdns.RcodeToString[r.Rcode])
	}
	edns := query("web.openstacklocal.", mdns.TypeA)
	edns.SetEdns0(1232, false)
	if r := Answer(edns, tbl); r.Rcode != mdns.RcodeSuccess || r.IsEdns0() == nil || len(r.Answer) != 1 {
		t.Errorf("EDNS query: %v", r)
	}
	if r := Answer(query("web.openstacklocal.", mdns.TypeA), nil); r.Rcode != mdns.RcodeRefused {
		t.Errorf("nil table: %s", mdns.RcodeToString[r.Rcode])
	}
}

func TestNewTableDefaultsAndDomain(t *testing.T) {
	tbl := NewTable("", nil, Record{Hostname: "a", Addrs: []netip.Addr{netip.MustParseAddr("::ffff:10.1.1.1")}})
	if tbl.Domain() != "openstacklocal." {
		t.Errorf("domain %q", tbl.Domain())
	}
	r := Answer(query("a.openstacklocal.", mdns.TypeA), tbl)
	if got := answers(r); !slices.Equal(got, []string{"10.1.1.1"}) {
		t.Errorf("mapped address: %v", got)
	}
	tbl = NewTable("Example.Org", nil, Record{Hostname: "vm1", Addrs: []netip.Addr{netip.MustParseAddr("10.1.1.2")}})
	if r := Answer(query("vm1.example.org.", mdns.TypeA), tbl); len(r.Answer) != 1 {
		t.Errorf("custom domain: %v", r)
	}
}

func TestReverseToAddr(t *testing.T) {
	for _, s := range []string{"10.0.0.5", "255.1.0.9", "fd00::5", "2001:db8::abcd:1"} {
		a := netip.MustParseAddr(s)
		rev, _ := mdns.ReverseAddr(s)
		got, ok := reverseToAddr(rev)
		if !ok || got != a {
			t.Errorf("%s -> %s -> %v %v", s, rev, got, ok)
		}
	}
	for _, s := range []string{"0.10.in-addr.arpa.", "256.0.0.10.in-addr.arpa.", "05.0.0.10.in-addr.arpa.", "x.0.0.10.in-addr.arpa.", "1.ip6.arpa.", "example.com."} {
		if a, ok := reverseToAddr(s); ok {
			t.Errorf("%s parsed as %v", s, a)
		}
	}
}

func TestParseUpstreams(t *testing.T) {
	got, err := ParseUpstreams(" 192.0.2.1, [2001:db8::1]:5353,,")
	if err != nil || !slices.Equal(got, []string{"192.0.2.1", "[2001:db8::1]:5353"}) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := ParseUpstreams("dns.example"); err == nil {
		t.Error("a host name was accepted")
	}
	if got, err := ParseUpstreams(""); err != nil || got != nil {
		t.Errorf("empty: %v %v", got, err)
	}
}

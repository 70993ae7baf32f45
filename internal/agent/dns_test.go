package agent

import (
	"slices"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/vland/vland/internal/dataplane/dns"
)

// lookup asks a table for name and type and returns the rcode and answers.
func lookup(t *testing.T, tbl *dns.Table, name string, qtype uint16) (int, []string) {
	t.Helper()
	q := new(mdns.Msg)
	q.SetQuestion(name, qtype)
	r := dns.Answer(q, tbl)
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.AAAA:
			out = append(out, v.AAAA.String())
		case *mdns.PTR:
			out = append(out, v.Ptr)
		}
	}
	return r.Rcode, out
}

func TestDNSServices(t *testing.T) {
	nets, subnets, ports := translationView()
	cfg := dhcpConfig{Domain: "openstacklocal"}
	svcs := dnsServices("pfx-", dhcpServices(nets, subnets, ports, cfg), subnets, ports, cfg)
	if len(svcs) != 1 {
		t.Fatalf("%d DNS services, want 1: %+v", len(svcs), svcs)
	}
	s := svcs[0]
	if s.NetworkID != tNet || s.Namespace != "pfx-qdhcp-"+tNet {
		t.Errorf("service %s in %s", s.NetworkID, s.Namespace)
	}
	if want := []string{"10.0.0.2", "10.1.0.2", "fd00::2"}; !slices.Equal(addrStrings(s.Addrs), want) {
		t.Errorf("addresses %v, want %v", s.Addrs, want)
	}
	rev := func(a string) string { r, _ := mdns.ReverseAddr(a); return r }
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		// dns_name: one name for every address, both families.
		{"web.openstacklocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.10", "10.1.0.10"}},
		{"web.openstacklocal.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00::10"}},
		{rev("fd00::10"), mdns.TypePTR, mdns.RcodeSuccess, []string{"web.openstacklocal."}},
		// No dns_name: host-<address> per address, in DHCP-less subnets too.
		{"host-10-1-0-7.openstacklocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.1.0.7"}},
		{"host-10-2-0-5.openstacklocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.2.0.5"}},
		{"host-fd00--30.openstacklocal.", mdns.TypeAAAA, mdns.RcodeSuccess, []string{"fd00::30"}},
		{rev("10.1.0.7"), mdns.TypePTR, mdns.RcodeSuccess, []string{"host-10-1-0-7.openstacklocal."}},
		// The DHCP port itself.
		{"host-10-0-0-2.openstacklocal.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.0.2"}},
		{rev("fd00::2"), mdns.TypePTR, mdns.RcodeSuccess, []string{"host-fd00--2.openstacklocal."}},
		// Ports of other networks are not there; addresses of the network's
		// subnets nobody holds are NXDOMAIN, not forwarded.
		{"host-10-9-0-2.openstacklocal.", mdns.TypeA, mdns.RcodeNameError, nil},
		{rev("10.0.0.200"), mdns.TypePTR, mdns.RcodeNameError, nil},
		{"example.com.", mdns.TypeA, mdns.RcodeRefused, nil},
	} {
		rcode, got := lookup(t, s.Table, tc.name, tc.qtype)
		if rcode != tc.rcode || !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: %s %v, want %s %v", tc.name, mdns.TypeToString[tc.qtype], mdns.RcodeToString[rcode], got, mdns.RcodeToString[tc.rcode], tc.want)
		}
	}
	if dnsServices("", nil, subnets, ports, cfg) != nil {
		t.Error("DNS services without DHCP services")
	}
}

func TestDNSServicesDomain(t *testing.T) {
	nets, subnets, ports := translationView()
	cfg := dhcpConfig{Domain: normalizeDomain("example.org.")}
	svcs := dnsServices("", dhcpServices(nets, subnets, ports, cfg), subnets, ports, cfg)
	if len(svcs) != 1 {
		t.Fatalf("%d services", len(svcs))
	}
	if _, got := lookup(t, svcs[0].Table, "web.example.org.", mdns.TypeA); len(got) != 2 {
		t.Errorf("web.example.org: %v", got)
	}
	if rcode, _ := lookup(t, svcs[0].Table, "web.openstacklocal.", mdns.TypeA); rcode != mdns.RcodeRefused {
		t.Errorf("the default domain is still answered: %s", mdns.RcodeToString[rcode])
	}
}

func addrStrings[T interface{ String() string }](s []T) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.String()
	}
	return out
}

// Package dns answers DNS inside a tenant network the way Neutron's DHCP
// agent does with dnsmasq: a server per network, on the DHCP port's
// addresses inside the network's qdhcp namespace, authoritative for the
// names of the network's ports under the agent's domain (A, AAAA, and PTR
// for their addresses), forwarding every other name to upstream resolvers,
// or refusing it when there are none.
package dns

import (
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// Record is one name of the network: Hostname (a single label, such as a
// port's dns_name or host-10-0-0-5) with its addresses.
type Record struct {
	Hostname string
	Addrs    []netip.Addr
}

// Table is what a server answers from. It is immutable once built: a
// server swaps whole tables (Server.SetRecords).
type Table struct {
	domain  string                  // lower-case FQDN, with the trailing dot
	names   map[string][]netip.Addr // lower-case FQDN -> addresses
	reverse map[string][]string     // reverse FQDN -> FQDNs (as built)
	zones   []netip.Prefix          // reverse names inside these are ours
}

// DefaultTTL is the TTL of every answer, as short as dnsmasq's local ones
// are so that a changed port is seen soon.
const DefaultTTL = 0

// NewTable builds a table for domain (with or without the trailing dot;
// empty means "openstacklocal") from records. subnets are the network's
// CIDRs: reverse names inside them that no record holds are answered
// NXDOMAIN rather than forwarded. Records with an empty or invalid hostname
// are skipped.
func NewTable(domain string, subnets []netip.Prefix, recs ...Record) *Table {
	domain = strings.ToLower(strings.Trim(strings.TrimSpace(domain), "."))
	if domain == "" {
		domain = "openstacklocal"
	}
	t := &Table{domain: mdns.Fqdn(domain), names: map[string][]netip.Addr{}, reverse: map[string][]string{}}
	for _, p := range subnets {
		if p.IsValid() {
			t.zones = append(t.zones, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked())
		}
	}
	for _, r := range recs {
		h := strings.ToLower(strings.TrimSuffix(r.Hostname, "."))
		if h == "" || strings.Contains(h, ".") {
			continue
		}
		if _, ok := mdns.IsDomainName(h); !ok {
			continue
		}
		fq := h + "." + t.domain
		for _, a := range r.Addrs {
			if !a.IsValid() {
				continue
			}
			a = a.Unmap()
			if !containsAddr(t.names[fq], a) {
				t.names[fq] = append(t.names[fq], a)
			}
			rev, _ := mdns.ReverseAddr(a.String())
			if !containsName(t.reverse[rev], fq) {
				t.reverse[rev] = append(t.reverse[rev], fq)
			}
		}
	}
	return t
}

// Domain is the table's domain as an FQDN.
func (t *Table) Domain() string { return t.domain }

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

func containsName(s []string, n string) bool {
	for _, x := range s {
		if x == n {
			return true
		}
	}
	return false
}

// Authoritative reports whether the table answers name itself (rather than
// an upstream): names at or under the domain, reverse names of its
// addresses, and reverse names inside its subnets.
func (t *Table) Authoritative(name string) bool {
	name = strings.ToLower(mdns.Fqdn(name))
	if mdns.IsSubDomain(t.domain, name) {
		return true
	}
	if _, ok := t.reverse[name]; ok {
		return true
	}
	if a, ok := reverseToAddr(name); ok {
		for _, z := range t.zones {
			if z.Contains(a) {
				return true
			}
		}
	}
	return false
}

// reverseToAddr parses a complete in-addr.arpa or ip6.arpa name.
func reverseToAddr(name string) (netip.Addr, bool) {
	labels := mdns.SplitDomainName(name)
	switch {
	case len(labels) == 6 && strings.EqualFold(labels[4], "in-addr") && strings.EqualFold(labels[5], "arpa"):
		var b [4]byte
		for i := 0; i < 4; i++ {
			l := labels[3-i]
			if len(l) == 0 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			v := 0
			for _, c := range l {
				if c < '0' || c > '9' {
					return netip.Addr{}, false
				}
				v = v*10 + int(c-'0')
			}
			if v > 255 {
				return netip.Addr{}, false
			}
			b[i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	case len(labels) == 34 && strings.EqualFold(labels[32], "ip6") && strings.EqualFold(labels[33], "arpa"):
		var b [16]byte
		for i := 0; i < 32; i++ {
			l := labels[31-i]
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			v, ok := hexVal(l[0])
			if !ok {
				return netip.Addr{}, false
			}
			if i%2 == 0 {
				b[i/2] = v << 4
			} else {
				b[i/2] |= v
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

package secgroup

import (
	"net/netip"
	"slices"
)

// policy answers, in Go, the question the rendered ruleset answers in the
// kernel: would this new connection be allowed now? The Manager asks it
// about every tracked connection after a change took a permission away,
// and cuts those no longer allowed. It reuses parseRule, sources and
// mergeRanges, so that it reads Desired as the renderer does.
type policy struct {
	zones  map[uint16]*zonePorts
	groups map[string][]match
	sets   map[string][]addrRange // by set name (remoteGroupSet, addressGroupSet)
	// owners is the port of each address (fixed IPs and single-address
	// pairs of every port of Desired) by zone; gone the addresses whose
	// port left or changed since the previous Desired: their connections
	// are cut whatever the rules say, so that a port reusing an address
	// inherits no connection of the port that had it (as Neutron does).
	owners owners
	gone   map[uint16]map[netip.Addr]bool
}

// owners maps, per zone, addresses to the id of the port that has them.
type owners map[uint16]map[netip.Addr]string

// portOwners lists the addresses of every port of d.
func portOwners(d Desired) owners {
	o := owners{}
	for _, p := range d.Ports {
		own := o[p.Zone]
		if own == nil {
			own = map[netip.Addr]string{}
			o[p.Zone] = own
		}
		for _, a := range p.IPs {
			own[a.Unmap()] = p.ID
		}
		for _, ap := range p.AllowedPairs {
			if ap.Prefix.IsValid() && ap.Prefix.IsSingleIP() {
				own[ap.Prefix.Addr().Unmap()] = p.ID
			}
		}
	}
	return o
}

// setGone records the addresses prev had that are no longer their port's.
func (pol *policy) setGone(prev owners) {
	pol.gone = map[uint16]map[netip.Addr]bool{}
	for zone, addrs := range prev {
		for a, id := range addrs {
			if pol.owners[zone][a] == id {
				continue
			}
			if pol.gone[zone] == nil {
				pol.gone[zone] = map[netip.Addr]bool{}
			}
			pol.gone[zone][a] = true
		}
	}
}

// zonePorts finds the stateful ports of one zone by address.
type zonePorts struct {
	byAddr map[netip.Addr]*port
	pairs  []portPrefix // allowed-address pairs wider than one address
}

type portPrefix struct {
	p    netip.Prefix
	port *port
}

// flow is the original direction of a tracked connection.
type flow struct {
	zone     uint16
	src, dst netip.Addr
	proto    int
	// dport is the destination port; -1 when unknown (only TCP and UDP
	// ports are read from conntrack), which matches any port range.
	dport int
	// ICMP type and code; -1 when unknown, which matches any.
	icmpType, icmpCode int
}

// newPolicy builds the evaluator of d. With the cache of the render of d
// it takes the parsed rules and merged sets from there.
func newPolicy(d Desired, idx map[string]uint16, cache *renderCache) *policy {
	if cache == nil {
		cache = newRenderCache()
	}
	pol := &policy{zones: map[uint16]*zonePorts{}, groups: map[string][]match{}, sets: map[string][]addrRange{}, owners: portOwners(d)}
	r := &renderer{d: d}
	for _, p := range r.ports(idx) {
		if !p.PortSecurity || !p.stateful || p.broken != "" {
			continue // not tracked, not filtered, or dropping everything
		}
		z := pol.zones[p.Zone]
		if z == nil {
			z = &zonePorts{byAddr: map[netip.Addr]*port{}}
			pol.zones[p.Zone] = z
		}
		for _, m := range sources(p.Port) {
			for _, pr := range slices.Concat(m.v4, m.v6) {
				if pr.IsSingleIP() {
					z.byAddr[pr.Addr()] = p
				} else {
					z.pairs = append(z.pairs, portPrefix{pr, p})
				}
			}
		}
		for _, g := range p.Groups {
			if _, done := pol.groups[g]; done {
				continue
			}
			grp, ok := d.Groups[g]
			if !ok {
				continue
			}
			if gm := cache.groups[g]; gm != nil && sameGroup(gm.g, grp) {
				pol.groups[g] = gm.matches
				for _, ref := range gm.refs {
					if sm := cache.sets[ref.name]; sm != nil {
						pol.sets[ref.name] = sm.ranges
					}
				}
				continue
			}
			var ms []match
			for _, sr := range grp.Rules {
				m, err := parseRule(sr)
				if err != nil {
					continue
				}
				ms = append(ms, m)
				switch {
				case m.remoteGroup != "":
					pol.addSet(remoteGroupSet(m.remoteGroup, m.fam()), m.v6, d.RemoteGroups[m.remoteGroup])
				case m.addressGroup != "":
					pol.addSet(addressGroupSet(m.addressGroup, m.fam()), m.v6, d.AddressGroups[m.addressGroup])
				}
			}
			pol.groups[g] = ms
		}
	}
	return pol
}

func (pol *policy) addSet(name string, v6 bool, prefixes []netip.Prefix) {
	if _, ok := pol.sets[name]; !ok {
		pol.sets[name] = mergeRanges(prefixes, v6)
	}
}

// portOf finds the stateful port that owns address a in a zone.
func (pol *policy) portOf(zone uint16, a netip.Addr) *port {
	z := pol.zones[zone]
	if z == nil {
		return nil
	}
	if p := z.byAddr[a]; p != nil {
		return p
	}
	for _, pp := range z.pairs {
		if pp.p.Contains(a) {
			return pp.port
		}
	}
	return nil
}

// allowed reports whether the ports at both ends of f (those this host
// covers statefully) let it start now.
func (pol *policy) allowed(f flow) bool {
	if p := pol.portOf(f.zone, f.src); p != nil && !pol.allows(p, false, f) {
		return false
	}
	if p := pol.portOf(f.zone, f.dst); p != nil && !pol.allows(p, true, f) {
		return false
	}
	return true
}

// allows evaluates one port's ingress or egress chain for f.
func (pol *policy) allows(p *port, ingress bool, f flow) bool {
	v6 := f.src.Is6()
	if fixedAllows(ingress, v6, f) {
		return true
	}
	remote := f.dst
	if ingress {
		remote = f.src
	}
	for _, g := range p.Groups {
		for _, m := range pol.groups[g] {
			if m.ingress == ingress && m.v6 == v6 && pol.matches(m, f, remote) {
				return true
			}
		}
	}
	return false
}

// fixedAllows mirrors the rules portRules puts before the groups' jumps.
func fixedAllows(ingress, v6 bool, f flow) bool {
	switch {
	case !ingress && v6 && f.proto == protoICMPv6:
		return true
	case f.proto == protoICMPv6 && ingress:
		switch f.icmpType {
		case icmp6MLDQuery, icmp6NS, icmp6NA:
			return true
		case icmp6RA:
			return netip.MustParsePrefix("fe80::/10").Contains(f.src)
		}
	case f.proto == protoUDP && f.dport >= 0:
		// DHCP: the client's requests out, the server's replies in.
		switch {
		case !ingress && !v6:
			return f.dport == 67
		case !ingress && v6:
			return f.dport == 547
		case ingress && !v6:
			return f.dport == 68
		default:
			return f.dport == 546 && netip.MustParsePrefix("fe80::/10").Contains(f.src)
		}
	}
	return false
}

// matches evaluates one group rule.
func (pol *policy) matches(m match, f flow, remote netip.Addr) bool {
	if m.proto >= 0 && m.proto != f.proto {
		return false
	}
	switch {
	case m.proto == protoICMP || m.proto == protoICMPv6:
		if m.icmpType >= 0 && f.icmpType >= 0 && m.icmpType != f.icmpType {
			return false
		}
		if m.icmpCode >= 0 && f.icmpCode >= 0 && m.icmpCode != f.icmpCode {
			return false
		}
	case m.portMin != 0 && f.dport >= 0:
		if f.dport < m.portMin || f.dport > m.portMax {
			return false
		}
	}
	switch {
	case m.remote.IsValid():
		return m.remote.Contains(remote)
	case m.remoteGroup != "":
		return containsAddr(pol.sets[remoteGroupSet(m.remoteGroup, m.fam())], remote)
	case m.addressGroup != "":
		return containsAddr(pol.sets[addressGroupSet(m.addressGroup, m.fam())], remote)
	}
	return true
}

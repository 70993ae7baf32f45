package secgroup

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Names of the sets, maps and chains of the two tables. Per-port chains
// carry the full port id, per-group chains and sets the group id.
const (
	// bridge table
	mapSpoof   = "spoof"   // iifname -> jump spoof-<port>
	mapMark    = "mark"    // oifname -> jump mark-<port>
	setIndices = "indices" // port indices, whose marks postrouting clears
	// inet table
	setBridges   = "bridges"   // bridges with covered ports
	mapZones     = "zones"     // bridge -> conntrack zone
	setStateless = "stateless" // indices of ports whose traffic is not tracked
	mapEgress    = "egress"    // index -> jump egress-<port>
	mapIngress   = "ingress"   // index<<16 -> jump ingress-<port>
)

// Marks: a packet from a covered port carries the port's index in the low
// 16 bits of its mark, one to a covered port the destination's index in
// the high 16 bits, so that the inet hooks, which see the bridge and not
// its ports, know both ends.
const (
	maskFrom = 0x0000ffff
	maskTo   = 0xffff0000
	// MaxPorts is how many ports with port security one host can have.
	MaxPorts = 0xffff
)

// Hook priorities. The bridge chains run before br_netfilter hands the
// packet to the inet hooks (priority 0 in bridge prerouting, -1 in bridge
// forward); the zone is set before conntrack looks the packet up (-200).
const (
	prioBridgeFilter = -200
	prioBridgePost   = 300
	prioRaw          = -300
	prioEgress       = 0
	prioIngress      = 10
)

func spoofChain(port string) string   { return "spoof-" + port }
func markChain(port string) string    { return "mark-" + port }
func egressChain(port string) string  { return "egress-" + port }
func ingressChain(port string) string { return "ingress-" + port }
func groupChain(group string, ingress bool) string {
	if ingress {
		return "sg-" + group + "-ingress"
	}
	return "sg-" + group + "-egress"
}
func remoteGroupSet(group, fam string) string { return "rg-" + group + "-" + fam }
func addressGroupSet(ag, fam string) string   { return "ag-" + ag + "-" + fam }

// ICMPv6 types Neutron lets in and out without a rule.
const (
	icmp6MLDQuery  = 130
	icmp6MLDReport = 131
	icmp6RS        = 133
	icmp6RA        = 134
	icmp6NS        = 135
	icmp6NA        = 136
	icmp6MLD2      = 143
)

// port is a Port as rendered: validated, with its index and statefulness.
type port struct {
	Port
	index    uint16
	stateful bool
	broken   string // why the port is rendered drop-all, if it is
}

// render turns d into the content of both tables. idx gives the index of
// every port with port security (assignIndices). It never fails: what it
// cannot render is listed in the returned strings and left out, or, for a
// port, rendered as drop-all, so that a mistake never opens the firewall.
func render(d Desired, idx map[string]uint16) (*ruleset, []string) {
	rs, skipped, _ := renderCached(d, idx, nil)
	return rs, skipped
}

// renderCached is render reusing what cache holds from the previous
// render (nil: none); it returns the cache for the next one.
func renderCached(d Desired, idx map[string]uint16, cache *renderCache) (*ruleset, []string, *renderCache) {
	if cache == nil {
		cache = newRenderCache()
	}
	r := &renderer{d: d, rs: &ruleset{bridge: newTable(nftables.TableFamilyBridge), inet: newTable(nftables.TableFamilyINet)},
		old: cache, next: newRenderCache()}
	ports := r.ports(idx)
	r.baseChains()
	zones := r.zones(ports)
	for _, p := range ports {
		r.port(p)
	}
	for _, b := range slices.Sorted(maps.Keys(zones)) {
		r.rs.inet.sets[setBridges].add(elem{key: ifname(b)})
		r.rs.inet.sets[mapZones].add(elem{key: ifname(b), val: native16(zones[b])})
	}
	for _, gid := range slices.Sorted(maps.Keys(r.usedGroups)) {
		r.group(gid)
	}
	return r.rs, r.skipped, r.next
}

type renderer struct {
	d          Desired
	rs         *ruleset
	skipped    []string
	usedGroups map[string]bool
	old, next  *renderCache
}

func (r *renderer) skip(format string, args ...any) {
	r.skipped = append(r.skipped, fmt.Sprintf(format, args...))
}

// ports validates the ports, in id order, and decides which are covered.
func (r *renderer) ports(idx map[string]uint16) []*port {
	sorted := slices.SortedFunc(slices.Values(r.d.Ports), func(a, b Port) int { return cmp.Compare(a.ID, b.ID) })
	devices := map[string]string{}
	var out []*port
	r.usedGroups = map[string]bool{}
	for i, p := range sorted {
		if i > 0 && sorted[i-1].ID == p.ID {
			r.skip("port %s: listed twice (the first is used)", p.ID)
			continue
		}
		if p.Device == "" || len(p.Device) > 15 {
			r.skip("port %s: device %q is not an interface name", p.ID, p.Device)
			continue
		}
		if other, ok := devices[p.Device]; ok {
			r.skip("port %s: device %s already belongs to port %s", p.ID, p.Device, other)
			continue
		}
		devices[p.Device] = p.ID
		rp := &port{Port: p}
		if p.PortSecurity {
			i, ok := idx[p.ID]
			if !ok || i == 0 {
				r.skip("port %s: no port index (more than %d ports?)", p.ID, MaxPorts)
				continue
			}
			rp.index = i
			switch {
			case len(p.MAC) != 6:
				rp.broken = "no valid MAC"
			case p.Bridge == "" || len(p.Bridge) > 15:
				rp.broken = fmt.Sprintf("bridge %q is not an interface name", p.Bridge)
			}
			if rp.broken != "" {
				r.skip("port %s: %s: all its traffic is dropped", p.ID, rp.broken)
			}
			known := 0
			for _, g := range p.Groups {
				grp, ok := r.d.Groups[g]
				if !ok {
					r.skip("port %s: unknown security group %s (treated as empty)", p.ID, g)
					continue
				}
				known++
				rp.stateful = rp.stateful || grp.Stateful
				r.usedGroups[g] = true
			}
			// Without a group nothing but the basics passes either way;
			// conntrack then serves the DHCP and neighbour exchanges.
			rp.stateful = rp.stateful || known == 0
		}
		out = append(out, rp)
	}
	return out
}

// zones maps each bridge to its conntrack zone; the first port (by id) of
// a bridge decides when ports disagree.
func (r *renderer) zones(ports []*port) map[string]uint16 {
	zones := map[string]uint16{}
	for _, p := range ports {
		if p.Bridge == "" || len(p.Bridge) > 15 {
			continue
		}
		if z, ok := zones[p.Bridge]; ok {
			if z != p.Zone {
				r.skip("port %s: zone %d differs from zone %d of bridge %s", p.ID, p.Zone, z, p.Bridge)
			}
			continue
		}
		zones[p.Bridge] = p.Zone
	}
	return zones
}

// baseChains adds the hooks, the dispatch maps and the sets they use.
func (r *renderer) baseChains() {
	bt, it := r.rs.bridge, r.rs.inet
	bt.sets[mapSpoof] = &set{name: mapSpoof, keyType: nftables.TypeIFName, isMap: true, verdict: true, elems: map[string]elem{}}
	bt.sets[mapMark] = &set{name: mapMark, keyType: nftables.TypeIFName, isMap: true, verdict: true, elems: map[string]elem{}}
	bt.sets[setIndices] = &set{name: setIndices, keyType: nftables.TypeMark, elems: map[string]elem{}}
	bt.chains["prerouting"] = &chain{name: "prerouting", base: &baseChain{*nftables.ChainHookPrerouting, prioBridgeFilter},
		rules: []*rule{newRule().vmap("iifname", mapSpoof, meta(expr.MetaKeyIIFNAME))}}
	bt.chains["forward"] = &chain{name: "forward", base: &baseChain{*nftables.ChainHookForward, prioBridgeFilter},
		rules: []*rule{newRule().vmap("oifname", mapMark, meta(expr.MetaKeyOIFNAME))}}
	// Marks stop at the bridge: a frame leaving through a VXLAN device or a
	// physical interface of this namespace must not carry them into the
	// host's routing.
	bt.chains["postrouting"] = &chain{name: "postrouting", base: &baseChain{*nftables.ChainHookPostrouting, prioBridgePost},
		rules: []*rule{newRule().inSet("meta mark & 0x0000ffff", setIndices, false, markBits(maskFrom)...).setMark(0).end()}}

	it.sets[setBridges] = &set{name: setBridges, keyType: nftables.TypeIFName, elems: map[string]elem{}}
	it.sets[mapZones] = &set{name: mapZones, keyType: nftables.TypeIFName, isMap: true, dataType: zoneType, elems: map[string]elem{}}
	it.sets[setStateless] = &set{name: setStateless, keyType: nftables.TypeMark, elems: map[string]elem{}}
	it.sets[mapEgress] = &set{name: mapEgress, keyType: nftables.TypeMark, isMap: true, verdict: true, elems: map[string]elem{}}
	it.sets[mapIngress] = &set{name: mapIngress, keyType: nftables.TypeMark, isMap: true, verdict: true, elems: map[string]elem{}}
	notOurs := func() *rule {
		return newRule().inSet("iifname", setBridges, true, meta(expr.MetaKeyIIFNAME)).accept()
	}
	it.chains["prerouting"] = &chain{name: "prerouting", base: &baseChain{*nftables.ChainHookPrerouting, prioRaw}, rules: []*rule{
		notOurs(),
		newRule().add("ct zone set iifname map @"+mapZones,
			meta(expr.MetaKeyIIFNAME),
			&expr.Lookup{SourceRegister: 1, SetName: mapZones, DestRegister: 1, IsDestRegSet: true},
			&expr.Ct{Key: expr.CtKeyZONE, SourceRegister: true, Register: 1}).end(),
		newRule().inSet("meta mark & 0x0000ffff", setStateless, false, markBits(maskFrom)...).add("notrack", &expr.Notrack{}).end(),
	}}
	egress := func() []*rule {
		return []*rule{notOurs(), newRule().vmap("meta mark & 0x0000ffff", mapEgress, markBits(maskFrom)...)}
	}
	// Packets a port sends to the host itself pass its egress rules too.
	it.chains["input"] = &chain{name: "input", base: &baseChain{*nftables.ChainHookInput, prioEgress}, rules: egress()}
	it.chains["forward-egress"] = &chain{name: "forward-egress", base: &baseChain{*nftables.ChainHookForward, prioEgress}, rules: egress()}
	it.chains["forward-ingress"] = &chain{name: "forward-ingress", base: &baseChain{*nftables.ChainHookForward, prioIngress}, rules: []*rule{
		notOurs(), newRule().vmap("meta mark & 0xffff0000", mapIngress, markBits(maskTo)...),
	}}
}

// port adds the chains and map elements of one port. Ports without port
// security get none: their traffic is neither marked nor filtered, but
// still tracked in their network's zone.
func (r *renderer) port(p *port) {
	if !p.PortSecurity {
		return
	}
	bt, it := r.rs.bridge, r.rs.inet
	present := make([]bool, len(p.Groups))
	for i, g := range p.Groups {
		_, present[i] = r.d.Groups[g]
	}
	pm := r.old.ports[p.ID]
	if pm == nil || !samePort(pm.p, p.Port) || pm.index != p.index || pm.stateful != p.stateful || pm.broken != p.broken || !slices.Equal(pm.present, present) {
		pm = &portMemo{p: clonePort(p.Port), index: p.index, stateful: p.stateful, broken: p.broken, present: present, chains: []*chain{
			{name: spoofChain(p.ID), rules: r.spoofRules(p)},
			{name: markChain(p.ID), rules: []*rule{newRule().setMarkBits(maskFrom, uint32(p.index)<<16).end()}},
			{name: egressChain(p.ID), rules: r.portRules(p, false)},
			{name: ingressChain(p.ID), rules: r.portRules(p, true)},
		}}
	}
	r.next.ports[p.ID] = pm
	bt.chains[spoofChain(p.ID)], bt.chains[markChain(p.ID)] = pm.chains[0], pm.chains[1]
	it.chains[egressChain(p.ID)], it.chains[ingressChain(p.ID)] = pm.chains[2], pm.chains[3]
	dev := ifname(p.Device)
	bt.sets[mapSpoof].add(elem{key: dev, jump: spoofChain(p.ID)})
	bt.sets[mapMark].add(elem{key: dev, jump: markChain(p.ID)})
	bt.sets[setIndices].add(elem{key: native32(uint32(p.index))})
	it.sets[mapEgress].add(elem{key: native32(uint32(p.index)), jump: egressChain(p.ID)})
	it.sets[mapIngress].add(elem{key: native32(uint32(p.index) << 16), jump: ingressChain(p.ID)})
	if !p.stateful {
		it.sets[setStateless].add(elem{key: native32(uint32(p.index))})
	}
}

// macAddrs is what one MAC may send from: the prefixes of each family.
type macAddrs struct {
	mac    net.HardwareAddr
	v4, v6 []netip.Prefix
	any    bool // the port has no fixed IP: any address from its MAC
}

// sources lists the MACs a port may send from, its own first, each with
// the addresses allowed with it (fixed IPs and allowed-address pairs).
func sources(p Port) []*macAddrs {
	own := &macAddrs{mac: p.MAC, any: len(p.IPs) == 0}
	list := []*macAddrs{own}
	byMAC := map[string]*macAddrs{p.MAC.String(): own}
	addTo := func(m *macAddrs, pr netip.Prefix) {
		pr = netip.PrefixFrom(pr.Addr().Unmap(), pr.Bits()-unmapBits(pr)).Masked()
		if pr.Addr().Is4() {
			if !slices.Contains(m.v4, pr) {
				m.v4 = append(m.v4, pr)
			}
		} else if !slices.Contains(m.v6, pr) {
			m.v6 = append(m.v6, pr)
		}
	}
	for _, ip := range p.IPs {
		addTo(own, netip.PrefixFrom(ip, ip.BitLen()))
	}
	for _, ap := range p.AllowedPairs {
		if !ap.Prefix.IsValid() {
			continue
		}
		mac := ap.MAC
		if len(mac) != 6 {
			mac = p.MAC
		}
		m := byMAC[mac.String()]
		if m == nil {
			m = &macAddrs{mac: mac}
			byMAC[mac.String()] = m
			list = append(list, m)
		}
		addTo(m, ap.Prefix)
	}
	return list
}

// unmapBits is how many leading bits of a 4-in-6 prefix the unmapping drops.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

// spoofRules is the anti-spoofing chain of a port, in the bridge table:
// stateless, on every frame the port sends, before anything else sees it.
func (r *renderer) spoofRules(p *port) []*rule {
	rules := []*rule{newRule().setMark(uint32(p.index)).end()}
	if p.broken != "" {
		return append(rules, newRule().drop())
	}
	// A VM may not act as a DHCP server or an IPv6 router.
	rules = append(rules,
		newRule().etherType(etherTypeIPv4).udpPorts(67, 68).drop(),
		newRule().etherType(etherTypeIPv6).udpPorts(547, 546).drop(),
		newRule().etherType(etherTypeIPv6).l4proto(protoICMPv6).icmpType(true, icmp6RA, -1).drop(),
	)
	for _, m := range sources(p.Port) {
		for _, pr := range m.v4 {
			rules = append(rules, newRule().etherSaddr(m.mac).etherType(etherTypeIPv4).ipAddr(true, pr).ret())
		}
		for _, pr := range m.v6 {
			rules = append(rules, newRule().etherSaddr(m.mac).etherType(etherTypeIPv6).ipAddr(true, pr).ret())
		}
		rules = append(rules, newRule().etherSaddr(m.mac).etherType(etherTypeIPv6).ipAddr(true, netip.PrefixFrom(linkLocal(m.mac), 128)).ret())
		if m.any {
			rules = append(rules,
				newRule().etherSaddr(m.mac).etherType(etherTypeIPv4).ret(),
				newRule().etherSaddr(m.mac).etherType(etherTypeIPv6).ret(),
				newRule().etherSaddr(m.mac).etherType(etherTypeARP).arpIPv4().arpSHA(m.mac).ret())
		}
		for _, pr := range m.v4 {
			rules = append(rules, newRule().etherSaddr(m.mac).etherType(etherTypeARP).arpIPv4().arpSHA(m.mac).arpSPA(pr).ret())
		}
		// DHCP discovery and ARP probes come from 0.0.0.0, DAD and MLD
		// reports from ::.
		rules = append(rules,
			newRule().etherSaddr(m.mac).etherType(etherTypeIPv4).ipAddr(true, netip.MustParsePrefix("0.0.0.0/32")).
				ipAddr(false, netip.MustParsePrefix("255.255.255.255/32")).udpPorts(68, 67).ret(),
			newRule().etherSaddr(m.mac).etherType(etherTypeARP).arpIPv4().arpSHA(m.mac).arpSPA(netip.MustParsePrefix("0.0.0.0/32")).ret())
		for _, typ := range []int{icmp6MLDReport, icmp6NS, icmp6MLD2} {
			rules = append(rules, newRule().etherSaddr(m.mac).etherType(etherTypeIPv6).ipAddr(true, netip.MustParsePrefix("::/128")).
				ipAddr(false, netip.MustParsePrefix("ff02::/16")).l4proto(protoICMPv6).icmpType(true, typ, -1).ret())
		}
	}
	return append(rules, newRule().drop())
}

// linkLocal is the EUI-64 IPv6 link-local address of a MAC.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// portRules is a port's egress or ingress chain in the inet table:
// conntrack for stateful ports, what Neutron always allows, a jump to each
// of its groups' chains (whose rules accept) and a final drop.
func (r *renderer) portRules(p *port, ingress bool) []*rule {
	if p.broken != "" {
		return []*rule{newRule().drop()}
	}
	var rules []*rule
	// Established traffic, nearly every packet of a stateful port, meets
	// one rule.
	if p.stateful {
		rules = append(rules,
			newRule().ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, "established,related").accept(),
			newRule().ctState(expr.CtStateBitINVALID, "invalid").drop())
	}
	lla := netip.MustParsePrefix("fe80::/10")
	if ingress {
		for _, typ := range []int{icmp6MLDQuery, icmp6NS, icmp6NA} {
			rules = append(rules, newRule().nfproto(true).l4proto(protoICMPv6).icmpType(true, typ, -1).accept())
		}
		rules = append(rules,
			newRule().nfproto(true).l4proto(protoICMPv6).ipAddr(true, lla).icmpType(true, icmp6RA, -1).accept(),
			newRule().nfproto(false).udpPorts(67, 68).accept(),
			newRule().nfproto(true).ipAddr(true, lla).udpPorts(547, 546).accept())
	} else {
		// The source was checked in the bridge table, router
		// advertisements dropped there.
		rules = append(rules,
			newRule().nfproto(false).udpPorts(68, 67).accept(),
			newRule().nfproto(true).udpPorts(546, 547).accept(),
			newRule().nfproto(true).l4proto(protoICMPv6).accept())
	}
	groups := slices.Clone(p.Groups)
	slices.Sort(groups)
	for _, g := range slices.Compact(groups) {
		if _, ok := r.d.Groups[g]; ok {
			rules = append(rules, newRule().jump(groupChain(g, ingress)))
		}
	}
	return append(rules, newRule().drop())
}

// group adds the two chains of a security group, and the sets its remote
// group and address group rules refer to.
func (r *renderer) group(gid string) {
	g := r.d.Groups[gid]
	gm := r.old.groups[gid]
	if gm == nil || !sameGroup(gm.g, g) {
		gm = r.renderGroup(g, gm)
	}
	r.next.groups[gid] = gm
	r.skipped = append(r.skipped, gm.skipped...)
	for _, ref := range gm.refs {
		if ref.remote != "" {
			r.addrSet(ref.name, ref.v6, r.d.RemoteGroups[ref.remote])
		} else {
			r.addrSet(ref.name, ref.v6, r.d.AddressGroups[ref.ag])
		}
	}
	r.rs.inet.chains[gm.in.name] = gm.in
	r.rs.inet.chains[gm.out.name] = gm.out
}

// renderGroup renders a group's two chains.
func (r *renderer) renderGroup(g Group, prev *groupMemo) *groupMemo {
	gid := g.ID
	gm := &groupMemo{g: cloneGroup(g), rules: make(map[ruleIn]*ruleMemo, len(g.Rules))}
	in := &chain{name: groupChain(gid, true), unordered: true}
	out := &chain{name: groupChain(gid, false), unordered: true}
	byText := map[string]*rule{}
	refs := map[string]bool{}
	for _, sr := range g.Rules {
		k := ruleInOf(sr)
		rm := gm.rules[k]
		if rm == nil && prev != nil {
			rm = prev.rules[k] // rendered last time: unchanged rules cost a lookup
		}
		if rm == nil {
			rm = &ruleMemo{}
			if rm.m, rm.err = parseRule(sr); rm.err == nil {
				rm.r, rm.ref = groupRule(rm.m)
			}
		}
		gm.rules[k] = rm
		if rm.err != nil {
			gm.skipped = append(gm.skipped, fmt.Sprintf("security group %s rule %s: %v", gid, sr.ID, rm.err))
			continue
		}
		gm.matches = append(gm.matches, rm.m)
		if rm.ref != nil && !refs[rm.ref.name] {
			refs[rm.ref.name] = true
			gm.refs = append(gm.refs, *rm.ref)
		}
		dup := sr.Direction + " " + rm.r.text
		if prev, ok := byText[dup]; ok {
			prev.comment += " " + sr.ID // a duplicate: one kernel rule for both
			continue
		}
		gr := &rule{text: rm.r.text, exprs: rm.r.exprs, comment: strings.TrimSpace(sr.ID)}
		byText[dup] = gr
		if rm.m.ingress {
			in.rules = append(in.rules, gr)
		} else {
			out.rules = append(out.rules, gr)
		}
	}
	gm.in, gm.out = in, out
	return gm
}

// groupRule renders one security group rule, which accepts what it
// matches, and names the set it looks up, if any.
func groupRule(m match) (*rule, *setRef) {
	b := newRule().nfproto(m.v6)
	if m.proto >= 0 {
		b.l4proto(m.proto)
	}
	switch {
	case m.proto == protoICMP || m.proto == protoICMPv6:
		if m.icmpType >= 0 {
			b.icmpType(m.v6, m.icmpType, m.icmpCode)
		}
	case m.portMin != 0:
		b.thPort(2, m.portMin, m.portMax)
	}
	// The remote end is the source of ingress traffic, the destination
	// of egress traffic.
	var ref *setRef
	switch {
	case m.remote.IsValid():
		b.ipAddr(m.ingress, m.remote)
	case m.remoteGroup != "":
		ref = &setRef{name: remoteGroupSet(m.remoteGroup, m.fam()), v6: m.v6, remote: m.remoteGroup}
	case m.addressGroup != "":
		ref = &setRef{name: addressGroupSet(m.addressGroup, m.fam()), v6: m.v6, ag: m.addressGroup}
	}
	if ref != nil {
		b.ipInSet(m.ingress, m.v6, ref.name)
	}
	return b.accept(), ref
}

// addrSet adds (once) an interval set of the prefixes of one family.
func (r *renderer) addrSet(name string, v6 bool, prefixes []netip.Prefix) {
	if _, ok := r.rs.inet.sets[name]; ok {
		return
	}
	if sm := r.old.sets[name]; sm != nil && sm.v6 == v6 && slices.Equal(sm.prefixes, prefixes) {
		r.next.sets[name] = sm
		r.rs.inet.sets[name] = sm.s
		return
	}
	s := &set{name: name, keyType: nftables.TypeIPAddr, interval: true, elems: map[string]elem{}}
	if v6 {
		s.keyType = nftables.TypeIP6Addr
	}
	ranges := mergeRanges(prefixes, v6)
	for _, rg := range ranges {
		e := elem{key: rg.lo.AsSlice()}
		if rg.hi != maxAddr(v6) {
			e.end = rg.hi.Next().AsSlice()
		}
		s.add(e)
	}
	r.next.sets[name] = &setMemo{v6: v6, prefixes: slices.Clone(prefixes), ranges: ranges, s: s}
	r.rs.inet.sets[name] = s
}

package router

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The NAT of a router namespace is one nftables table of family ip (Neutron
// does not NAT IPv6), rendered from the plan and replaced in one transaction
// whenever it differs. It follows the iptables rules of Neutron's L3 agent:
//
//	prerouting (nat, dstnat):
//	  packets entering qg- get mark bit 0x2 (Neutron's external_ingress_mark)
//	  169.254.169.254:80/tcp arriving on a qr- device -> the metadata port
//	  (floating IP, port) -> (internal IP, port) from hash maps @pf_tcp and
//	  @pf_udp (ranges mapped to ranges listed port by port) and interval
//	  maps @pf_tcp_ranges and @pf_udp_ranges (ranges mapped to one port)
//	  floating IP -> fixed IP from map @fip_dnat
//	output (nat, dstnat): floating IP -> fixed IP, for the namespace itself
//	postrouting (nat, srcnat), with an IPv4 gateway address only:
//	  leaving through a qr- device and not DNATed: no NAT (the router's own
//	  subnets talk to each other with their addresses)
//	  fixed IP -> its floating IP from map @fip_snat
//	  leaving through qg-: the gateway address (only with SNAT enabled)
//	  DNATed and not from outside (hairpin): the gateway address, so that the
//	  reply comes back through the router to be un-NATed
//	input (filter), with a metadata port only: the metadata port accepts
//	  redirected connections (and lo) and drops the rest
//	state: one rule whose comment carries a digest of all the above, so
//	  that a reconcile can tell a table that is right in one netlink dump.

// Set and chain names inside the table.
const (
	setFIPDNAT     = "fip_dnat"
	setFIPSNAT     = "fip_snat"
	setPFTCP       = "pf_tcp"        // single ports, and ranges mapped port by port
	setPFTCPRanges = "pf_tcp_ranges" // ranges mapped to one port
	setPFUDP       = "pf_udp"
	chainState     = "state"
	digestPrefix   = "vland-router "
)

// markExternal is set on packets entering through qg-: DNATed connections
// with it came from outside and keep their source address.
const markExternal = 0x2

// ipsDstNAT is the conntrack status bit of DNATed connections (IPS_DST_NAT).
const ipsDstNAT = 1 << 5

// metadataIP is where instances find the metadata service.
var metadataIP = netip.AddrFrom4([4]byte{169, 254, 169, 254})

// Registers: NFT_REG_1 holds keys and lookup results; regWord1 is its second
// 32-bit word (NFT_REG32_01), where a concatenation's second field goes.
const (
	regKey   = 1
	regWord1 = 9
)

// ruleset is a rendered table: its maps and chains, each rule with the text
// `nft list table` prints for it and the expressions that make it.
type ruleset struct {
	sets   []*setSpec
	chains []*chainSpec
}

type setSpec struct {
	set   *nftables.Set
	elems []nftables.SetElement
	texts []string // one per element, as nft prints it
}

type chainSpec struct {
	chain  *nftables.Chain
	header string // the chain's type line; empty for a regular chain
	rules  []ruleSpec
}

type ruleSpec struct {
	text  string
	exprs []expr.Any
}

func newTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
}

// render turns a plan into the router's ruleset.
func render(p *plan) *ruleset {
	t := newTable()
	rs := &ruleset{}
	addMap := func(name string, key, data nftables.SetDatatype, interval bool) *setSpec {
		// IDs only need to be unique within one batch; setting them here
		// keeps the library's global counter (unsynchronized) out of it.
		s := &setSpec{set: &nftables.Set{Table: t, ID: uint32(len(rs.sets) + 1), Name: name, IsMap: true,
			KeyType: key, DataType: data, Interval: interval, Concatenation: interval}}
		rs.sets = append(rs.sets, s)
		return s
	}
	qg := ""
	if p.Gateway != nil {
		qg = GatewayDeviceName(p.Gateway.PortID)
	}
	gw := p.gw4

	pre := &chainSpec{chain: &nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		header: "type nat hook prerouting priority dstnat; policy accept;"}
	out := &chainSpec{chain: &nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
		header: "type nat hook output priority dstnat; policy accept;"}
	post := &chainSpec{chain: &nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource},
		header: "type nat hook postrouting priority srcnat; policy accept;"}
	in := &chainSpec{chain: &nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter},
		header: "type filter hook input priority filter; policy accept;"}

	// prerouting
	if gw.IsValid() {
		pre.add(fmt.Sprintf("iifname %q meta mark set meta mark | 0x%08x", qg, markExternal),
			metaLoad(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, ifname(qg)),
			metaLoad(expr.MetaKeyMARK),
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4,
				Mask: native32(^uint32(markExternal)), Xor: native32(markExternal)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: regKey})
	}
	if p.MetadataPort != 0 {
		pre.add(fmt.Sprintf("iifname \"%s*\" ip daddr %s tcp dport 80 redirect to :%d", InternalPrefix, metadataIP, p.MetadataPort),
			metaLoad(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, []byte(InternalPrefix)),
			ipAddr(16, regKey), cmp(expr.CmpOpEq, metadataIP.AsSlice()),
			metaLoad(expr.MetaKeyL4PROTO), cmp(expr.CmpOpEq, []byte{unix.IPPROTO_TCP}),
			thDport(regKey), cmp(expr.CmpOpEq, be16(80)),
			&expr.Immediate{Register: regKey, Data: be16(p.MetadataPort)},
			&expr.Redir{RegisterProtoMin: regKey, RegisterProtoMax: regKey, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
	}
	for _, proto := range []string{"tcp", "udp"} {
		// Single ports (and ranges mapped port by port) go to a hash map,
		// ranges mapped to one port to an interval map: interval maps take
		// far longer to fill, and a range mapped to a range can be 65535
		// elements.
		pair := nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
		var ports, ranges *setSpec
		for _, f := range p.fwds {
			if f.Protocol != proto {
				continue
			}
			emin, emax := f.externalRange()
			imin, imax := f.internalRange()
			if emin != emax && imin == imax {
				if ranges == nil {
					ranges = addMap("pf_"+proto+"_ranges", pair, pair, true) // setPFTCPRanges
				}
				ranges.addForward(f)
				continue
			}
			if ports == nil {
				ports = addMap("pf_"+proto, pair, pair, false) // setPFTCP, setPFUDP
			}
			ports.addForward(f)
		}
		num, _ := protoNumber(proto)
		for _, s := range []*setSpec{ports, ranges} {
			if s == nil {
				continue
			}
			pre.add(fmt.Sprintf("dnat ip to ip daddr . %s dport map @%s", proto, s.set.Name),
				metaLoad(expr.MetaKeyL4PROTO), cmp(expr.CmpOpEq, []byte{num}),
				ipAddr(16, regKey), thDport(regWord1),
				&expr.Lookup{SourceRegister: regKey, DestRegister: regKey, IsDestRegSet: true, SetName: s.set.Name, SetID: s.set.ID},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegAddrMax: regKey,
					RegProtoMin: regWord1, RegProtoMax: regWord1, Specified: true})
		}
	}
	var snatMap *setSpec
	if len(p.fips) > 0 {
		dn := addMap(setFIPDNAT, nftables.TypeIPAddr, nftables.TypeIPAddr, false)
		snatMap = addMap(setFIPSNAT, nftables.TypeIPAddr, nftables.TypeIPAddr, false)
		for _, f := range p.fips {
			dn.add(f.FloatingIP.AsSlice(), nil, f.FixedIP.AsSlice(), fmt.Sprintf("%s : %s", f.FloatingIP, f.FixedIP))
		}
		for _, f := range sortedByFixed(p.fips) {
			snatMap.add(f.FixedIP.AsSlice(), nil, f.FloatingIP.AsSlice(), fmt.Sprintf("%s : %s", f.FixedIP, f.FloatingIP))
		}
		for _, c := range []*chainSpec{pre, out} {
			c.add("dnat to ip daddr map @"+setFIPDNAT,
				ipAddr(16, regKey),
				&expr.Lookup{SourceRegister: regKey, DestRegister: regKey, IsDestRegSet: true, SetName: setFIPDNAT, SetID: dn.set.ID},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegAddrMax: regKey})
		}
	}

	// postrouting: nothing to do without an IPv4 address on qg-.
	if gw.IsValid() {
		post.add(fmt.Sprintf("oifname != %q ct status ! dnat accept", qg),
			metaLoad(expr.MetaKeyOIFNAME), cmp(expr.CmpOpNeq, ifname(qg)),
			&expr.Ct{Key: expr.CtKeySTATUS, Register: regKey},
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: native32(ipsDstNAT), Xor: native32(0)},
			cmp(expr.CmpOpEq, native32(0)),
			&expr.Verdict{Kind: expr.VerdictAccept})
		if snatMap != nil {
			post.add("snat to ip saddr map @"+setFIPSNAT,
				ipAddr(12, regKey),
				&expr.Lookup{SourceRegister: regKey, DestRegister: regKey, IsDestRegSet: true, SetName: setFIPSNAT, SetID: snatMap.set.ID},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegAddrMax: regKey})
		}
		if p.Gateway.EnableSNAT {
			post.add(fmt.Sprintf("oifname %q snat to %s fully-random", qg, gw),
				metaLoad(expr.MetaKeyOIFNAME), cmp(expr.CmpOpEq, ifname(qg)),
				&expr.Immediate{Register: regKey, Data: gw.AsSlice()},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegAddrMax: regKey, FullyRandom: true})
		}
		post.add(fmt.Sprintf("meta mark & 0x%08x == 0x00000000 ct status dnat snat to %s", markExternal, gw),
			metaLoad(expr.MetaKeyMARK),
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: native32(markExternal), Xor: native32(0)},
			cmp(expr.CmpOpEq, native32(0)),
			&expr.Ct{Key: expr.CtKeySTATUS, Register: regKey},
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: native32(ipsDstNAT), Xor: native32(0)},
			cmp(expr.CmpOpNeq, native32(0)),
			&expr.Immediate{Register: regKey, Data: gw.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: regKey, RegAddrMax: regKey})
	}

	// input: the metadata port takes redirected connections only.
	if port := p.MetadataPort; port != 0 {
		in.add(`iifname "lo" accept`,
			metaLoad(expr.MetaKeyIIFNAME), cmp(expr.CmpOpEq, ifname("lo")),
			&expr.Verdict{Kind: expr.VerdictAccept})
		in.add(fmt.Sprintf("tcp dport %d ct status dnat accept", port),
			metaLoad(expr.MetaKeyL4PROTO), cmp(expr.CmpOpEq, []byte{unix.IPPROTO_TCP}),
			thDport(regKey), cmp(expr.CmpOpEq, be16(port)),
			&expr.Ct{Key: expr.CtKeySTATUS, Register: regKey},
			&expr.Bitwise{SourceRegister: regKey, DestRegister: regKey, Len: 4, Mask: native32(ipsDstNAT), Xor: native32(0)},
			cmp(expr.CmpOpNeq, native32(0)),
			&expr.Verdict{Kind: expr.VerdictAccept})
		in.add(fmt.Sprintf("tcp dport %d drop", port),
			metaLoad(expr.MetaKeyL4PROTO), cmp(expr.CmpOpEq, []byte{unix.IPPROTO_TCP}),
			thDport(regKey), cmp(expr.CmpOpEq, be16(port)),
			&expr.Verdict{Kind: expr.VerdictDrop})
	}
	for _, c := range []*chainSpec{pre, out, post, in} {
		if len(c.rules) > 0 {
			rs.chains = append(rs.chains, c)
		}
	}
	return rs
}

func (c *chainSpec) add(text string, exprs ...expr.Any) {
	c.rules = append(c.rules, ruleSpec{text: text, exprs: exprs})
}

func (s *setSpec) add(key, keyEnd, val []byte, text string) {
	s.elems = append(s.elems, nftables.SetElement{Key: key, KeyEnd: keyEnd, Val: val})
	s.texts = append(s.texts, text)
}

// addForward adds a port forward's elements: in an interval map one element
// for the range (mapped to one internal port), in a hash map one per port
// (a NAT map cannot shift ports: a range mapped to a range is listed port by
// port).
func (s *setSpec) addForward(f PortForward) {
	emin, emax := f.externalRange()
	imin, imax := f.internalRange()
	fip, ip := f.FloatingIP.AsSlice(), f.InternalIP.AsSlice()
	key := func(port uint16) []byte { return concat(fip, pad4(be16(port))) }
	val := func(port uint16) []byte { return concat(ip, pad4(be16(port))) }
	if s.set.Interval {
		s.add(key(emin), key(emax), val(imin), fmt.Sprintf("%s . %s : %s . %d", f.FloatingIP, portRange(emin, emax), f.InternalIP, imin))
		return
	}
	for i := 0; i <= int(emax-emin); i++ {
		e, n := emin+uint16(i), imin
		if imin != imax {
			n = imin + uint16(i)
		}
		s.add(key(e), nil, val(n), fmt.Sprintf("%s . %d : %s . %d", f.FloatingIP, e, f.InternalIP, n))
	}
}

func sortedByFixed(fips []FloatingIP) []FloatingIP {
	out := slices.Clone(fips)
	slices.SortFunc(out, func(a, b FloatingIP) int { return a.FixedIP.Compare(b.FixedIP) })
	return out
}

// elemChunk is how many map elements go in one netlink message: about 60
// bytes each, well below the 64 KiB an attribute can hold.
const elemChunk = 512

// elements counts the map elements of the ruleset.
func (rs *ruleset) elements() int {
	n := 0
	for _, s := range rs.sets {
		n += len(s.elems)
	}
	return n
}

// sendBuffer is the netlink send buffer a transaction replacing rs needs:
// the whole batch goes out in one message, about 64 bytes a map element
// (nft sizes its socket the same way). 0: the default suffices.
func (rs *ruleset) sendBuffer() int {
	n := rs.elements()
	if n < 1024 {
		return 0
	}
	return 256<<10 + 96*n
}

// text is the table as `nft list table` prints it, one element per line,
// without the state chain.
func (rs *ruleset) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s {\n", TableName)
	for _, s := range rs.sets {
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s : %s\n", s.set.Name, s.set.KeyType.Name, s.set.DataType.Name)
		if s.set.Interval {
			b.WriteString("\t\tflags interval\n")
		}
		if len(s.texts) > 0 {
			b.WriteString("\t\telements = {\n")
			for _, t := range s.texts {
				fmt.Fprintf(&b, "\t\t\t%s,\n", t)
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n")
	}
	for _, c := range rs.chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.chain.Name)
		if c.header != "" {
			fmt.Fprintf(&b, "\t\t%s\n", c.header)
		}
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.text)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// digest identifies a rendering; it goes into the state chain's comment.
func (rs *ruleset) digest() string {
	sum := sha256.Sum256([]byte(rs.text()))
	return hex.EncodeToString(sum[:12])
}

// replace queues the atomic replacement of the table by rs: create (so the
// delete cannot fail), delete, then everything anew; Flush sends it as one
// transaction.
func (rs *ruleset) replace(c *nftables.Conn, digest string) error {
	t := newTable()
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for _, s := range rs.sets {
		// A netlink attribute holds at most 64 KiB: elements go in
		// messages of elemChunk each (all in the one transaction), as nft
		// sends them.
		first := s.elems[:min(len(s.elems), elemChunk)]
		if err := c.AddSet(s.set, first); err != nil {
			return fmt.Errorf("map %s: %w", s.set.Name, err)
		}
		for rest := s.elems[len(first):]; len(rest) > 0; rest = rest[min(len(rest), elemChunk):] {
			if err := c.SetAddElements(s.set, rest[:min(len(rest), elemChunk)]); err != nil {
				return fmt.Errorf("map %s: %w", s.set.Name, err)
			}
		}
	}
	for _, ch := range rs.chains {
		c.AddChain(ch.chain)
		for _, r := range ch.rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch.chain, Exprs: r.exprs})
		}
	}
	st := c.AddChain(&nftables.Chain{Name: chainState, Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: st, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}},
		UserData: userdata.AppendString(nil, userdata.TypeComment, digestPrefix+digest)})
	return nil
}

// deleteTable queues the removal of the table (created first, so that the
// delete cannot fail when it is not there).
func deleteTable(c *nftables.Conn) {
	t := newTable()
	c.AddTable(t)
	c.DelTable(t)
}

// installedDigest reads the digest of the table in the namespace; "" when
// there is no table or no readable state chain.
func installedDigest(c *nftables.Conn) (string, error) {
	rules, err := c.GetRules(newTable(), &nftables.Chain{Name: chainState})
	if err != nil {
		if isNotExist(err) {
			return "", nil
		}
		return "", fmt.Errorf("read the state of table %s: %w", TableName, err)
	}
	if len(rules) != 1 {
		return "", nil
	}
	s, ok := userdata.GetString(rules[0].UserData, userdata.TypeComment)
	if !ok || !strings.HasPrefix(s, digestPrefix) {
		return "", nil
	}
	return strings.TrimPrefix(s, digestPrefix), nil
}

// isNotExist recognizes the kernel's "no such table/chain" through the
// netlink library's error text.
func isNotExist(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), unix.ENOENT.Error()))
}

// Expression helpers.

func metaLoad(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: regKey} }

func cmp(op expr.CmpOp, data []byte) *expr.Cmp {
	return &expr.Cmp{Op: op, Register: regKey, Data: data}
}

// ipAddr loads the IPv4 source (offset 12) or destination (16) address.
func ipAddr(offset, reg uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}
}

// thDport loads the TCP or UDP destination port.
func thDport(reg uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func native32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// pad4 pads a concatenation field to its 4-byte register word.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

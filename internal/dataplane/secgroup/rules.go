package secgroup

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rb builds one rule: every matcher appends its expressions and the words
// nft would list for them, so the text is an honest account of the
// expressions (golden files and Result.Changes show it).
type rb struct {
	exprs []expr.Any
	words []string
}

func newRule() *rb { return &rb{} }

func (b *rb) add(text string, es ...expr.Any) *rb {
	b.exprs = append(b.exprs, es...)
	if text != "" {
		b.words = append(b.words, text)
	}
	return b
}

// verdict ends the rule with a verdict.
func (b *rb) verdict(v expr.VerdictKind, chain string) *rule {
	text := verdictText(v, chain)
	b.add(text, &expr.Verdict{Kind: v, Chain: chain})
	return &rule{text: strings.Join(b.words, " "), exprs: b.exprs}
}

func (b *rb) accept() *rule           { return b.verdict(expr.VerdictAccept, "") }
func (b *rb) drop() *rule             { return b.verdict(expr.VerdictDrop, "") }
func (b *rb) ret() *rule              { return b.verdict(expr.VerdictReturn, "") }
func (b *rb) jump(chain string) *rule { return b.verdict(expr.VerdictJump, chain) }

// end finishes a rule whose last expression is not a verdict (a statement).
func (b *rb) end() *rule { return &rule{text: strings.Join(b.words, " "), exprs: b.exprs} }

func verdictText(v expr.VerdictKind, chain string) string {
	switch v {
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + chain
	}
	return fmt.Sprintf("verdict %d", v)
}

// eq compares register 1 with data.
func eq(data []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }

func meta(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: 1} }

func load(base expr.PayloadBase, off, n uint32) *expr.Payload {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: base, Offset: off, Len: n}
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func native32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }
func native16(v uint16) []byte { return binaryutil.NativeEndian.PutUint16(v) }

func nativeUint32(b []byte) uint32 { return binaryutil.NativeEndian.Uint32(b) }
func nativeUint16(b []byte) uint16 { return binaryutil.NativeEndian.Uint16(b) }

// Matchers, named after nft's syntax.

// inSet matches register 1 (after es) against a named set.
func (b *rb) inSet(text, setName string, invert bool, es ...expr.Any) *rb {
	op := "@"
	if invert {
		op = "!= @"
	}
	es = append(es, &expr.Lookup{SourceRegister: 1, SetName: setName, Invert: invert})
	return b.add(text+" "+op+setName, es...)
}

// vmap jumps through a verdict map with register 1 (after es) as key.
func (b *rb) vmap(text, mapName string, es ...expr.Any) *rule {
	es = append(es, &expr.Lookup{SourceRegister: 1, SetName: mapName, DestRegister: 0, IsDestRegSet: true})
	b.add(text+" vmap @"+mapName, es...)
	return &rule{text: strings.Join(b.words, " "), exprs: b.exprs}
}

// markBits loads meta mark & mask into register 1.
func markBits(mask uint32) []expr.Any {
	return []expr.Any{
		meta(expr.MetaKeyMARK),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(mask), Xor: native32(0)},
	}
}

func (b *rb) nfproto(v6 bool) *rb {
	if v6 {
		return b.add("meta nfproto ipv6", meta(expr.MetaKeyNFPROTO), eq([]byte{unix.NFPROTO_IPV6}))
	}
	return b.add("meta nfproto ipv4", meta(expr.MetaKeyNFPROTO), eq([]byte{unix.NFPROTO_IPV4}))
}

func (b *rb) l4proto(p int) *rb {
	return b.add("meta l4proto "+protoName(p), meta(expr.MetaKeyL4PROTO), eq([]byte{byte(p)}))
}

// protoName is nft's name of an IP protocol, or its number.
func protoName(p int) string {
	switch p {
	case protoICMP:
		return "icmp"
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoICMPv6:
		return "ipv6-icmp"
	case protoSCTP:
		return "sctp"
	case protoDCCP:
		return "dccp"
	case protoUDPLit:
		return "udplite"
	}
	return fmt.Sprint(p)
}

// thPort matches the source (off 0) or destination (off 2) port of the
// transport header against [lo, hi].
func (b *rb) thPort(off uint32, lo, hi int) *rb {
	name := "th sport"
	if off == 2 {
		name = "th dport"
	}
	if lo == hi {
		return b.add(fmt.Sprintf("%s %d", name, lo), load(expr.PayloadBaseTransportHeader, off, 2), eq(be16(uint16(lo))))
	}
	return b.add(fmt.Sprintf("%s %d-%d", name, lo, hi), load(expr.PayloadBaseTransportHeader, off, 2),
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(uint16(lo)), ToData: be16(uint16(hi))})
}

// udpPorts matches UDP with the given source and destination ports.
func (b *rb) udpPorts(sport, dport int) *rb {
	return b.l4proto(protoUDP).thPort(0, sport, sport).thPort(2, dport, dport)
}

// icmpType matches the type (and code, when code >= 0) of an ICMP or
// ICMPv6 header; the l4proto must have been matched.
func (b *rb) icmpType(v6 bool, typ, code int) *rb {
	name := "icmp"
	if v6 {
		name = "icmpv6"
	}
	b.add(fmt.Sprintf("%s type %d", name, typ), load(expr.PayloadBaseTransportHeader, 0, 1), eq([]byte{byte(typ)}))
	if code >= 0 {
		b.add(fmt.Sprintf("%s code %d", name, code), load(expr.PayloadBaseTransportHeader, 1, 1), eq([]byte{byte(code)}))
	}
	return b
}

// ipAddr matches the source or destination address of the IPv4 or IPv6
// header (network header base) against a prefix.
func (b *rb) ipAddr(src bool, p netip.Prefix) *rb {
	v6 := p.Addr().Is6()
	off, n, name := uint32(16), uint32(4), "ip daddr"
	switch {
	case !v6 && src:
		off, name = 12, "ip saddr"
	case v6 && src:
		off, n, name = 8, 16, "ip6 saddr"
	case v6:
		off, n, name = 24, 16, "ip6 daddr"
	}
	es := []expr.Any{load(expr.PayloadBaseNetworkHeader, off, n)}
	if !p.IsSingleIP() {
		mask := net.CIDRMask(p.Bits(), int(n)*8)
		es = append(es, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	es = append(es, eq(p.Masked().Addr().AsSlice()))
	text := p.Addr().String()
	if !p.IsSingleIP() {
		text = p.Masked().String()
	}
	return b.add(name+" "+text, es...)
}

// ipInSet matches the source or destination address against a named set.
func (b *rb) ipInSet(src, v6 bool, setName string) *rb {
	off, n, name := uint32(16), uint32(4), "ip daddr"
	switch {
	case !v6 && src:
		off, name = 12, "ip saddr"
	case v6 && src:
		off, n, name = 8, 16, "ip6 saddr"
	case v6:
		off, n, name = 24, 16, "ip6 daddr"
	}
	return b.inSet(name, setName, false, load(expr.PayloadBaseNetworkHeader, off, n))
}

// Bridge-family matchers: the Ethernet header and ARP.

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

func (b *rb) etherType(t uint16) *rb {
	name := map[uint16]string{etherTypeIPv4: "ip", etherTypeARP: "arp", etherTypeIPv6: "ip6"}[t]
	// The link-layer payload shows a VLAN tag the driver took off: tagged
	// frames carry 0x8100 here and match none of the three.
	return b.add("ether type "+name, load(expr.PayloadBaseLLHeader, 12, 2), eq(be16(t)))
}

func (b *rb) etherSaddr(mac net.HardwareAddr) *rb {
	return b.add("ether saddr "+mac.String(), load(expr.PayloadBaseLLHeader, 6, 6), eq(mac))
}

// arpIPv4 matches ARP for IPv4 over Ethernet, whose addresses are at the
// offsets arpSHA and arpSPA use.
func (b *rb) arpIPv4() *rb {
	return b.add("arp htype 1 arp ptype ip arp hlen 6 arp plen 4",
		load(expr.PayloadBaseNetworkHeader, 0, 6), eq([]byte{0, 1, 0x08, 0x00, 6, 4}))
}

func (b *rb) arpSHA(mac net.HardwareAddr) *rb {
	return b.add("arp saddr ether "+mac.String(), load(expr.PayloadBaseNetworkHeader, 8, 6), eq(mac))
}

func (b *rb) arpSPA(p netip.Prefix) *rb {
	es := []expr.Any{load(expr.PayloadBaseNetworkHeader, 14, 4)}
	text := p.Addr().String()
	if !p.IsSingleIP() {
		es = append(es, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(p.Bits(), 32), Xor: make([]byte, 4)})
		text = p.Masked().String()
	}
	es = append(es, eq(p.Masked().Addr().AsSlice()))
	return b.add("arp saddr ip "+text, es...)
}

// Statements.

// setMark sets the packet mark to v.
func (b *rb) setMark(v uint32) *rb {
	return b.add(fmt.Sprintf("meta mark set 0x%08x", v),
		&expr.Immediate{Register: 1, Data: native32(v)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
}

// setMarkBits keeps the mark's bits under keep and sets the others to v.
func (b *rb) setMarkBits(keep, v uint32) *rb {
	return b.add(fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", keep, v),
		meta(expr.MetaKeyMARK),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(keep), Xor: native32(v)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
}

// ctState matches conntrack states (a bitmask of expr.CtState*).
func (b *rb) ctState(bits uint32, text string) *rb {
	return b.add("ct state "+text,
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(bits), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)})
}

// zoneType is the data type of the zones map: a conntrack zone, a 16-bit
// number in host byte order.
var zoneType = func() nftables.SetDatatype {
	t := nftables.TypeInteger
	t.Bytes = 2
	return t
}()

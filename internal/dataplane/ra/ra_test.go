package ra

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestMarshalStatefulRA(t *testing.T) {
	mac := net.HardwareAddr{0xfa, 0x16, 0x3e, 1, 2, 3}
	c := Config{
		Managed: true, Other: true, MTU: 1450,
		Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("fd00:1::5/64"), OnLink: true}},
		DNS:      []netip.Addr{netip.MustParseAddr("fd00:1::2")},
	}
	b := c.Marshal(mac)
	if b[0] != 134 || b[5] != 0xc0 || binary.BigEndian.Uint16(b[6:]) != 0 {
		t.Fatalf("header: type %d flags %#x lifetime %d", b[0], b[5], binary.BigEndian.Uint16(b[6:]))
	}
	opts := map[byte][]byte{}
	for o := b[16:]; len(o) > 0; {
		n := int(o[1]) * 8
		if n == 0 || n > len(o) {
			t.Fatalf("bad option length at %x", o)
		}
		opts[o[0]] = o[:n]
		o = o[n:]
	}
	if sl := opts[1]; len(sl) != 8 || net.HardwareAddr(sl[2:]).String() != mac.String() {
		t.Errorf("source link-layer option %x", sl)
	}
	if m := opts[5]; len(m) != 8 || binary.BigEndian.Uint32(m[4:]) != 1450 {
		t.Errorf("MTU option %x", m)
	}
	p := opts[3]
	if len(p) != 32 || p[2] != 64 || p[3] != 0x80 {
		t.Fatalf("prefix option %x: want /64, L set, A clear", p)
	}
	if got := netip.AddrFrom16([16]byte(p[16:32])); got != netip.MustParseAddr("fd00:1::") {
		t.Errorf("prefix %s, want fd00:1:: (masked)", got)
	}
	if binary.BigEndian.Uint32(p[4:]) != uint32(defaultValid/time.Second) {
		t.Errorf("valid lifetime %d", binary.BigEndian.Uint32(p[4:]))
	}
	if r := opts[25]; len(r) != 24 || netip.AddrFrom16([16]byte(r[8:24])) != c.DNS[0] {
		t.Errorf("RDNSS option %x", r)
	}
}

func TestMarshalSLAACFlags(t *testing.T) {
	c := Config{Prefixes: []Prefix{{Prefix: netip.MustParsePrefix("fd00:2::/64"), OnLink: true, Autonomous: true}}, RouterLifetime: 30 * time.Minute}
	b := c.Marshal(nil)
	if b[5] != 0 || binary.BigEndian.Uint16(b[6:]) != 1800 {
		t.Errorf("flags %#x lifetime %d", b[5], binary.BigEndian.Uint16(b[6:]))
	}
	if b[16] != 3 || b[19] != 0xc0 {
		t.Errorf("prefix flags %#x, want L and A", b[19])
	}
	if !c.Equal(c) || c.Equal(Config{}) {
		t.Error("Equal is wrong")
	}
}

package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// How dnsmasq reads the value of an option it knows by name (the size column
// of opttab in dnsmasq's src/option.c).
const (
	ftAddrs   = 1 << iota // OT_ADDR_LIST: dotted-quad addresses only
	ftName                // OT_NAME: text, even when it looks like a number
	ftRFC1035             // OT_RFC1035_NAME: a list of domain names
	ftTime                // OT_TIME: 4-byte seconds, "1h"-style suffixes allowed
)

// optSpec is what dnsmasq knows about an option: its code, how to read its
// value, and the byte size of a decimal value (0: guess from the value).
type optSpec struct {
	code  uint8
	flags uint8
	size  uint8
}

// optionNames is dnsmasq's DHCPv4 option table (dnsmasq 2.90, `dnsmasq --help
// dhcp` plus the entries it marks internal), keyed by lower-case name:
// Neutron's extra_dhcp_opts name options the way dnsmasq does, so existing
// port definitions keep their meaning.
var optionNames = map[string]optSpec{
	"netmask":                  {1, ftAddrs, 0},
	"time-offset":              {2, 0, 4},
	"router":                   {3, ftAddrs, 0},
	"dns-server":               {6, ftAddrs, 0},
	"log-server":               {7, ftAddrs, 0},
	"lpr-server":               {9, ftAddrs, 0},
	"hostname":                 {12, ftName, 0},
	"boot-file-size":           {13, 0, 2},
	"domain-name":              {15, ftName, 0},
	"swap-server":              {16, ftAddrs, 0},
	"root-path":                {17, ftName, 0},
	"extension-path":           {18, ftName, 0},
	"ip-forward-enable":        {19, 0, 1},
	"non-local-source-routing": {20, 0, 1},
	"policy-filter":            {21, ftAddrs, 0},
	"max-datagram-reassembly":  {22, 0, 2},
	"default-ttl":              {23, 0, 1},
	"mtu":                      {26, 0, 2},
	"all-subnets-local":        {27, 0, 1},
	"broadcast":                {28, ftAddrs, 0},
	"router-discovery":         {31, 0, 1},
	"router-solicitation":      {32, ftAddrs, 0},
	"static-route":             {33, ftAddrs, 0},
	"trailer-encapsulation":    {34, 0, 1},
	"arp-timeout":              {35, 0, 4},
	"ethernet-encap":           {36, 0, 1},
	"tcp-ttl":                  {37, 0, 1},
	"tcp-keepalive":            {38, 0, 4},
	"nis-domain":               {40, ftName, 0},
	"nis-server":               {41, ftAddrs, 0},
	"ntp-server":               {42, ftAddrs, 0},
	"vendor-encap":             {43, 0, 0},
	"netbios-ns":               {44, ftAddrs, 0},
	"netbios-dd":               {45, ftAddrs, 0},
	"netbios-nodetype":         {46, 0, 1},
	"netbios-scope":            {47, 0, 0},
	"x-windows-fs":             {48, ftAddrs, 0},
	"x-windows-dm":             {49, ftAddrs, 0},
	"requested-address":        {50, ftAddrs, 0},
	"lease-time":               {51, ftTime, 0},
	"option-overload":          {52, 0, 0},
	"message-type":             {53, 0, 1},
	"server-identifier":        {54, ftAddrs, 0},
	"parameter-request":        {55, 0, 0},
	"message":                  {56, 0, 0},
	"max-message-size":         {57, 0, 0},
	"t1":                       {58, ftTime, 0},
	"t2":                       {59, ftTime, 0},
	"vendor-class":             {60, 0, 0},
	"client-id":                {61, 0, 0},
	"nis+-domain":              {64, ftName, 0},
	"nis+-server":              {65, ftAddrs, 0},
	"tftp-server":              {66, ftName, 0},
	"bootfile-name":            {67, ftName, 0},
	"mobile-ip-home":           {68, ftAddrs, 0},
	"smtp-server":              {69, ftAddrs, 0},
	"pop3-server":              {70, ftAddrs, 0},
	"nntp-server":              {71, ftAddrs, 0},
	"irc-server":               {74, ftAddrs, 0},
	"user-class":               {77, 0, 0},
	"rapid-commit":             {80, 0, 0},
	"fqdn":                     {81, 0, 0},
	"agent-info":               {82, 0, 0},
	"last-transaction":         {91, ftTime, 4},
	"associated-ip":            {92, ftAddrs, 0},
	"client-arch":              {93, 0, 2},
	"client-interface-id":      {94, 0, 0},
	"client-machine-id":        {97, 0, 0},
	"posix-timezone":           {100, ftName, 0},
	"tzdb-timezone":            {101, ftName, 0},
	"ipv6-only":                {108, 0, 4},
	"subnet-select":            {118, 0, 0},
	"domain-search":            {119, ftRFC1035, 0},
	"sip-server":               {120, 0, 0},
	"classless-static-route":   {121, 0, 0},
	"vendor-id-encap":          {125, 0, 0},
	"tftp-server-address":      {150, ftAddrs, 0},
	"server-ip-address":        {255, ftAddrs, 0},
}

// specByCode is optionNames indexed by code, for options given by number.
var specByCode = func() map[uint8]optSpec {
	m := make(map[uint8]optSpec, len(optionNames))
	for _, s := range optionNames {
		m[s.code] = s
	}
	return m
}()

// Option codes the server itself owns: the DHCP exchange breaks if a port
// could set them. Option 255 is dnsmasq's "server-ip-address", which sets
// the siaddr header field rather than an option.
const codeServerIPAddress = 255

var reservedCodes = map[uint8]bool{
	0:  true, // pad
	50: true, // requested address
	51: true, // lease time: the reservation's LeaseTime
	52: true, // option overload
	53: true, // message type
	54: true, // server identifier
	55: true, // parameter request list
	57: true, // maximum message size
	61: true, // client identifier
	82: true, // relay agent information
}

// defaultedCodes are the options dnsmasq fills in itself; an empty value
// removes them instead of sending them empty (dnsmasq(8), --dhcp-option).
var defaultedCodes = map[uint8]bool{1: true, 3: true, 6: true, 12: true, 15: true, 28: true}

// parsedOption is an Option turned into what goes on the wire.
type parsedOption struct {
	code  uint8
	value []byte
	omit  bool     // send no option with this code at all
	tags  []string // dnsmasq tags that must all match ("!x" must not)
}

// parseOption encodes an extra option the way dnsmasq reads --dhcp-option:
// by the option's known type, else by the shape of the value. server replaces
// the address 0.0.0.0 in address lists, as dnsmasq's "this machine".
func parseOption(o Option, server netip.Addr) (parsedOption, error) {
	p, spec, err := parseOptionName(o)
	if err != nil {
		return p, err
	}
	if reservedCodes[p.code] {
		return p, fmt.Errorf("option %q: code %d is set by the server itself", o.Name, p.code)
	}
	v := strings.TrimSpace(o.Value)
	if v == "" {
		p.omit = defaultedCodes[p.code]
		p.value = []byte{}
		return p, nil
	}
	p.value, err = encodeValue(spec, v, server)
	if err != nil {
		return p, fmt.Errorf("option %q value %q: %w", optionLabel(o), o.Value, err)
	}
	if len(p.value) > 255 {
		return p, fmt.Errorf("option %q: value is %d bytes, more than 255", optionLabel(o), len(p.value))
	}
	return p, nil
}

// optionLabel names an option in errors.
func optionLabel(o Option) string {
	if o.Name != "" {
		return o.Name
	}
	return strconv.Itoa(int(o.Code))
}

// parseOptionName reads "[tag:x,]...[option:]name-or-code" as Neutron passes
// it to dnsmasq, or falls back to the numeric Code.
func parseOptionName(o Option) (parsedOption, optSpec, error) {
	var p parsedOption
	name := strings.TrimSpace(o.Name)
	if name == "" {
		if o.Code == 0 {
			return p, optSpec{}, errors.New("option has neither name nor code")
		}
		p.code = o.Code
		spec := specByCode[o.Code]
		spec.code = o.Code
		return p, spec, nil
	}
	parts := strings.Split(name, ",")
	for _, t := range parts[:len(parts)-1] {
		t = strings.TrimSpace(t)
		tag, ok := strings.CutPrefix(t, "tag:")
		if !ok {
			tag, ok = strings.CutPrefix(t, "net:")
		}
		if !ok || tag == "" || tag == "!" {
			return p, optSpec{}, fmt.Errorf("option %q: %q is not a tag (encap, vendor and vi-encap are not supported)", name, t)
		}
		p.tags = append(p.tags, tag)
	}
	last := strings.TrimSpace(parts[len(parts)-1])
	if strings.HasPrefix(last, "option6:") {
		return p, optSpec{}, fmt.Errorf("option %q: a DHCPv6 option", name)
	}
	last = strings.TrimPrefix(last, "option:")
	if n, err := strconv.ParseUint(last, 10, 8); err == nil {
		p.code = uint8(n)
		spec := specByCode[p.code]
		spec.code = p.code
		return p, spec, nil
	}
	spec, ok := optionNames[strings.ToLower(last)]
	if !ok {
		return p, optSpec{}, fmt.Errorf("option %q: unknown option name %q (see `dnsmasq --help dhcp`)", name, last)
	}
	p.code = spec.code
	return p, spec, nil
}

// valueShape is dnsmasq's characterisation of a value string.
type valueShape struct {
	addr, hex, dec bool
	hexParts       int
	lenChar        byte // trailing b, s or i forcing a decimal's size
}

// shapeOf mirrors the character scan of dnsmasq's parse_dhcp_opt.
func shapeOf(v string) (valueShape, string) {
	s := valueShape{addr: true, hex: true, dec: true, hexParts: 1}
	foundDigit := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ',':
			s.dec, s.hex = false, false
		case c == ':':
			s.hexParts++
			s.dec, s.addr = false, false
		case c == '/':
			s.dec, s.hex = false, false
			if i == 0 {
				s.addr = false // a leading slash is a path
			}
		case c == '.':
			s.dec, s.hex = false, false
		case c == '-':
			s.hex, s.addr = false, false
		case c == ' ':
			s.dec, s.hex = false, false
		case c >= '0' && c <= '9':
			foundDigit = true
		default:
			s.addr = false
			if i == len(v)-1 && s.dec && (c == 'b' || c == 's' || c == 'i') {
				s.lenChar = c
				v = v[:i]
			} else {
				s.dec = false
			}
			if !(c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				s.hex = false
			}
		}
	}
	if !foundDigit {
		s.dec, s.addr = false, false
	}
	return s, v
}

// encodeValue turns a non-empty value into option bytes.
func encodeValue(spec optSpec, v string, server netip.Addr) ([]byte, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return []byte(v[1 : len(v)-1]), nil // quotes force a literal string
	}
	shape, trimmed := shapeOf(v)
	switch {
	case spec.flags&ftAddrs != 0:
		if !shape.addr || !strings.Contains(v, ".") {
			return nil, errors.New("not a list of IPv4 addresses")
		}
		return encodeAddrs(v, server)
	case spec.flags&(ftName|ftRFC1035) != 0:
		if spec.flags&ftRFC1035 != 0 {
			return encodeDomains(v)
		}
		return []byte(v), nil
	case spec.flags&ftTime != 0:
		return encodeTime(v)
	case shape.hex && shape.hexParts > 1:
		return encodeHex(v)
	case shape.dec:
		return encodeDecimal(trimmed, spec.size, shape.lenChar)
	case shape.addr:
		b, err := encodeAddrs(v, server)
		if err == nil && spec.code == 120 {
			b = append([]byte{1}, b...) // RFC 3361 encoding byte: addresses
		}
		return b, err
	case spec.code == 119:
		return encodeDomains(v)
	case spec.code == 120:
		b, err := encodeDomains(v)
		return append([]byte{0}, b...), err // RFC 3361 encoding byte: names
	default:
		return []byte(v), nil
	}
}

// encodeAddrs writes comma-separated IPv4 addresses; an address followed by
// "/len" is written as an RFC 3442 destination descriptor, which is how
// dnsmasq users spell option 121. Without descriptors, 0.0.0.0 stands for the
// server's own address.
func encodeAddrs(v string, server netip.Addr) ([]byte, error) {
	parts := strings.Split(v, ",")
	descriptors := strings.Contains(v, "/")
	out := make([]byte, 0, 5*len(parts))
	for _, part := range parts {
		part = strings.TrimSpace(part)
		addrText, bitsText, slash := strings.Cut(part, "/")
		a, err := netip.ParseAddr(addrText)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("bad IPv4 address %q", addrText)
		}
		if !slash {
			if a.IsUnspecified() && !descriptors && server.Is4() {
				a = server
			}
			b := a.As4()
			out = append(out, b[:]...)
			continue
		}
		bits, err := strconv.Atoi(bitsText)
		if err != nil || bits < 0 || bits > 32 {
			return nil, fmt.Errorf("bad prefix length %q", bitsText)
		}
		out = appendDescriptor(out, netip.PrefixFrom(a, bits))
	}
	return out, nil
}

// appendDescriptor writes an RFC 3442 destination descriptor: the prefix
// length, then only the significant octets of the network.
func appendDescriptor(b []byte, p netip.Prefix) []byte {
	bits := p.Bits()
	a := p.Masked().Addr().As4()
	b = append(b, byte(bits))
	return append(b, a[:(bits+7)/8]...)
}

// encodeDomains writes a list of domain names in RFC 1035 wire format, as
// option 119 (RFC 3397) wants; without compression, which is optional.
func encodeDomains(v string) ([]byte, error) {
	var out []byte
	for _, d := range strings.Split(v, ",") {
		d = strings.TrimSuffix(strings.TrimSpace(d), ".")
		if d == "" {
			out = append(out, 0)
			continue
		}
		for _, label := range strings.Split(d, ".") {
			if label == "" || len(label) > 63 {
				return nil, fmt.Errorf("bad domain %q", d)
			}
			out = append(out, byte(len(label)))
			out = append(out, label...)
		}
		out = append(out, 0)
	}
	return out, nil
}

// encodeTime reads seconds with dnsmasq's optional s/m/h/d/w suffix.
func encodeTime(v string) ([]byte, error) {
	if strings.EqualFold(v, "infinite") {
		return binary.BigEndian.AppendUint32(nil, 0xffffffff), nil
	}
	factor := int64(1)
	switch v[len(v)-1] {
	case 'w', 'W':
		factor = 7 * 24 * 3600
	case 'd', 'D':
		factor = 24 * 3600
	case 'h', 'H':
		factor = 3600
	case 'm', 'M':
		factor = 60
	case 's', 'S':
	default:
		factor = 0
	}
	if factor != 0 {
		v = v[:len(v)-1]
	} else {
		factor = 1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n*factor > 0xffffffff {
		return nil, fmt.Errorf("bad time %q", v)
	}
	return binary.BigEndian.AppendUint32(nil, uint32(n*factor)), nil
}

// encodeHex reads colon-separated hex bytes ("01:02:0a").
func encodeHex(v string) ([]byte, error) {
	parts := strings.Split(v, ":")
	out := make([]byte, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("bad hex byte %q", p)
		}
		out = append(out, byte(n))
	}
	return out, nil
}

// encodeDecimal writes an integer big-endian in size bytes: the option's
// known size, else the one the suffix asks for, else the smallest of 1, 2 or
// 4 bytes that holds it, as dnsmasq does.
func encodeDecimal(v string, size uint8, lenChar byte) ([]byte, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < -(1<<31) || n > 0xffffffff {
		return nil, fmt.Errorf("bad number %q", v)
	}
	u := uint32(n)
	switch {
	case lenChar == 'b':
		size = 1
	case lenChar == 's':
		size = 2
	case lenChar == 'i':
		size = 4
	case size != 0:
	case u&0xffff0000 != 0:
		size = 4
	case u&0xff00 != 0:
		size = 2
	default:
		size = 1
	}
	out := make([]byte, size)
	for i := range out {
		out[i] = byte(u >> (8 * (int(size) - i - 1)))
	}
	return out, nil
}

// tagsMatch decides dnsmasq tags for one request. The only tag vland's
// server sets is Neutron's "ipxe" (dnsmasq: --dhcp-match=set:ipxe,175), for
// clients that send iPXE's option 175; every other tag is unset, so options
// guarded by it are sent only in the negated form ("tag:!x").
func tagsMatch(tags []string, ipxe bool) bool {
	for _, t := range tags {
		neg := strings.HasPrefix(t, "!")
		set := strings.TrimPrefix(t, "!") == "ipxe" && ipxe
		if set == neg {
			return false
		}
	}
	return true
}

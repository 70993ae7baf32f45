package secgroup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// The ruleset model: what Render produces and the applier diffs. It is the
// nftables content of vland's two tables, with each rule carrying the
// nft-like text it was built from (golden files show these texts).

// ruleset is the content of both tables.
type ruleset struct {
	bridge, inet *table
}

func (rs *ruleset) tables() []*table { return []*table{rs.bridge, rs.inet} }

// table is one nftables table.
type table struct {
	family nftables.TableFamily
	sets   map[string]*set
	chains map[string]*chain
}

func newTable(f nftables.TableFamily) *table {
	return &table{family: f, sets: map[string]*set{}, chains: map[string]*chain{}}
}

func (t *table) familyName() string {
	if t.family == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "inet"
}

// nft is the table as the kernel library addresses it.
func (t *table) nft() *nftables.Table {
	return &nftables.Table{Family: t.family, Name: TableName}
}

// set is a named set or map.
type set struct {
	name     string
	keyType  nftables.SetDatatype
	dataType nftables.SetDatatype // maps only
	isMap    bool
	verdict  bool // a verdict map: elements jump to chains
	interval bool
	elems    map[string]elem // by elem.id()
}

// elem is one element. In an interval set it is the range [key, end): end
// is the first value after it, nil when the range runs to the maximum.
type elem struct {
	key, end []byte
	val      []byte // data of a map element
	jump     string // verdict map: the chain to jump to
}

func (e elem) id() string {
	if e.end != nil {
		return hex.EncodeToString(e.key) + "-" + hex.EncodeToString(e.end)
	}
	return hex.EncodeToString(e.key)
}

// same reports whether two elements with the same id carry the same data.
func (e elem) same(o elem) bool {
	return e.jump == o.jump && string(e.val) == string(o.val)
}

func (s *set) add(e elem) { s.elems[e.id()] = e }

// nft is the set as the kernel library addresses it, with a batch-local id.
func (s *set) nft(t *nftables.Table, id uint32) *nftables.Set {
	ns := &nftables.Set{Table: t, ID: id, Name: s.name, KeyType: s.keyType, Interval: s.interval}
	if s.keyType.Name == nftables.TypeIFName.Name || s.keyType.Name == nftables.TypeMark.Name {
		ns.KeyByteOrder = binaryutil.NativeEndian // for nft's listing: host-order types
	}
	if s.isMap {
		ns.IsMap = true
		ns.DataType = s.dataType
		if s.verdict {
			ns.DataType = nftables.TypeVerdict
		}
	}
	return ns
}

// nftElems are the kernel's elements for es: an interval set stores each
// range as a start element and an interval-end element. Deletions (data
// false) name elements by key alone.
func (s *set) nftElems(es []elem, data bool) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(es)*2)
	for _, e := range es {
		ne := nftables.SetElement{Key: e.key}
		if data {
			ne.Val = e.val
			if e.jump != "" {
				ne.VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.jump}
			}
		}
		out = append(out, ne)
		if s.interval && e.end != nil {
			out = append(out, nftables.SetElement{Key: e.end, IntervalEnd: true})
		}
	}
	return out
}

// baseChain is the hook of a base chain.
type baseChain struct {
	hook     nftables.ChainHook
	priority nftables.ChainPriority
}

// chain is a chain and its rules.
type chain struct {
	name string
	base *baseChain // nil for a regular chain
	// unordered chains hold independent "... accept" rules whose order does
	// not matter (security-group chains): they are changed rule by rule.
	// Others are rewritten whole when anything in them changes.
	unordered bool
	rules     []*rule
}

// rule is one rule: its expressions and the nft-like text they came from.
type rule struct {
	text    string
	exprs   []expr.Any
	comment string // extra words of the kernel comment (security-group rule ids)
}

// key identifies a rule by content: it is stored in the rule's comment, so
// that the applier finds a rule's handle in the kernel.
func (r *rule) key() string {
	h := sha256.Sum256([]byte(r.text))
	return hex.EncodeToString(h[:8])
}

// userComment is the kernel comment of the rule: its key, then the ids of
// the security-group rules it implements.
func (r *rule) userComment() string {
	if r.comment == "" {
		return "k=" + r.key()
	}
	c := "k=" + r.key() + " " + r.comment
	if len(c) > 200 { // the kernel keeps at most 256 bytes of user data
		c = c[:200]
	}
	return c
}

// sameRules reports whether two chains have the same rules in the same order.
func sameRules(a, b *chain) bool {
	return slices.EqualFunc(a.rules, b.rules, func(x, y *rule) bool { return x.text == y.text })
}

// counts returns the number of rules and of set elements in the ruleset.
func (rs *ruleset) counts() (rules, elements int) {
	for _, t := range rs.tables() {
		for _, c := range t.chains {
			rules += len(c.rules)
		}
		for _, s := range t.sets {
			elements += len(s.elems)
		}
	}
	return rules, elements
}

// String renders the ruleset in nft's listing syntax (sorted, without
// handles): what golden files hold.
func (rs *ruleset) String() string {
	var b strings.Builder
	for _, t := range rs.tables() {
		fmt.Fprintf(&b, "table %s %s {\n", t.familyName(), TableName)
		for _, name := range slices.Sorted(maps.Keys(t.sets)) {
			s := t.sets[name]
			kind := "set"
			if s.isMap {
				kind = "map"
			}
			typ := s.keyType.Name
			if s.isMap {
				if s.verdict {
					typ += " : verdict"
				} else {
					typ += " : " + s.dataType.Name
				}
			}
			fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s\n", kind, name, typ)
			if s.interval {
				b.WriteString("\t\tflags interval\n")
			}
			if len(s.elems) > 0 {
				var es []string
				for _, e := range s.elems {
					es = append(es, s.elemText(e))
				}
				slices.Sort(es)
				fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(es, ", "))
			}
			b.WriteString("\t}\n")
		}
		for _, name := range slices.Sorted(maps.Keys(t.chains)) {
			c := t.chains[name]
			fmt.Fprintf(&b, "\tchain %s {\n", name)
			if c.base != nil {
				fmt.Fprintf(&b, "\t\ttype filter hook %s priority %d; policy accept;\n", hookName(c.base.hook), c.base.priority)
			}
			rules := c.rules
			if c.unordered {
				rules = slices.SortedFunc(slices.Values(rules), func(x, y *rule) int { return strings.Compare(x.text, y.text) })
			}
			for _, r := range rules {
				fmt.Fprintf(&b, "\t\t%s\n", r.text)
			}
			b.WriteString("\t}\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// elemText renders one element as nft lists it.
func (s *set) elemText(e elem) string {
	k := valueText(s.keyType, e.key)
	if s.interval {
		k = rangeText(s.keyType, e.key, e.end)
	}
	switch {
	case e.jump != "":
		return k + " : jump " + e.jump
	case s.isMap:
		return k + " : " + valueText(s.dataType, e.val)
	}
	return k
}

// valueText renders a key or value of a set type.
func valueText(t nftables.SetDatatype, v []byte) string {
	switch t.Name {
	case nftables.TypeIFName.Name:
		return `"` + strings.TrimRight(string(v), "\x00") + `"`
	case nftables.TypeIPAddr.Name, nftables.TypeIP6Addr.Name:
		a, _ := netip.AddrFromSlice(v)
		return a.String()
	case nftables.TypeEtherAddr.Name:
		return net.HardwareAddr(v).String()
	}
	if len(v) == 4 {
		return fmt.Sprintf("0x%08x", nativeUint32(v))
	}
	if len(v) == 2 {
		return fmt.Sprintf("%d", nativeUint16(v))
	}
	return hex.EncodeToString(v)
}

// rangeText renders an interval as a prefix when it is one, else as a-b.
func rangeText(t nftables.SetDatatype, start, end []byte) string {
	lo, _ := netip.AddrFromSlice(start)
	var hi netip.Addr
	if end == nil {
		hi = maxAddr(lo.Is6())
	} else {
		e, _ := netip.AddrFromSlice(end)
		hi = e.Prev()
	}
	if p, ok := rangePrefix(lo, hi); ok {
		if p.IsSingleIP() {
			return p.Addr().String()
		}
		return p.String()
	}
	return lo.String() + "-" + hi.String()
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook%d", h)
}

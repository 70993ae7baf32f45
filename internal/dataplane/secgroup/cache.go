package secgroup

import (
	"net/netip"
	"slices"
)

// renderCache keeps what one render produced for each group, address set
// and port, with the input it came from. The next render reuses an object
// whose input did not change (compared by value, which costs far less than
// rendering), so that a change to one group re-renders that group alone,
// and the diff skips every reused object at once (same pointer). Rendered
// objects are never modified after render, so sharing them is safe.
type renderCache struct {
	groups map[string]*groupMemo
	sets   map[string]*setMemo
	ports  map[string]*portMemo
}

func newRenderCache() *renderCache {
	return &renderCache{groups: map[string]*groupMemo{}, sets: map[string]*setMemo{}, ports: map[string]*portMemo{}}
}

// groupMemo is a rendered group: its chains, the sets its rules refer to,
// and what it could not render.
type groupMemo struct {
	g       Group
	in, out *chain
	refs    []setRef
	skipped []string
	matches []match // the valid rules, for the policy evaluator
	rules   map[ruleIn]*ruleMemo
}

// ruleIn is a Rule as a comparable value, the key of its rendering.
type ruleIn struct {
	id, direction, ethertype, protocol string
	portMin, portMax                   int
	hasMin, hasMax                     bool
	remote                             netip.Prefix
	remoteGroup, addressGroup          string
}

func ruleInOf(r Rule) ruleIn {
	k := ruleIn{id: r.ID, direction: r.Direction, ethertype: r.Ethertype, protocol: r.Protocol,
		remote: r.RemoteIPPrefix, remoteGroup: r.RemoteGroupID, addressGroup: r.RemoteAddressGroupID}
	if r.PortMin != nil {
		k.portMin, k.hasMin = *r.PortMin, true
	}
	if r.PortMax != nil {
		k.portMax, k.hasMax = *r.PortMax, true
	}
	return k
}

// ruleMemo is one rendered rule; its rule is shared, never modified.
type ruleMemo struct {
	m   match
	r   *rule
	ref *setRef
	err error
}

// setRef is an address set a group rule refers to.
type setRef struct {
	name   string
	v6     bool
	remote string // remote group id, or
	ag     string // address group id
}

type setMemo struct {
	v6       bool
	prefixes []netip.Prefix
	ranges   []addrRange
	s        *set
}

// portMemo is a rendered port with everything its chains depend on.
type portMemo struct {
	p        Port
	index    uint16
	stateful bool
	broken   string
	present  []bool // which of p.Groups exist in Desired.Groups
	chains   []*chain
}

func cloneGroup(g Group) Group {
	g.Rules = slices.Clone(g.Rules)
	for i, r := range g.Rules {
		if r.PortMin != nil {
			g.Rules[i].PortMin = intp(*r.PortMin)
		}
		if r.PortMax != nil {
			g.Rules[i].PortMax = intp(*r.PortMax)
		}
	}
	return g
}

func intp(v int) *int { return &v }

func sameInt(a, b *int) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func sameGroup(a, b Group) bool {
	return a.ID == b.ID && a.Stateful == b.Stateful && slices.EqualFunc(a.Rules, b.Rules, func(x, y Rule) bool {
		return x.ID == y.ID && x.Direction == y.Direction && x.Ethertype == y.Ethertype && x.Protocol == y.Protocol &&
			sameInt(x.PortMin, y.PortMin) && sameInt(x.PortMax, y.PortMax) && x.RemoteIPPrefix == y.RemoteIPPrefix &&
			x.RemoteGroupID == y.RemoteGroupID && x.RemoteAddressGroupID == y.RemoteAddressGroupID
	})
}

func clonePort(p Port) Port {
	p.MAC = slices.Clone(p.MAC)
	p.IPs = slices.Clone(p.IPs)
	p.Groups = slices.Clone(p.Groups)
	p.AllowedPairs = slices.Clone(p.AllowedPairs)
	for i := range p.AllowedPairs {
		p.AllowedPairs[i].MAC = slices.Clone(p.AllowedPairs[i].MAC)
	}
	return p
}

func samePort(a, b Port) bool {
	return a.ID == b.ID && a.Device == b.Device && a.Bridge == b.Bridge && a.Zone == b.Zone &&
		a.PortSecurity == b.PortSecurity && slices.Equal(a.MAC, b.MAC) && slices.Equal(a.IPs, b.IPs) &&
		slices.Equal(a.Groups, b.Groups) && slices.EqualFunc(a.AllowedPairs, b.AllowedPairs, func(x, y AddressPair) bool {
		return x.Prefix == y.Prefix && slices.Equal(x.MAC, y.MAC)
	})
}

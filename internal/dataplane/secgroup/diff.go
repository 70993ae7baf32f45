package secgroup

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// opKind is one kind of change to the tables.
type opKind int

const (
	opAddTable opKind = iota
	opDelTable
	opAddSet
	opAddChain
	opDelElems
	opAddElems
	opFlushChain
	opDelRule
	opAddRule
	opDelChain
	opDelSet
)

// op is one change; a transaction is a list of them, in this order of
// kinds, so that nothing is referenced before it exists or deleted while
// something still refers to it.
type op struct {
	kind  opKind
	table *table
	set   *set
	elems []elem
	chain *chain
	rule  *rule
}

// String is the change as Result.Changes reports it.
func (o op) String() string {
	where := o.table.familyName() + " " + TableName
	switch o.kind {
	case opAddTable:
		return "add table " + where
	case opDelTable:
		return "delete table " + where
	case opAddSet:
		return fmt.Sprintf("add set %s %s", where, o.set.name)
	case opDelSet:
		return fmt.Sprintf("delete set %s %s", where, o.set.name)
	case opAddElems, opDelElems:
		verb := "add"
		if o.kind == opDelElems {
			verb = "delete"
		}
		texts := make([]string, 0, min(len(o.elems), 4))
		for _, e := range o.elems[:min(len(o.elems), 3)] {
			texts = append(texts, o.set.elemText(e))
		}
		if len(o.elems) > 3 {
			texts = append(texts, fmt.Sprintf("... (%d elements)", len(o.elems)))
		}
		return fmt.Sprintf("%s element %s %s { %s }", verb, where, o.set.name, joinComma(texts))
	case opAddChain:
		return fmt.Sprintf("add chain %s %s", where, o.chain.name)
	case opDelChain:
		return fmt.Sprintf("delete chain %s %s", where, o.chain.name)
	case opFlushChain:
		return fmt.Sprintf("flush chain %s %s", where, o.chain.name)
	case opAddRule:
		return fmt.Sprintf("add rule %s %s %s", where, o.chain.name, o.rule.text)
	case opDelRule:
		return fmt.Sprintf("delete rule %s %s %s", where, o.chain.name, o.rule.text)
	}
	return fmt.Sprintf("op %d", o.kind)
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// fullOps builds both tables from scratch in one transaction: each table
// is added (a no-op when it exists), deleted and added again, so that an
// agent that restarts replaces whatever its predecessor left atomically,
// with no moment in which traffic is unfiltered.
func fullOps(rs *ruleset) []op {
	var ops []op
	for _, t := range rs.tables() {
		ops = append(ops, op{kind: opAddTable, table: t}, op{kind: opDelTable, table: t}, op{kind: opAddTable, table: t})
	}
	empty := &ruleset{bridge: newTable(rs.bridge.family), inet: newTable(rs.inet.family)}
	return append(ops, diff(empty, rs)...)
}

// diff lists the changes that turn the tables from old into new, touching
// only what differs: set elements one by one, security-group chains rule by
// rule, other chains rewritten whole (flushed and refilled) when any of
// their rules changed.
func diff(old, new *ruleset) []op {
	var ops []op
	for i, nt := range new.tables() {
		ot := old.tables()[i]
		ops = append(ops, diffTable(ot, nt)...)
	}
	slices.SortStableFunc(ops, func(a, b op) int { return cmp.Compare(a.kind, b.kind) })
	return ops
}

func diffTable(ot, nt *table) []op {
	var ops []op
	for _, name := range slices.Sorted(maps.Keys(nt.sets)) {
		ns := nt.sets[name]
		os, ok := ot.sets[name]
		if os == ns {
			continue // reused from the previous render: unchanged
		}
		if !ok {
			ops = append(ops, op{kind: opAddSet, table: nt, set: ns})
			os = &set{elems: map[string]elem{}}
		}
		var add, del []elem
		for _, id := range slices.Sorted(maps.Keys(ns.elems)) {
			e := ns.elems[id]
			if oe, ok := os.elems[id]; !ok || !oe.same(e) {
				add = append(add, e)
				if ok {
					del = append(del, oe)
				}
			}
		}
		for _, id := range slices.Sorted(maps.Keys(os.elems)) {
			if _, ok := ns.elems[id]; !ok {
				del = append(del, os.elems[id])
			}
		}
		if len(del) > 0 {
			ops = append(ops, op{kind: opDelElems, table: nt, set: ns, elems: del})
		}
		if len(add) > 0 {
			ops = append(ops, op{kind: opAddElems, table: nt, set: ns, elems: add})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ot.sets)) {
		if _, ok := nt.sets[name]; !ok {
			ops = append(ops, op{kind: opDelSet, table: ot, set: ot.sets[name]})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(nt.chains)) {
		nc := nt.chains[name]
		oc, ok := ot.chains[name]
		switch {
		case oc == nc:
			// reused from the previous render: unchanged
		case !ok:
			ops = append(ops, op{kind: opAddChain, table: nt, chain: nc})
			for _, r := range nc.rules {
				ops = append(ops, op{kind: opAddRule, table: nt, chain: nc, rule: r})
			}
		case nc.unordered:
			have := map[string]bool{}
			for _, r := range oc.rules {
				have[r.text] = true
			}
			want := map[string]bool{}
			for _, r := range nc.rules {
				want[r.text] = true
				if !have[r.text] {
					ops = append(ops, op{kind: opAddRule, table: nt, chain: nc, rule: r})
				}
			}
			for _, r := range oc.rules {
				if !want[r.text] {
					ops = append(ops, op{kind: opDelRule, table: nt, chain: nc, rule: r})
				}
			}
		case !sameRules(oc, nc):
			ops = append(ops, op{kind: opFlushChain, table: nt, chain: nc})
			for _, r := range nc.rules {
				ops = append(ops, op{kind: opAddRule, table: nt, chain: nc, rule: r})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ot.chains)) {
		if _, ok := nt.chains[name]; !ok {
			// Flushed first: with every rule of every doomed chain gone,
			// no deleted chain is still the target of a jump.
			oc := ot.chains[name]
			ops = append(ops, op{kind: opFlushChain, table: ot, chain: oc}, op{kind: opDelChain, table: ot, chain: oc})
		}
	}
	return ops
}

// narrows reports whether applying ops may take a permission away, so that
// connections it allowed must be checked: a rule, a set element or a whole
// chain deleted, or a port chain rewritten.
func narrows(ops []op) bool {
	for _, o := range ops {
		switch o.kind {
		case opDelRule, opDelElems, opFlushChain, opDelChain, opDelSet, opDelTable:
			return true
		}
	}
	return false
}

package secgroup

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/namedns"
)

// Manager converges vland's firewall tables in one network namespace. Its
// methods are safe for concurrent use; reconciles are serialized.
type Manager struct {
	mu  sync.Mutex
	ns  netns.NsHandle
	nl  *netlink.Handle // conntrack
	log *slog.Logger
	// idx holds the port indices (marks), stable while a port stays.
	idx map[string]uint16
	// applied is what the kernel has, as of the last successful
	// transaction; nil until the first one, and after a failure, so that
	// the next Reconcile rebuilds the tables whole.
	applied *ruleset
	handles handleCache
	cache   *renderCache
	skipped map[string]bool // reported already: logged once, not at every Reconcile
	owners  owners          // addresses of the ports of the previous Reconcile
}

// NewManager returns a Manager for the namespace opts.NetNS. It changes
// nothing until the first Reconcile.
func NewManager(opts Options) (*Manager, error) {
	h, err := namedns.Open(opts.NetNS)
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in namespace %q: %w", opts.NetNS, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.NetNS != "" {
		log = log.With("netns", opts.NetNS)
	}
	return &Manager{ns: h, nl: nl, log: log, idx: map[string]uint16{}, handles: handleCache{}}, nil
}

// Close releases the namespace and sockets. The tables stay: an agent that
// stops or restarts leaves its ports filtered.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nl.Close()
	return m.ns.Close()
}

// Resync makes the next Reconcile rebuild the tables whole, in one
// transaction, as the first one does. Reconcile compares d with what its
// previous transaction left, not with the kernel, so a change made to the
// tables behind the Manager's back (an operator's nft command) lasts until
// a Resync; an agent calls it now and then, or when told to.
func (m *Manager) Resync() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied = nil
}

// Reconcile makes vland's tables enforce d and returns what changed. It is
// level-triggered and idempotent: the first call of a Manager replaces the
// tables whole (whatever an earlier agent left) in one transaction, later
// calls change only what differs from the previous call, also in one
// transaction; a second call with the same d changes nothing. After a
// change that takes a permission away, connections no longer allowed are
// cut. What cannot be rendered is listed in Result.Skipped, not returned as
// an error; an error means the transaction failed (the kernel keeps the
// previous ruleset) or the conntrack cleanup did.
func (m *Manager) Reconcile(d Desired) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := time.Now()
	m.idx = assignIndices(m.idx, d.Ports)
	want, skipped, cache := renderCached(d, m.idx, m.cache)
	m.cache = cache
	res := Result{Full: m.applied == nil, Skipped: skipped}
	var ops []op
	if res.Full {
		ops = fullOps(want)
	} else {
		ops = diff(m.applied, want)
	}
	if len(ops) > 0 {
		if err := m.apply(ops); err != nil {
			m.applied, m.handles = nil, handleCache{}
			return res, err
		}
		res.Changes = changeList(ops, want, res.Full)
		m.log.Info("security groups applied", "full", res.Full, "changes", len(ops), "took", time.Since(start))
	}
	m.applied = want
	res.Took = time.Since(start)
	res.Rules, res.Elements = want.counts()
	now := make(map[string]bool, len(skipped))
	for _, s := range skipped {
		if !m.skipped[s] {
			m.log.Warn("security groups: not rendered", "what", s)
		}
		now[s] = true
	}
	m.skipped = now
	prevOwners := m.owners
	m.owners = portOwners(d)
	if res.Full || narrows(ops) {
		start := time.Now()
		pol := newPolicy(d, m.idx, m.cache)
		pol.setGone(prevOwners)
		n, err := cutConnections(m.nl, pol)
		res.ConntrackTook = time.Since(start)
		res.ConntrackDeleted = n
		if n > 0 {
			m.log.Info("connections cut", "count", n)
		}
		if err != nil {
			return res, fmt.Errorf("cut connections no longer allowed: %w", err)
		}
	}
	return res, nil
}

// apply runs ops as one nftables transaction.
func (m *Manager) apply(ops []op) error {
	if len(ops) > 0 && ops[0].kind == opAddTable {
		m.handles = handleCache{}
	}
	echoes, err := transact(int(m.ns), ops, m.ruleHandles)
	if err != nil {
		return fmt.Errorf("nftables transaction (%d changes): %w", len(ops), err)
	}
	// The handles of new rules are known when the kernel echoed them;
	// otherwise a deletion that needs one reads its chain again.
	for _, o := range ops {
		k := cacheKey(o.table, chainName(o))
		switch o.kind {
		case opDelRule:
			if c := m.handles[k]; c != nil {
				delete(c, o.rule.key())
			}
		case opDelChain, opFlushChain:
			delete(m.handles, k)
		}
	}
	for _, e := range echoes {
		k := cacheKey(&table{family: e.family}, e.chain)
		if c := m.handles[k]; c != nil {
			c[e.key] = append(c[e.key], e.handle)
		} else {
			m.handles[k] = map[string][]uint64{e.key: {e.handle}}
		}
	}
	return nil
}

// changeList is Result.Changes: every operation, or for a full rebuild one
// line per table.
func changeList(ops []op, rs *ruleset, full bool) []string {
	if full {
		var out []string
		for _, t := range rs.tables() {
			rules, elems := 0, 0
			for _, c := range t.chains {
				rules += len(c.rules)
			}
			for _, s := range t.sets {
				elems += len(s.elems)
			}
			out = append(out, fmt.Sprintf("replace table %s %s: %d chains, %d rules, %d sets, %d elements",
				t.familyName(), TableName, len(t.chains), rules, len(t.sets), elems))
		}
		return out
	}
	out := make([]string, 0, len(ops))
	for _, o := range ops {
		out = append(out, o.String())
	}
	return out
}

func chainName(o op) string {
	if o.chain == nil {
		return ""
	}
	return o.chain.name
}

// ruleHandles returns the handles of a rule of an unordered chain, dumping
// the chain when the cache does not know them.
func (m *Manager) ruleHandles(t *table, ch *chain, r *rule) ([]uint64, error) {
	k := cacheKey(t, ch.name)
	if hs := m.handles[k][r.key()]; len(hs) > 0 {
		return hs, nil
	}
	hs, err := dumpHandles(int(m.ns), t, ch.name)
	if err != nil {
		return nil, err
	}
	m.handles[k] = hs
	if len(hs[r.key()]) == 0 {
		return nil, fmt.Errorf("rule %q of chain %s %s is not in the kernel", r.text, t.familyName(), ch.name)
	}
	return hs[r.key()], nil
}

// assignIndices gives every port a stable index in 1..MaxPorts: the one it
// had, else the lowest free one. Ports that are gone free theirs.
func assignIndices(prev map[string]uint16, ports []Port) map[string]uint16 {
	next := make(map[string]uint16, len(ports))
	used := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		if i, ok := prev[p.ID]; ok && p.PortSecurity {
			next[p.ID] = i
			used[i] = true
		}
	}
	ids := make([]string, 0, len(ports))
	for _, p := range ports {
		if _, ok := next[p.ID]; !ok && p.PortSecurity {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	free := uint16(1)
	for _, id := range slices.Compact(ids) {
		for free != 0 && used[free] {
			free++
		}
		if free == 0 { // wrapped: no index left
			break
		}
		next[id] = free
		used[free] = true
	}
	return next
}

// Cleanup removes vland's tables from network namespace ns ("" for the
// caller's, a name, or a path), in one transaction; tables that are not
// there are no error. For tests and dev cluster teardown: an agent never
// calls it, so that its ports stay filtered while it is away.
func Cleanup(ns string) error {
	h, err := namedns.Open(ns)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return fmt.Errorf("nftables in namespace %q: %w", ns, err)
	}
	for _, f := range []nftables.TableFamily{nftables.TableFamilyBridge, nftables.TableFamilyINet} {
		t := &nftables.Table{Family: f, Name: TableName}
		c.AddTable(t) // so that the deletion cannot fail for want of the table
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove tables %s from namespace %q: %w", TableName, ns, err)
	}
	return nil
}

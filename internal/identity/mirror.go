package identity

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/store"
)

// mirror is an in-memory copy of every identity key, fed by a watch. Token
// validation sits on the hot path of every API request, so it must answer
// "does this user, project, grant still exist" with map lookups only.
type mirror struct {
	cli  *clientv3.Client
	keys keys
	log  *slog.Logger

	mu      sync.RWMutex
	rev     int64
	advance chan struct{} // closed and replaced whenever rev moves
	state   *mirrorState
}

// mirrorState is one consistent view of the identity keys.
type mirrorState struct {
	domains   map[string]*domainRec
	projects  map[string]*projectRec
	users     map[string]*userRec
	passwords map[string]passwordRec
	roles     map[string]*roleRec
	// grants maps project → user → role → create revision of the grant.
	grants  map[string]map[string]map[string]int64
	revoked map[string]struct{}
	// names indexes kind/scope/name → id, so look-ups by name (every
	// password authentication) do not scan.
	names map[nameKey]string
}

// nameKey is a name within its kind and scope (a domain id, or globalScope).
type nameKey struct{ kind, scope, name string }

func newMirrorState() *mirrorState {
	return &mirrorState{
		domains:   map[string]*domainRec{},
		projects:  map[string]*projectRec{},
		users:     map[string]*userRec{},
		passwords: map[string]passwordRec{},
		roles:     map[string]*roleRec{},
		grants:    map[string]map[string]map[string]int64{},
		revoked:   map[string]struct{}{},
		names:     map[nameKey]string{},
	}
}

func newMirror(cli *clientv3.Client, k keys, log *slog.Logger) *mirror {
	return &mirror{cli: cli, keys: k, log: log, advance: make(chan struct{}), state: newMirrorState()}
}

// load replaces the mirror's content with a consistent snapshot.
func (m *mirror) load(ctx context.Context) (int64, error) {
	prefix := m.keys.root()
	st := newMirrorState()
	var rev int64
	key, end := prefix, store.PrefixEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(5000)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := m.cli.Get(ctx, key, opts...)
		if err != nil {
			return 0, fmt.Errorf("load identity mirror: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			m.apply(st, kv, false)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	m.mu.Lock()
	m.state = st
	m.setRevLocked(rev)
	m.mu.Unlock()
	return rev, nil
}

// follow applies watch events; a compacted or broken watch reloads.
func (m *mirror) follow(ctx context.Context, rev int64) {
	prefix := m.keys.root()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := m.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					m.log.Warn("identity watch compacted, reloading", "rev", rev)
				} else {
					m.log.Warn("identity watch failed, reloading", "err", err)
				}
				break
			}
			m.mu.Lock()
			for _, ev := range wr.Events {
				m.apply(m.state, ev.Kv, ev.Type == mvccpb.DELETE)
			}
			if wr.Header.Revision > m.rev {
				m.setRevLocked(wr.Header.Revision)
			}
			rev = m.rev
			m.mu.Unlock()
		}
		cancel()
		for ctx.Err() == nil {
			r, err := m.load(ctx)
			if err == nil {
				rev = r
				break
			}
			m.log.Warn("identity mirror reload failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// apply folds one key's new value (or deletion) into st.
func (m *mirror) apply(st *mirrorState, kv *mvccpb.KeyValue, deleted bool) {
	cat, parts, ok := m.keys.parse(string(kv.Key))
	if !ok {
		return
	}
	var err error
	switch {
	case cat == "domains" && len(parts) == 1:
		err = applyRecord(st, st.domains, parts[0], kv, deleted)
	case cat == "projects" && len(parts) == 1:
		err = applyRecord(st, st.projects, parts[0], kv, deleted)
	case cat == "users" && len(parts) == 1:
		err = applyRecord(st, st.users, parts[0], kv, deleted)
	case cat == "roles" && len(parts) == 1:
		err = applyRecord(st, st.roles, parts[0], kv, deleted)
	case cat == "passwords" && len(parts) == 1:
		if deleted {
			delete(st.passwords, parts[0])
		} else {
			st.passwords[parts[0]] = passwordRec{hash: kv.Value, modRev: kv.ModRevision}
		}
	case cat == "assignments" && len(parts) == 3:
		applyGrant(st.grants, parts[0], parts[1], parts[2], kv.CreateRevision, deleted)
	case cat == "revoked" && len(parts) == 1:
		if deleted {
			delete(st.revoked, parts[0])
		} else {
			st.revoked[parts[0]] = struct{}{}
		}
	}
	if err != nil {
		m.log.Error("undecodable identity object in store", "key", string(kv.Key), "err", err)
	}
}

// record is what every named identity object offers the mirror.
type record[T any] interface {
	*T
	key() nameKey
	setRev(rev int64)
}

// applyRecord decodes a JSON record into objects, or removes it, keeping the
// name index in step. Records are never modified once in the mirror (readers
// may hold them), only replaced.
func applyRecord[T any, P record[T]](st *mirrorState, objects map[string]P, id string, kv *mvccpb.KeyValue, deleted bool) error {
	if old := objects[id]; old != nil {
		if n := old.key(); st.names[n] == id {
			delete(st.names, n)
		}
		delete(objects, id)
	}
	if deleted {
		return nil
	}
	v := P(new(T))
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return err
	}
	v.setRev(kv.ModRevision)
	st.names[v.key()] = id
	objects[id] = v
	return nil
}

func applyGrant(grants map[string]map[string]map[string]int64, project, user, role string, createRev int64, deleted bool) {
	if deleted {
		if byUser := grants[project]; byUser != nil {
			delete(byUser[user], role)
			if len(byUser[user]) == 0 {
				delete(byUser, user)
			}
			if len(byUser) == 0 {
				delete(grants, project)
			}
		}
		return
	}
	if grants[project] == nil {
		grants[project] = map[string]map[string]int64{}
	}
	if grants[project][user] == nil {
		grants[project][user] = map[string]int64{}
	}
	grants[project][user][role] = createRev
}

func (m *mirror) setRevLocked(rev int64) {
	m.rev = rev
	close(m.advance)
	m.advance = make(chan struct{})
}

// waitRev blocks until the mirror reflects at least rev: writers call it with
// their commit's revision before answering, for read-your-writes.
func (m *mirror) waitRev(ctx context.Context, rev int64) error {
	for {
		m.mu.RLock()
		cur, ch := m.rev, m.advance
		m.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for identity revision %d (at %d): %w", rev, cur, ctx.Err())
		}
	}
}

// read runs f on the current state under the read lock, with its revision.
// f must not keep references to maps beyond its return.
func (m *mirror) read(f func(st *mirrorState, rev int64)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	f(m.state, m.rev)
}

// The lookups below run under the read lock (inside read).

func (st *mirrorState) domainByName(name string) *domainRec {
	return st.domains[st.names[nameKey{kindDomain, globalScope, name}]]
}

func (st *mirrorState) projectByName(domainID, name string) *projectRec {
	return st.projects[st.names[nameKey{kindProject, domainID, name}]]
}

func (st *mirrorState) userByName(domainID, name string) *userRec {
	return st.users[st.names[nameKey{kindUser, domainID, name}]]
}

func (st *mirrorState) roleByName(name string) *roleRec {
	return st.roles[st.names[nameKey{kindRole, globalScope, name}]]
}

// userRoles returns the roles user holds on project that still exist, each
// with the revision that granted it, sorted by name.
func (st *mirrorState) userRoles(projectID, userID string) []grant {
	var out []grant
	for roleID, rev := range st.grants[projectID][userID] {
		if r := st.roles[roleID]; r != nil {
			out = append(out, grant{role: r, rev: rev})
		}
	}
	slices.SortFunc(out, func(a, b grant) int { return cmp.Compare(a.role.Name, b.role.Name) })
	return out
}

// withImplied expands roles with the roles they imply (admin implies member
// implies reader), keeping only roles that exist.
func (st *mirrorState) withImplied(direct []*roleRec) []*roleRec {
	out := make([]*roleRec, 0, len(direct)+2)
	var add func(r *roleRec)
	add = func(r *roleRec) {
		if r == nil || slices.Contains(out, r) {
			return
		}
		out = append(out, r)
		for _, name := range implied[r.Name] {
			add(st.roleByName(name))
		}
	}
	for _, r := range direct {
		add(r)
	}
	return out
}

// grant is one role a user holds on a project.
type grant struct {
	role *roleRec
	rev  int64
}

// sortedValues returns a map's values ordered by key, for stable listings.
func sortedValues[T any](objects map[string]*T, name func(*T) string) []*T {
	out := make([]*T, 0, len(objects))
	for _, v := range objects {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *T) int { return cmp.Compare(name(a), name(b)) })
	return out
}

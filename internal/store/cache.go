package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Decoder turns a stored JSON value of one kind into the value the cache keeps.
type Decoder func(data []byte) (any, error)

// Item is one cached object with the etcd revision that last changed it.
type Item struct {
	Value  any
	ModRev int64
}

// Cache mirrors every API object in memory, fed by a watch on the store, so
// reads and lists never go to etcd. Writers call WaitRev with their commit's
// revision before answering, which gives read-your-writes on this server.
type Cache struct {
	st       *Store
	decoders map[string]Decoder

	mu      sync.RWMutex
	rev     int64
	objects map[string]map[string]Item
	advance chan struct{} // closed and replaced whenever rev moves
	ready   chan struct{}
	indexer Indexer
}

// Indexer keeps derived lookups (usage per project, addresses per subnet)
// in step with the cache, so hot paths need neither a scan nor a store
// read. Its methods run under the cache's write lock, in revision order.
type Indexer interface {
	// Reset forgets everything; a full (re)load follows.
	Reset()
	// Change records that an object went from old to new (nil: absent).
	Change(kind, id string, old, new any)
}

// SetIndexer installs an indexer; call it before Start.
func (c *Cache) SetIndexer(ix Indexer) { c.indexer = ix }

// NewCache returns a cache for the kinds named in decoders; Start fills it.
func NewCache(st *Store, decoders map[string]Decoder) *Cache {
	c := &Cache{
		st:       st,
		decoders: decoders,
		objects:  map[string]map[string]Item{},
		advance:  make(chan struct{}),
		ready:    make(chan struct{}),
	}
	for kind := range decoders {
		c.objects[kind] = map[string]Item{}
	}
	return c
}

// Start loads every object and follows the store until ctx ends.
func (c *Cache) Start(ctx context.Context) error {
	rev, err := c.load(ctx)
	if err != nil {
		return err
	}
	close(c.ready)
	go c.follow(ctx, rev)
	return nil
}

// load replaces the cache's content with a consistent snapshot of the store.
func (c *Cache) load(ctx context.Context) (int64, error) {
	prefix := c.st.Keys.Root() + "res/"
	objects := map[string]map[string]Item{}
	for kind := range c.decoders {
		objects[kind] = map[string]Item{}
	}
	var rev int64
	key, end := prefix, PrefixEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(5000)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.st.Client.Get(ctx, key, opts...)
		if err != nil {
			return 0, fmt.Errorf("load cache: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			c.apply(objects, kv, false, false)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	c.mu.Lock()
	c.objects = objects
	if c.indexer != nil {
		c.indexer.Reset()
		for kind, items := range objects {
			for id, it := range items {
				c.indexer.Change(kind, id, nil, it.Value)
			}
		}
	}
	c.setRevLocked(rev)
	c.mu.Unlock()
	return rev, nil
}

// follow applies watch events; a compacted or broken watch reloads.
func (c *Cache) follow(ctx context.Context, rev int64) {
	prefix := c.st.Keys.Root() + "res/"
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.st.Client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					c.st.log.Warn("cache watch compacted, reloading", "rev", rev)
				} else {
					c.st.log.Warn("cache watch failed, reloading", "err", err)
				}
				break
			}
			c.mu.Lock()
			for _, ev := range wr.Events {
				c.apply(c.objects, ev.Kv, ev.Type == mvccpb.DELETE, true)
			}
			if wr.Header.Revision > c.rev {
				c.setRevLocked(wr.Header.Revision)
			}
			rev = c.rev
			c.mu.Unlock()
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		for ctx.Err() == nil {
			r, err := c.load(ctx)
			if err == nil {
				rev = r
				break
			}
			slog.Warn("cache reload failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// apply records one key in objects; live is set for watch events on the
// cache's current map, which the indexer follows (a load feeds it at once).
func (c *Cache) apply(objects map[string]map[string]Item, kv *mvccpb.KeyValue, deleted, live bool) {
	rest := strings.TrimPrefix(string(kv.Key), c.st.Keys.Root()+"res/")
	kind, id, ok := strings.Cut(rest, "/")
	if !ok {
		return
	}
	dec, known := c.decoders[kind]
	if !known {
		return
	}
	old, had := objects[kind][id]
	if deleted {
		delete(objects[kind], id)
		if c.indexer != nil && had && live {
			c.indexer.Change(kind, id, old.Value, nil)
		}
		return
	}
	v, err := dec(kv.Value)
	if err != nil {
		c.st.log.Error("undecodable object in store", "kind", kind, "id", id, "err", err)
		return
	}
	objects[kind][id] = Item{Value: v, ModRev: kv.ModRevision}
	if c.indexer != nil && live {
		var prev any
		if had {
			prev = old.Value
		}
		c.indexer.Change(kind, id, prev, v)
	}
}

func (c *Cache) setRevLocked(rev int64) {
	c.rev = rev
	close(c.advance)
	c.advance = make(chan struct{})
}

// Rev is the store revision the cache reflects.
func (c *Cache) Rev() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// WaitRev blocks until the cache reflects at least rev.
func (c *Cache) WaitRev(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, ch := c.rev, c.advance
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for cache revision %d (at %d): %w", rev, cur, ctx.Err())
		}
	}
}

// Get returns one cached object.
func (c *Cache) Get(kind, id string) (Item, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	it, ok := c.objects[kind][id]
	return it, ok
}

// List returns every cached object of a kind, in no particular order.
func (c *Cache) List(kind string) []Item {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Item, 0, len(c.objects[kind]))
	for _, it := range c.objects[kind] {
		out = append(out, it)
	}
	return out
}

// Count returns how many objects of a kind are cached.
func (c *Cache) Count(kind string) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.objects[kind])
}

// Changed returns the cache's revision and a channel closed when it next
// moves, so followers wake on change instead of polling.
func (c *Cache) Changed() (int64, <-chan struct{}) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev, c.advance
}

// Snapshot is a consistent read of the cache at one revision.
type Snapshot struct {
	c   *Cache
	Rev int64
}

// Get returns one object of the snapshot.
func (s Snapshot) Get(kind, id string) (Item, bool) {
	it, ok := s.c.objects[kind][id]
	return it, ok
}

// Each calls f for every object of kind until f returns false.
func (s Snapshot) Each(kind string, f func(id string, it Item) bool) {
	for id, it := range s.c.objects[kind] {
		if !f(id, it) {
			return
		}
	}
}

// Read runs f on a consistent snapshot; f must not keep it or block.
func (c *Cache) Read(f func(Snapshot)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	f(Snapshot{c: c, Rev: c.rev})
}

// Package service is vland's resource logic between the API and the store:
// policy checks, defaults, IPAM and segment allocation, and the etcd
// transactions that make every create, update and delete atomic.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/segments"
	"github.com/vland/vland/internal/store"
)

// Resource kinds, as they appear in URLs and store keys.
const (
	Networks = "networks"
	Subnets  = "subnets"
	Ports    = "ports"
	Agents   = "agents"
)

// Config is the service's deployment configuration.
type Config struct {
	Segments segments.Config
	// MACBase is the first three octets of generated MACs (base_mac).
	MACBase [3]byte
	// MaxDNSNameservers and MaxHostRoutes bound a subnet's lists.
	MaxDNSNameservers int
	MaxHostRoutes     int
	// MaxFixedIPsPerPort bounds a port's addresses.
	MaxFixedIPsPerPort int
	// AgentDownTime is how long after its last heartbeat an agent is dead.
	AgentDownTime time.Duration
	// QuotaDefaults overrides the default quota limits by resource name.
	QuotaDefaults map[string]int
	// DHCPAgentsPerNetwork is how many network hosts serve each network's DHCP.
	DHCPAgentsPerNetwork int
}

// DefaultConfig is Neutron's default configuration.
func DefaultConfig() Config {
	return Config{
		Segments:             segments.DefaultConfig(),
		MACBase:              [3]byte{0xfa, 0x16, 0x3e},
		MaxDNSNameservers:    5,
		MaxHostRoutes:        20,
		MaxFixedIPsPerPort:   5,
		AgentDownTime:        30 * time.Second,
		DHCPAgentsPerNetwork: 1,
	}
}

// Service implements the core resources.
type Service struct {
	st    *store.Store
	cache *store.Cache
	cfg   Config
	log   *slog.Logger
	rbac  rbacIndex
	idx   *index
}

// New returns a service over st; Start fills its cache.
func New(st *store.Store, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	cache := store.NewCache(st, map[string]store.Decoder{
		Networks:           model.DecodeAs[model.Network](),
		Subnets:            model.DecodeAs[model.Subnet](),
		Ports:              model.DecodeAs[model.Port](),
		Agents:             model.DecodeAs[model.Agent](),
		Quotas:             model.DecodeAs[model.Quota](),
		RBACPolicies:       model.DecodeAs[model.RBACPolicy](),
		SubnetPools:        model.DecodeAs[model.SubnetPool](),
		AddressScopes:      model.DecodeAs[model.AddressScope](),
		Routers:            model.DecodeAs[model.Router](),
		FloatingIPs:        model.DecodeAs[model.FloatingIP](),
		PortForwardings:    model.DecodeAs[model.PortForwarding](),
		SecurityGroups:     model.DecodeAs[model.SecurityGroup](),
		SecurityGroupRules: model.DecodeAs[model.SecurityGroupRule](),
		AddressGroups:      model.DecodeAs[model.AddressGroup](),

		// Keyed by device id rather than an id of its own.
		InstanceMetadataKind: model.DecodeAs[model.InstanceMetadata](),
	})
	ix := newIndex()
	cache.SetIndexer(ix)
	return &Service{st: st, cache: cache, cfg: cfg, log: log, idx: ix}
}

// Start loads the cache and keeps it following the store until ctx ends.
func (s *Service) Start(ctx context.Context) error { return s.cache.Start(ctx) }

// Cache exposes the read cache (lists are served from it).
func (s *Service) Cache() *store.Cache { return s.cache }

// creds returns the caller, refusing anonymous calls.
func creds(ctx context.Context) *policy.Credentials {
	if c := policy.From(ctx); c != nil {
		return c
	}
	return &policy.Credentials{}
}

// cached returns an object of kind from the cache.
func cachedAs[T model.Object](s *Service, kind, id string) (T, bool) {
	var zero T
	it, ok := s.cache.Get(kind, id)
	if !ok {
		return zero, false
	}
	o, ok := it.Value.(*model.Cached).Obj.(T)
	return o, ok
}

// load reads one object from the store itself (not the cache), for the
// read side of a read-check-write transaction; found is false if absent.
func load[T any](ctx context.Context, s *Service, kind, id string) (obj *T, modRev int64, err error) {
	resp, err := s.st.Client.Get(ctx, s.st.Keys.Resource(kind, id))
	if err != nil {
		return nil, 0, storeErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	obj = new(T)
	if err := json.Unmarshal(resp.Kvs[0].Value, obj); err != nil {
		return nil, 0, fmt.Errorf("decode %s %s: %w", kind, id, err)
	}
	return obj, resp.Kvs[0].ModRevision, nil
}

// storeErr turns a store failure into the 503 a client can retry.
func storeErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &apierr.Error{Status: 503, Type: "ServiceUnavailable", Message: "The state store is unavailable: " + err.Error()}
}

// commit runs a transaction and waits until the cache reflects it, so the
// caller's next read sees its write. ok is false when a comparison failed.
func (s *Service) commit(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (ok bool, err error) {
	resp, err := s.st.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, storeErr(err)
	}
	if !resp.Succeeded {
		// Plans are made from the cache: let it catch up with whatever
		// beat us before the caller plans again.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = s.cache.WaitRev(wctx, resp.Header.Revision)
		return false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.cache.WaitRev(wctx, resp.Header.Revision); err != nil {
		s.log.Warn("cache lags behind a commit", "err", err)
	}
	return true, nil
}

// putJSON is the operation storing obj under kind/id.
func (s *Service) putJSON(kind, id string, obj any) clientv3.Op {
	data, err := json.Marshal(obj)
	if err != nil {
		// Our own types always marshal; a failure here is a programming error.
		panic(fmt.Sprintf("marshal %s %s: %v", kind, id, err))
	}
	return clientv3.OpPut(s.st.Keys.Resource(kind, id), string(data))
}

func notExists(key string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
}
func exists(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), ">", 0) }
func unchanged(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// noneNewUnder holds while no key under prefix was written after rev: the
// set of keys read at rev has not grown or changed.
func noneNewUnder(prefix string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix()
}

// maxRetries bounds optimistic-concurrency retries of one request.
const maxRetries = 64

// errConflict tells a retry loop that the transaction lost a race.
var errConflict = errors.New("transaction conflict")

// retry runs attempt until it stops reporting errConflict.
func retry(ctx context.Context, what string, attempt func() error) error {
	for i := 0; i < maxRetries; i++ {
		err := attempt()
		if !errors.Is(err, errConflict) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return &apierr.Error{Status: 409, Type: "Conflict", Message: fmt.Sprintf("Too many concurrent changes while trying to %s; try again.", what)}
}

type (
	storeSnapshot = store.Snapshot
	storeItem     = store.Item
)

package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
	"github.com/vland/vland/internal/store"
)

// newServers starts n services sharing one embedded etcd, each with its own
// cache, as n vland servers on one store.
func newServers(t *testing.T, n int) []*service.Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); st.Close() })
	var out []*service.Service
	for range n {
		svc := service.New(st, service.DefaultConfig(), slog.New(slog.DiscardHandler))
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		out = append(out, svc)
	}
	return out
}

func wantAPIError(t *testing.T, err error, status int, typ string) {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Status != status || e.Type != typ {
		t.Fatalf("got %v, want %d %s", err, status, typ)
	}
}

// TestConcurrentSubnetsFromOnePoolNeverOverlap: 64 goroutines, spread over
// two servers sharing the store, each allocate a /28 from one /24 pool for
// a network of their own (so only the pool serialises them): exactly 16
// succeed, with 16 distinct /28s covering the pool, and every other gets
// SubnetAllocationError.
func TestConcurrentSubnetsFromOnePoolNeverOverlap(t *testing.T) {
	svcs := newServers(t, 2)
	ctx := asProject("p1")
	pools, err := svcs[0].CreateSubnetPools(ctx, []model.Fields{decode(t, model.SubnetPoolSpec, map[string]any{
		"name": "pool", "prefixes": []any{"10.30.0.0/24"}, "default_prefixlen": "28",
	})})
	if err != nil {
		t.Fatal(err)
	}
	pool := pools[0]
	nets := make([]*model.Network, 64)
	for i := range nets {
		made, err := svcs[i%2].CreateNetworks(ctx, []model.Fields{{}})
		if err != nil {
			t.Fatal(err)
		}
		nets[i] = made[0]
	}
	var mu sync.Mutex
	var got []netip.Prefix
	failures := 0
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs, err := svcs[i%2].CreateSubnets(ctx, []model.Fields{decode(t, model.SubnetSpec, map[string]any{
				"network_id": nets[i].ID, "ip_version": "4", "subnetpool_id": pool.ID,
			})})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if e, ok := apierr.As(err); !ok || e.Type != "SubnetAllocationError" || e.Status != 409 {
					t.Errorf("unexpected error: %v", err)
				}
				failures++
				return
			}
			if subs[0].SubnetPoolID != pool.ID || subs[0].CIDR.Bits() != 28 {
				t.Errorf("subnet %+v", subs[0])
			}
			got = append(got, subs[0].CIDR)
		}()
	}
	wg.Wait()
	if len(got) != 16 || failures != 48 {
		t.Fatalf("got %d subnets and %d refusals, want 16 and 48", len(got), failures)
	}
	for i, a := range got {
		if !pool.Prefixes[0].Contains(a.Addr()) {
			t.Errorf("%s outside the pool", a)
		}
		for _, b := range got[:i] {
			if a.Overlaps(b) {
				t.Errorf("%s and %s overlap", a, b)
			}
		}
	}
	// Freeing one makes room for exactly one more, on either server.
	var victim *model.Subnet
	for _, it := range svcs[0].Cache().List(service.Subnets) {
		victim = it.Value.(*model.Cached).Obj.(*model.Subnet)
		break
	}
	if err := svcs[1].DeleteSubnet(ctx, victim.ID); err != nil {
		t.Fatal(err)
	}
	subs, err := svcs[0].CreateSubnets(ctx, []model.Fields{decode(t, model.SubnetSpec, map[string]any{
		"network_id": victim.NetworkID, "ip_version": "4", "subnetpool_id": pool.ID,
	})})
	if err != nil || subs[0].CIDR != victim.CIDR {
		t.Fatalf("reallocation: %v %v, want %s", subs, err, victim.CIDR)
	}
	err = svcs[1].DeleteSubnetPool(ctx, pool.ID)
	wantAPIError(t, err, 400, "SubnetPoolDeleteError")
}

// TestConcurrentPoolsInOneScopeNeverOverlap: 32 goroutines on two servers
// each put a pool with the same prefix in one address scope: one wins, the
// others get AddressScopePrefixConflict; a disjoint pool still fits.
func TestConcurrentPoolsInOneScopeNeverOverlap(t *testing.T) {
	svcs := newServers(t, 2)
	ctx := asProject("p1")
	scopes, err := svcs[0].CreateAddressScopes(ctx, []model.Fields{decode(t, model.AddressScopeSpec, map[string]any{"name": "s", "ip_version": "4"})})
	if err != nil {
		t.Fatal(err)
	}
	scope := scopes[0]
	var mu sync.Mutex
	won, lost := 0, 0
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half create in the scope, half create outside and move in.
			body := map[string]any{"name": fmt.Sprint("p", i), "prefixes": []any{fmt.Sprintf("10.%d.0.0/16", 40+i%2)}}
			if i%4 < 2 {
				body["address_scope_id"] = scope.ID
			}
			svc := svcs[i%2]
			pools, err := svc.CreateSubnetPools(ctx, []model.Fields{decode(t, model.SubnetPoolSpec, body)})
			if err == nil && i%4 >= 2 {
				_, err = svc.UpdateSubnetPool(ctx, pools[0].ID, model.Fields{"address_scope_id": scope.ID})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if e, ok := apierr.As(err); !ok || e.Type != "AddressScopePrefixConflict" || e.Status != 409 {
					t.Errorf("unexpected error: %v", err)
				}
				lost++
				return
			}
			won++
		}()
	}
	wg.Wait()
	if won != 2 || lost != 30 {
		t.Fatalf("%d pools joined the scope and %d were refused, want 2 and 30", won, lost)
	}
	err = svcs[1].DeleteAddressScope(ctx, scope.ID)
	wantAPIError(t, err, 409, "AddressScopeInUse")
}

// TestOneDefaultPoolPerVersionUnderConcurrency: of 16 admins making
// different pools the IPv4 default at once, exactly one succeeds.
func TestOneDefaultPoolPerVersionUnderConcurrency(t *testing.T) {
	svcs := newServers(t, 2)
	ctx := asProject("admin", policy.RoleAdmin, policy.RoleMember)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := svcs[i%2].CreateSubnetPools(ctx, []model.Fields{decode(t, model.SubnetPoolSpec, map[string]any{
				"name": "d", "prefixes": []any{fmt.Sprintf("10.%d.0.0/16", i)}, "is_default": true,
			})})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if e, ok := apierr.As(err); !ok || e.Type != "InvalidInput" {
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d default IPv4 pools", won)
	}
}

// TestPoolQuotaCountsTheRequestingProject: default_quota bounds the
// addresses each project takes from a shared pool, separately.
func TestPoolQuotaCountsTheRequestingProject(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	admin := asProject("admin", policy.RoleAdmin, policy.RoleMember)
	pools, err := svc.CreateSubnetPools(admin, []model.Fields{decode(t, model.SubnetPoolSpec, map[string]any{
		"name": "q", "prefixes": []any{"10.50.0.0/16"}, "default_prefixlen": "26", "default_quota": "128", "shared": true,
	})})
	if err != nil {
		t.Fatal(err)
	}
	for _, project := range []string{"p1", "p2"} {
		ctx := asProject(project)
		for i := range 3 {
			n, err := svc.CreateNetworks(ctx, []model.Fields{{}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.CreateSubnets(ctx, []model.Fields{decode(t, model.SubnetSpec, map[string]any{
				"network_id": n[0].ID, "ip_version": "4", "subnetpool_id": pools[0].ID,
			})})
			if i < 2 && err != nil {
				t.Fatalf("%s subnet %d: %v", project, i, err)
			}
			if i == 2 {
				wantAPIError(t, err, 409, "SubnetPoolQuotaExceeded")
			}
		}
	}
}

// TestSubnetPoolQuota: the subnetpool quota resource counts pools.
func TestSubnetPoolQuota(t *testing.T) {
	cfg := service.DefaultConfig()
	cfg.QuotaDefaults = map[string]int{"subnetpool": 2}
	svc := newService(t, cfg)
	ctx := asProject("p1")
	pool := func(prefix string) error {
		_, err := svc.CreateSubnetPools(ctx, []model.Fields{decode(t, model.SubnetPoolSpec, map[string]any{"name": "q", "prefixes": []any{prefix}})})
		return err
	}
	for _, p := range []string{"10.1.0.0/16", "10.2.0.0/16"} {
		if err := pool(p); err != nil {
			t.Fatal(err)
		}
	}
	wantAPIError(t, pool("10.3.0.0/16"), 409, "OverQuota")
	d, err := svc.QuotaDetails(ctx, "p1")
	if err != nil || d["subnetpool"].Used != 2 {
		t.Fatalf("details: %+v %v", d["subnetpool"], err)
	}
}

// TestWithdrawingPoolAccessRacesAllocation: a project allocating from a
// pool shared with it while the owner withdraws the share ends either with
// the subnet and the policy (the delete refused as in use) or with
// neither, never with a subnet from a pool it can no longer see.
func TestWithdrawingPoolAccessRacesAllocation(t *testing.T) {
	svcs := newServers(t, 2)
	const userProject = "0123456789abcdef0123456789abcdef"
	owner, user := asProject("owner"), asProject(userProject)
	for i := range 20 {
		pools, err := svcs[0].CreateSubnetPools(owner, []model.Fields{decode(t, model.SubnetPoolSpec, map[string]any{
			"name": "race", "prefixes": []any{fmt.Sprintf("10.%d.0.0/16", i)}, "default_prefixlen": "24",
		})})
		if err != nil {
			t.Fatal(err)
		}
		pol, err := svcs[0].CreateRBAC(owner, decode(t, model.RBACSpec, map[string]any{
			"object_type": "subnetpool", "object_id": pools[0].ID, "target_tenant": userProject, "action": model.AccessAsShared,
		}))
		if err != nil {
			t.Fatal(err)
		}
		nets, err := svcs[1].CreateNetworks(user, []model.Fields{{}})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var subErr, delErr error
		var subs []*model.Subnet
		wg.Add(2)
		go func() {
			defer wg.Done()
			subs, subErr = svcs[1].CreateSubnets(user, []model.Fields{decode(t, model.SubnetSpec, map[string]any{
				"network_id": nets[0].ID, "ip_version": "4", "subnetpool_id": pools[0].ID,
			})})
		}()
		go func() {
			defer wg.Done()
			delErr = svcs[0].DeleteRBAC(owner, pol.ID)
		}()
		wg.Wait()
		switch {
		case subErr == nil && delErr != nil:
			wantAPIError(t, delErr, 409, "RbacPolicyInUse")
			// Free the policy (and its quota) for the next round.
			if err := svcs[1].DeleteSubnet(user, subs[0].ID); err != nil {
				t.Fatal(err)
			}
			if err := svcs[0].DeleteRBAC(owner, pol.ID); err != nil {
				t.Fatal(err)
			}
		case subErr != nil && delErr == nil:
			wantAPIError(t, subErr, 404, "SubnetPoolNotFound")
		default:
			t.Fatalf("round %d: subnet create %v, policy delete %v", i, subErr, delErr)
		}
	}
}

package service_test

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/segments"
	"github.com/vland/vland/internal/service"
	"github.com/vland/vland/internal/store"
)

// newService starts a service on a fresh embedded etcd.
func newService(t *testing.T, cfg service.Config) *service.Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st, cfg, nil)
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); st.Close() })
	return svc
}

func asProject(project string, roles ...string) context.Context {
	if len(roles) == 0 {
		roles = []string{policy.RoleMember, policy.RoleReader}
	}
	return policy.With(context.Background(), &policy.Credentials{UserID: "u-" + project, ProjectID: project, Roles: roles})
}

func decode(t *testing.T, spec *model.Spec, m map[string]any) model.Fields {
	t.Helper()
	f, err := spec.Decode(m, model.Create)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustNetworkWithSubnet(t *testing.T, svc *service.Service, ctx context.Context, cidr string) (*model.Network, *model.Subnet) {
	t.Helper()
	nets, err := svc.CreateNetworks(ctx, []model.Fields{decode(t, model.NetworkSpec, map[string]any{"name": "n"})})
	if err != nil {
		t.Fatal(err)
	}
	subs, err := svc.CreateSubnets(ctx, []model.Fields{decode(t, model.SubnetSpec, map[string]any{
		"network_id": nets[0].ID, "ip_version": "4", "cidr": cidr,
	})})
	if err != nil {
		t.Fatal(err)
	}
	return nets[0], subs[0]
}

// TestConcurrentPortsExhaustSubnetExactlyOnce has 64 goroutines create ports
// on one /24 until it is full: every address is handed out exactly once and
// every refusal is Neutron's IpAddressGenerationFailure.
func TestConcurrentPortsExhaustSubnetExactlyOnce(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	ctx := asProject("p1")
	n, sn := mustNetworkWithSubnet(t, svc, ctx, "10.0.0.0/24")

	var mu sync.Mutex
	got := map[netip.Addr]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ports, err := svc.CreatePorts(ctx, []model.Fields{{"network_id": n.ID}})
				if err != nil {
					if e, ok := apierr.As(err); !ok || e.Type != "IpAddressGenerationFailure" || e.Status != 409 {
						errs <- err
					}
					return
				}
				p := ports[0]
				mu.Lock()
				for _, ip := range p.FixedIPs {
					if other, dup := got[ip.IPAddress]; dup {
						t.Errorf("address %s handed to %s and %s", ip.IPAddress, other, p.ID)
					}
					got[ip.IPAddress] = p.ID
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if len(got) != 253 {
		t.Fatalf("handed out %d addresses, want all 253 of the pool", len(got))
	}
	for a := range got {
		if !sn.CIDR.Contains(a) || a == sn.GatewayIP || a == netip.MustParseAddr("10.0.0.255") {
			t.Errorf("address %s outside the pool", a)
		}
	}
}

// TestConcurrentNetworksNeverShareAVNI exhausts a small VNI range from 64
// goroutines: each VNI is used once, the rest get NoNetworkAvailable.
func TestConcurrentNetworksNeverShareAVNI(t *testing.T) {
	cfg := service.DefaultConfig()
	cfg.Segments.VXLANRanges = []segments.Range{{Min: 100, Max: 139}}
	svc := newService(t, cfg)
	ctx := asProject("p1")
	var mu sync.Mutex
	vnis := map[uint32]bool{}
	failures := 0
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nets, err := svc.CreateNetworks(ctx, []model.Fields{{}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if e, ok := apierr.As(err); !ok || e.Type != "NoNetworkAvailable" || e.Status != 503 {
					t.Errorf("unexpected error: %v", err)
				}
				failures++
				return
			}
			id := *nets[0].Segments[0].SegmentationID
			if vnis[id] {
				t.Errorf("VNI %d allocated twice", id)
			}
			vnis[id] = true
		}()
	}
	wg.Wait()
	if len(vnis) != 40 || failures != 24 {
		t.Fatalf("got %d networks and %d refusals, want 40 and 24", len(vnis), failures)
	}
}

// TestServicePortsGoWithTheirNetwork: a DHCP port does not keep its subnet
// or network alive (Neutron's auto-delete owners), an ordinary port does.
func TestServicePortsGoWithTheirNetwork(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	ctx := asProject("p1", policy.RoleAdmin, policy.RoleMember)
	n, sn := mustNetworkWithSubnet(t, svc, ctx, "10.1.0.0/24")
	dhcp, err := svc.CreatePorts(ctx, []model.Fields{{"network_id": n.ID, "device_owner": service.OwnerDHCP}})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := svc.CreatePorts(ctx, []model.Fields{{"network_id": n.ID}})
	if err != nil {
		t.Fatal(err)
	}
	wantType := func(err error, typ string) {
		t.Helper()
		if e, ok := apierr.As(err); !ok || e.Type != typ || e.Status != 409 {
			t.Fatalf("got %v, want 409 %s", err, typ)
		}
	}
	wantType(svc.DeleteSubnet(ctx, sn.ID), "SubnetInUse")
	wantType(svc.DeleteNetwork(ctx, n.ID), "NetworkInUse")
	if err := svc.DeletePort(ctx, vm[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteSubnet(ctx, sn.ID); err != nil {
		t.Fatalf("subnet with only a DHCP port: %v", err)
	}
	p, err := svc.GetPort(ctx, dhcp[0].ID)
	if err != nil || len(p.FixedIPs) != 0 {
		t.Fatalf("DHCP port after subnet delete: %+v, %v; want it kept without addresses", p, err)
	}
	if err := svc.DeleteNetwork(ctx, n.ID); err != nil {
		t.Fatalf("network with only a DHCP port: %v", err)
	}
	if _, err := svc.GetPort(ctx, dhcp[0].ID); err == nil {
		t.Fatal("DHCP port survived its network")
	}
}

// TestQuotaHoldsUnderConcurrentCreates: 64 goroutines creating networks in
// one project with a quota of 10 get exactly 10, the rest OverQuota; after a
// delete, one more fits.
func TestQuotaHoldsUnderConcurrentCreates(t *testing.T) {
	cfg := service.DefaultConfig()
	cfg.QuotaDefaults = map[string]int{"network": 10}
	svc := newService(t, cfg)
	ctx := asProject("q1")
	var mu sync.Mutex
	var made []*model.Network
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nets, err := svc.CreateNetworks(ctx, []model.Fields{{}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if e, ok := apierr.As(err); !ok || e.Type != "OverQuota" || e.Status != 409 {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			made = append(made, nets[0])
		}()
	}
	wg.Wait()
	if len(made) != 10 {
		t.Fatalf("created %d networks under a quota of 10", len(made))
	}
	if _, err := svc.CreateNetworks(ctx, []model.Fields{{}}); err == nil {
		t.Fatal("an 11th network was accepted")
	}
	if err := svc.DeleteNetwork(ctx, made[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateNetworks(ctx, []model.Fields{{}}); err != nil {
		t.Fatalf("create after a delete freed quota: %v", err)
	}
	d, err := svc.QuotaDetails(asProject("q1"), "q1")
	if err != nil || d["network"].Used != 10 || d["network"].Limit != 10 {
		t.Fatalf("details: %+v %v", d["network"], err)
	}
}

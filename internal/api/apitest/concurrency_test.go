package apitest

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// race runs f in n goroutines at once and returns their errors.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner asserts exactly one of errs is nil and every other is a
// NeutronError of status and type (not a retry-exhaustion Conflict).
func oneWinner(t *testing.T, errs []error, status int, typ string) {
	t.Helper()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
			continue
		}
		wantError(t, err, status, typ)
	}
	if wins != 1 {
		t.Errorf("%d of %d concurrent requests succeeded, want exactly 1", wins, len(errs))
	}
}

// TestConcurrentRequestsForOneResourceHaveOneWinner: concurrent requests
// for the same VNI, physnet, address or MAC through the API: one wins, the
// others get the specific 409 a sequential request would get.
func TestConcurrentRequestsForOneResourceHaveOneWinner(t *testing.T) {
	t.Parallel()
	admin, c := shared.admin.net(t), shared.a.net(t)
	n, _ := netWithSubnet(t, c, uniq("race"), "10.80.0.0/24")
	const k = 6
	vni, phys := nextVNI(), uniq("physnet-race")
	t.Run("VNI", func(t *testing.T) {
		oneWinner(t, race(k, func(int) error {
			return networks.Create(ctx, admin, rawNet{"provider:network_type": "vxlan", "provider:segmentation_id": vni}).Err
		}), http.StatusConflict, "TunnelIdInUse")
	})
	t.Run("FlatPhysnet", func(t *testing.T) {
		oneWinner(t, race(k, func(int) error {
			return networks.Create(ctx, admin, rawNet{"provider:network_type": "flat", "provider:physical_network": phys}).Err
		}), http.StatusConflict, "FlatNetworkInUse")
	})
	t.Run("Address", func(t *testing.T) {
		oneWinner(t, race(k, func(int) error {
			return ports.Create(ctx, c, rawPort{"network_id": n.ID, "fixed_ips": []any{fixedIP("", "10.80.0.77")}}).Err
		}), http.StatusConflict, "IpAddressAlreadyAllocated")
	})
	t.Run("MAC", func(t *testing.T) {
		mac := fmt.Sprintf("fa:16:3e:80:%02x:%02x", vni>>8&0xff, vni&0xff)
		oneWinner(t, race(k, func(int) error {
			return ports.Create(ctx, c, rawPort{"network_id": n.ID, "mac_address": mac, "fixed_ips": []any{}}).Err
		}), http.StatusConflict, "MacAddressInUse")
	})
}

// TestConcurrentPortsExhaustASubnetExactly: goroutines create ports on a
// /28 until it is full: its 13 pool addresses are each handed out once and
// every refusal is IpAddressGenerationFailure.
func TestConcurrentPortsExhaustASubnetExactly(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, _ := netWithSubnet(t, c, uniq("race-fill"), "10.81.0.0/28")
	var mu sync.Mutex
	got := map[string]string{}
	race(4, func(int) error {
		for {
			var p port
			err := ports.Create(ctx, c, rawPort{"network_id": n.ID}).ExtractInto(&p)
			if err != nil {
				wantError(t, err, http.StatusConflict, "IpAddressGenerationFailure")
				return nil
			}
			mu.Lock()
			for _, ip := range p.FixedIPs {
				if other, dup := got[ip.IPAddress]; dup {
					t.Errorf("address %s handed to %s and %s", ip.IPAddress, other, p.ID)
				}
				got[ip.IPAddress] = p.ID
			}
			mu.Unlock()
		}
	})
	if len(got) != 13 {
		t.Errorf("handed out %d addresses of a /28, want 13", len(got))
	}
}

// TestDeleteNetworkRacingPortCreate: a port created while its network is
// being deleted either blocks the delete (NetworkInUse) or fails to find
// the network; never do both succeed, leaving a port on no network.
func TestDeleteNetworkRacingPortCreate(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	var deleted []string
	for range 8 {
		n, _ := netWithSubnet(t, c, uniq("race-del"), "10.82.0.0/24")
		var created port
		errs := race(2, func(i int) error {
			if i == 0 {
				return ports.Create(ctx, c, rawPort{"network_id": n.ID}).ExtractInto(&created)
			}
			return networks.Delete(ctx, c, n.ID).ExtractErr()
		})
		switch {
		case errs[0] == nil && errs[1] == nil:
			t.Errorf("both the port create and the network delete succeeded; port %s is orphaned", created.ID)
		case errs[0] == nil:
			wantError(t, errs[1], http.StatusConflict, "NetworkInUse")
			must(t, ports.Get(ctx, c, created.ID).Err)
		case errs[1] == nil:
			wantError(t, errs[0], http.StatusNotFound, "NetworkNotFound")
			deleted = append(deleted, n.ID)
		default:
			t.Errorf("both failed: %v; %v", errs[0], errs[1])
		}
		if errs[0] == nil {
			must(t, ports.Delete(ctx, c, created.ID).ExtractErr())
			must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
		}
	}
	// No port is left on any of the deleted networks.
	for _, id := range deleted {
		if left := listPorts(t, c, ports.ListOpts{NetworkID: id}); len(left) != 0 {
			t.Errorf("ports %v are on deleted network %s", portIDs(left), id)
		}
	}
}

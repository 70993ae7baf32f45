package devcluster

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vland/vland/internal/namedns"
)

// failoverRenewTimeout bounds the time from a forced renewal, after the
// leasing server's host went down, to the VM's lease from the other server.
// busybox udhcpc (-t 3 -T 1 -A 1) unicasts its renew to the dead server,
// waits 1 s, broadcasts a rebind it hardly waits for, deconfigures and
// DISCOVERs: a couple of seconds. The bound is generous for loaded runners.
const failoverRenewTimeout = 20 * time.Second

// dhcpServerPort is a DHCP port of a network as this test reads it.
type dhcpServerPort struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Host     string `json:"binding:host_id"`
	FixedIPs []struct {
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

// TestE2EDHCPSurvivesNetworkHostDown: with 2 DHCP agents per network, the
// network's DHCP is served by both network hosts; when the host whose
// server leased a VM's address goes down (`vland dev host down`), the VM's
// next renewal, unanswered by the dead server, falls back to broadcast and
// gets exactly the same address from the other network host's server. When
// the host is back, the network is served by two hosts again and renewals
// still keep the address.
func TestE2EDHCPSurvivesNetworkHostDown(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "dhcpha", Options{Hosts: 1, NetworkHosts: 2, DHCPAgentsPerNetwork: 2})
	ctx := testContext(t)
	start := time.Now()
	netID, _ := newNetwork(t, c, c.Name()+"-demo", "net1", "10.10.0.0/24")

	// Both network hosts serve the network.
	byHost := waitDHCPServers(t, c, netID, []string{"network1", "network2"}, 30*time.Second)
	t.Logf("DHCP ports ACTIVE on both network hosts after %s: %v", time.Since(start).Round(time.Millisecond), byHost)

	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	if !a.DHCP || !a.DHCPClient.Running() {
		t.Fatalf("VM a: DHCP %v, client running %v", a.DHCP, a.DHCPClient.Running())
	}
	first, err := c.VMLease(a.Name)
	if err != nil {
		t.Fatal(err)
	}
	if first["ip"] != a.IP {
		t.Fatalf("VM a leased %v, want its port's %s", first, a.IP)
	}
	down, up := "", ""
	for host, p := range byHost {
		if serverIP(p) == first["serverid"] {
			down = host
		} else {
			up = host
		}
	}
	if down == "" || up == "" {
		t.Fatalf("lease %v is from server %s, none of the network's DHCP ports %v", first, first["serverid"], byHost)
	}
	t.Logf("VM a leased %s from %s's server %s", a.IP, down, first["serverid"])

	// The leasing server's host goes down; the VM's client renews.
	isDown := false
	t.Cleanup(func() {
		if isDown { // the test failed with the host down: bring it back before Down
			if err := c.HostUp(context.Background(), down); err != nil {
				t.Errorf("HostUp %s: %v", down, err)
			}
		}
	})
	if err := c.HostDown(ctx, down); err != nil {
		t.Fatal(err)
	}
	isDown = true
	renewStart := time.Now()
	l, events := renewUntilLeased(t, c, a.Name, failoverRenewTimeout)
	t.Logf("with %s down, the forced renewal ended in %q from %s after %s (events %v)",
		down, l["event"], l["serverid"], time.Since(renewStart).Round(time.Millisecond), events)
	t.Logf("udhcpc's log:\n%s", tail(filepath.Join(c.Dir(), "logs", "udhcpc-"+a.Name+".log"), 600))
	if l["ip"] != a.IP || l["mask"] != first["mask"] {
		t.Errorf("after %s went down VM a leased %s/%s, want its port's %s", down, l["ip"], l["mask"], a.CIDRs[0])
	}
	if want := serverIP(byHost[up]); l["serverid"] != want {
		t.Errorf("after %s went down the lease is from %s, want %s's server %s", down, l["serverid"], up, want)
	}
	if slices.Contains(events, "nak") {
		t.Errorf("the remaining server NAKed VM a's own address (events %v)", events)
	}
	checkOnlyAddress(t, a)
	if err := c.WaitPing(ctx, a.Name, serverIP(byHost[up]), reachTimeout); err != nil {
		t.Errorf("VM a with its renewed address: %v", err)
	}

	// The server notices the dead agent and frees its DHCP port.
	noticed := time.Now()
	waitDHCPServers(t, c, netID, []string{up}, 3*parseDuration(t, c.State().AgentDownTime)+10*time.Second)
	t.Logf("the server moved the network off %s %s after the renewal", down, time.Since(noticed).Round(time.Millisecond))

	// Back up, the host serves the network again, and a renewal keeps the
	// address.
	if err := c.HostUp(ctx, down); err != nil {
		t.Fatal(err)
	}
	isDown = false
	back := time.Now()
	byHost = waitDHCPServers(t, c, netID, []string{"network1", "network2"}, 30*time.Second)
	t.Logf("%s serves the network again %s after HostUp: %v", down, time.Since(back).Round(time.Millisecond), byHost)
	renewStart = time.Now()
	l, events = renewUntilLeased(t, c, a.Name, failoverRenewTimeout)
	t.Logf("with both hosts up, the forced renewal ended in %q from %s after %s (events %v)",
		l["event"], l["serverid"], time.Since(renewStart).Round(time.Millisecond), events)
	if l["ip"] != a.IP || l["event"] != "renew" {
		t.Errorf("renewal with both hosts up: %v (events %v), want a renew of %s", l, events, a.IP)
	}
	checkOnlyAddress(t, a)
	t.Logf("total after the cluster was up: %s", time.Since(start).Round(time.Millisecond))
}

// waitDHCPServers waits until the network's DHCP ports are exactly one
// ACTIVE port on each of hosts, and returns them by host.
func waitDHCPServers(t *testing.T, c *Cluster, netID string, hosts []string, timeout time.Duration) map[string]dhcpServerPort {
	t.Helper()
	ctx := testContext(t)
	q := "/v2.0/ports?device_owner=network%3Adhcp&network_id=" + url.QueryEscape(netID)
	var last []dhcpServerPort
	err := poll(ctx, timeout, 100*time.Millisecond, "", func() (bool, error) {
		var out struct {
			Ports []dhcpServerPort `json:"ports"`
		}
		if err := c.Admin().Do(ctx, http.MethodGet, q, nil, &out); err != nil {
			return false, err
		}
		last = out.Ports
		if len(out.Ports) != len(hosts) {
			return false, nil
		}
		for _, p := range out.Ports {
			if !slices.Contains(hosts, p.Host) || p.Status != "ACTIVE" || serverIP(p) == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var have []string
		for _, p := range last {
			have = append(have, fmt.Sprintf("%s on %q %s %s", p.ID, p.Host, p.Status, serverIP(p)))
		}
		t.Fatalf("network %s: want one ACTIVE DHCP port on each of %v within %s, have [%s]: %v",
			netID, hosts, timeout, strings.Join(have, "; "), err)
	}
	m := map[string]dhcpServerPort{}
	for _, p := range last {
		m[p.Host] = p
	}
	return m
}

func serverIP(p dhcpServerPort) string {
	if len(p.FixedIPs) == 0 {
		return ""
	}
	return p.FixedIPs[0].IPAddress
}

// renewUntilLeased forces the VM's DHCP client to renew and waits until
// it is bound again: a renew (ACK of the renewal or of the rebind) or a
// new bound (after it gave up and DISCOVERed). It returns that record and
// the events the client recorded meanwhile, as far as polling saw them.
func renewUntilLeased(t *testing.T, c *Cluster, vm string, timeout time.Duration) (Lease, []string) {
	t.Helper()
	old, err := c.VMLease(vm)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RenewVMLease(vm); err != nil {
		t.Fatal(err)
	}
	var l Lease
	var events []string
	seen := old["seq"]
	err = poll(testContext(t), timeout, 20*time.Millisecond, "", func() (bool, error) {
		cur, err := c.VMLease(vm)
		if err != nil || cur["seq"] == seen {
			return false, nil
		}
		seen, l = cur["seq"], cur
		events = append(events, cur["event"])
		return cur["event"] == "bound" || cur["event"] == "renew", nil
	})
	if err != nil {
		t.Fatalf("VM %s's client is not bound again within %s of a forced renewal (events %v, last record %v): %v", vm, timeout, events, l, err)
	}
	return l, events
}

// checkOnlyAddress checks that the VM's eth0 has exactly its port's address.
func checkOnlyAddress(t *testing.T, vm VM) {
	t.Helper()
	h, err := namedns.Handle(vm.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth, err := h.LinkByName(vmIface)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if want := vm.CIDRs[0]; len(got) != 1 || got[0] != want {
		t.Errorf("VM %s: eth0 has %v, want exactly its port's %s", vm.Name, got, want)
	}
}

func parseDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

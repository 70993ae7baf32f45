package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/l2"
	"github.com/vland/vland/internal/dataplane/qdhcp"
)

// IDs of the root test's network.
const (
	rNet    = "9a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	rSubnet = "9a1b2c3d-aaaa-4a6b-8c7d-000000000001"
	rDHCP   = "d1d1d1d1-0000-4000-8000-000000000002"
	rVM1    = "a1a1a1a1-0000-4000-8000-000000000010"
	rVM2    = "b2b2b2b2-0000-4000-8000-000000000011"
)

// runningAgent is an agent the test started; stop ends it like a process
// exit (its servers stop, the kernel keeps what it built).
type runningAgent struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(ra.stop)
	return ra
}

func (ra *runningAgent) stop() {
	if ra.cancel == nil {
		return
	}
	ra.cancel()
	<-ra.done
	ra.a.Close()
	ra.cancel = nil
}

// TestAgentServesDHCP runs an agent against a fake server for a host
// namespace that serves a network's DHCP: it builds the qdhcp namespace
// whose tap it enslaves to the network's bridge, reports the DHCP port
// ACTIVE, and a VM namespace gets its port's lease from busybox udhcpc; a
// port added later is served as soon as the agent has it; a restarted agent
// keeps every link and renewals go on; a DHCP port that goes away takes its
// namespace along.
func TestAgentServesDHCP(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	host, vm1, vm2 := newNS(t), newNS(t), newNS(t)
	prefix := fmt.Sprintf("vagt%d-%d-", os.Getpid(), nsSeq.Add(1))
	nsName := qdhcp.NamespaceName(prefix, rNet)
	t.Cleanup(func() {
		// Runs after the agents have stopped (cleanups run last first).
		if _, err := os.Stat(qdhcp.NamespacePath(nsName)); err == nil {
			t.Errorf("namespace %s left behind", nsName)
			_ = netns.DeleteNamed(nsName)
		}
	})

	view := agentapi.View{
		Networks: []agentapi.Network{{ID: rNet, Type: l2.TypeLocal, MTU: 1400, AdminStateUp: true}},
		Subnets: []agentapi.Subnet{{ID: rSubnet, NetworkID: rNet, IPVersion: 4, CIDR: netip.MustParsePrefix("10.50.0.0/24"),
			GatewayIP: netip.MustParseAddr("10.50.0.1"), EnableDHCP: true,
			HostRoutes: []agentapi.HostRoute{{Destination: netip.MustParsePrefix("172.16.0.0/12"), NextHop: netip.MustParseAddr("10.50.0.254")}}}},
		Ports: []agentapi.Port{
			{ID: rDHCP, NetworkID: rNet, MACAddress: "fa:16:3e:50:00:02", DeviceOwner: OwnerDHCP, AdminStateUp: true, Host: "h1", Local: true,
				FixedIPs: []agentapi.FixedIP{{SubnetID: rSubnet, IPAddress: netip.MustParseAddr("10.50.0.2")}}},
			{ID: rVM1, NetworkID: rNet, MACAddress: "fa:16:3e:50:00:10", DeviceOwner: "compute:nova", AdminStateUp: true, Host: "h1", Local: true,
				DNSName: "vm1", FixedIPs: []agentapi.FixedIP{{SubnetID: rSubnet, IPAddress: netip.MustParseAddr("10.50.0.10")}}},
		},
	}
	fs := newFakeServer(t, view)
	plugVM(t, host, vm1, l2.TapName(rVM1), "fa:16:3e:50:00:10")
	cfg := Config{
		Host: "h1", Server: fs.srv.URL, Token: "t", NetNS: host.name, NamespacePrefix: prefix,
		ReportInterval: time.Second, DHCPLeaseTime: 10 * time.Minute, DNSDomain: "test.example.",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	start := time.Now()
	ra := startAgent(t, cfg)
	eventually(t, 15*time.Second, "DHCP port and VM port ACTIVE", func() bool {
		return fs.portStatus(rDHCP) == "ACTIVE" && fs.portStatus(rVM1) == "ACTIVE"
	})
	t.Logf("DHCP port ACTIVE %s after the agent started", time.Since(start).Round(time.Millisecond))

	// The kernel: the qdhcp namespace's device and its tap on the bridge.
	qh := handleInNS(t, nsName)
	dev, err := qh.LinkByName(qdhcp.DeviceName(rDHCP))
	if err != nil {
		t.Fatal(err)
	}
	if dev.Attrs().HardwareAddr.String() != "fa:16:3e:50:00:02" || dev.Attrs().MTU != 1400 {
		t.Errorf("%s: mac %s mtu %d", dev.Attrs().Name, dev.Attrs().HardwareAddr, dev.Attrs().MTU)
	}
	br := host.link(t, l2.BridgeName(rNet))
	tap := host.link(t, l2.TapName(rDHCP))
	if tap.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("%s is not a port of %s", tap.Attrs().Name, br.Attrs().Name)
	}

	// A VM gets exactly its port's lease.
	u1 := startUdhcpc(t, vm1)
	checkVars(t, "vm1 lease", u1.wait(t, 15*time.Second, "bound"), map[string]string{
		"ip": "10.50.0.10", "mask": "24", "router": "10.50.0.1", "dns": "10.50.0.2", "mtu": "1400",
		"domain": "test.example", "hostname": "vm1", "lease": "600", "serverid": "10.50.0.2",
		"staticroutes": "172.16.0.0/12 10.50.0.254 0.0.0.0/0 10.50.0.1",
	})

	// A port the agent learns while its client is already asking: an
	// unbound one, on the bridge by a device the agent does not manage.
	plugVM(t, host, vm2, "vm2port", "fa:16:3e:50:00:11")
	if err := host.h.LinkSetMaster(host.link(t, "vm2port"), br); err != nil {
		t.Fatal(err)
	}
	u2 := startUdhcpc(t, vm2)
	time.Sleep(1500 * time.Millisecond) // a DISCOVER or two go unanswered
	if recs := readRecords(t, u2.out); len(recs) > 0 && recs[len(recs)-1]["event"] == "bound" {
		t.Fatal("a MAC the agent does not know got a lease")
	}
	learned := time.Now()
	fs.putPort(agentapi.Port{ID: rVM2, NetworkID: rNet, MACAddress: "fa:16:3e:50:00:11", DeviceOwner: "compute:nova", AdminStateUp: true,
		FixedIPs: []agentapi.FixedIP{{SubnetID: rSubnet, IPAddress: netip.MustParseAddr("10.50.0.11")}}})
	checkVars(t, "vm2 lease", u2.wait(t, 10*time.Second, "bound"), map[string]string{"ip": "10.50.0.11", "hostname": "host-10-50-0-11"})
	t.Logf("lease %s after the port reached the agent (udhcpc DISCOVERs every second)", time.Since(learned).Round(time.Millisecond))

	// A restarted agent changes no link and serves renewals again.
	before := linkIndexes(t, host.h, qh)
	ra.stop()
	fs.forgetStatuses()
	restart := time.Now()
	startAgent(t, cfg)
	eventually(t, 15*time.Second, "DHCP port ACTIVE after the restart", func() bool { return fs.portStatus(rDHCP) == "ACTIVE" })
	t.Logf("DHCP port ACTIVE again %s after the restart", time.Since(restart).Round(time.Millisecond))
	u1.renew(t)
	checkVars(t, "vm1 renewal after the restart", u1.wait(t, 10*time.Second, "renew", "bound", "nak"), map[string]string{"event": "renew", "ip": "10.50.0.10"})
	after := linkIndexes(t, host.h, qh)
	for name, idx := range before {
		if after[name] != idx {
			t.Errorf("link %s was recreated by the restarted agent (ifindex %d, now %d)", name, idx, after[name])
		}
	}

	// The DHCP port goes: so do its namespace and tap.
	fs.deletePort(rDHCP)
	eventually(t, 10*time.Second, "namespace "+nsName+" and tap removed", func() bool {
		_, err := os.Stat(qdhcp.NamespacePath(nsName))
		_, lerr := host.h.LinkByName(l2.TapName(rDHCP))
		return os.IsNotExist(err) && lerr != nil
	})
}

// handleInNS opens a netlink handle in a named namespace for the test.
func handleInNS(t *testing.T, name string) *netlink.Handle {
	t.Helper()
	var h *netlink.Handle
	eventually(t, 5*time.Second, "namespace "+name, func() bool {
		fd, err := netns.GetFromName(name)
		if err != nil {
			return false
		}
		defer fd.Close()
		h, err = netlink.NewHandleAt(fd)
		return err == nil
	})
	t.Cleanup(h.Close)
	return h
}

// linkIndexes maps the agent's links (host bridge and taps, the qdhcp
// device) to their ifindexes.
func linkIndexes(t *testing.T, host, q *netlink.Handle) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, h := range []*netlink.Handle{host, q} {
		links, err := h.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			n := l.Attrs().Name
			if strings.HasPrefix(n, "brq") || strings.HasPrefix(n, "tap") || strings.HasPrefix(n, "ns-") {
				m[n] = l.Attrs().Index
			}
		}
	}
	return m
}

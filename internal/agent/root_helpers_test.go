package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/namedns/nstest"
)

// requireRoot skips tests that build namespaces when not run as root.
func requireRoot(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces, veth pairs and bridges")
}

var nsSeq atomic.Int64

// testNS is a named namespace that lives as long as one test.
type testNS struct {
	name string
	fd   netns.NsHandle
	h    *netlink.Handle
}

// newNS creates namespace vagt-<pid>-<n> with lo up and removes it when the
// test ends.
func newNS(t *testing.T) *testNS {
	t.Helper()
	ns := nstest.New(t, "vagt")
	return &testNS{name: ns.Name, fd: ns.Fd, h: ns.H}
}

func (n *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: link %s: %v", n.name, name, err)
	}
	return l
}

func (n *testNS) up(t *testing.T, name string) {
	t.Helper()
	if err := n.h.LinkSetUp(n.link(t, name)); err != nil {
		t.Fatalf("%s: set %s up: %v", n.name, name, err)
	}
}

// plugVM pairs eth0 (with the port's MAC) in vm with hostDev in host, as a
// hypervisor plugs a VM: the agent wires hostDev when it is the port's tap.
func plugVM(t *testing.T, host, vm *testNS, hostDev, portMAC string) {
	t.Helper()
	hw, err := net.ParseMAC(portMAC)
	if err != nil {
		t.Fatal(err)
	}
	v := netlink.NewVeth(netlink.LinkAttrs{Name: hostDev})
	v.PeerName, v.PeerHardwareAddr, v.PeerNamespace = "eth0", hw, netlink.NsFd(int(vm.fd))
	if err := host.h.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/eth0: %v", hostDev, err)
	}
	host.up(t, hostDev)
	vm.up(t, "eth0")
}

// fakeServer serves the agent API for one host from a view the test
// changes, and records the port statuses the agent reports.
type fakeServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	rev      int64
	networks map[string]agentapi.Network
	subnets  map[string]agentapi.Subnet
	ports    map[string]agentapi.Port
	log      []agentapi.Event
	notify   chan struct{} // closed when events are appended
	status   map[string]string
}

func newFakeServer(t *testing.T, v agentapi.View) *fakeServer {
	f := &fakeServer{rev: 1, networks: map[string]agentapi.Network{}, subnets: map[string]agentapi.Subnet{},
		ports: map[string]agentapi.Port{}, notify: make(chan struct{}), status: map[string]string{}}
	for _, n := range v.Networks {
		f.networks[n.ID] = n
	}
	for _, s := range v.Subnets {
		f.subnets[s.ID] = s
	}
	for _, p := range v.Ports {
		f.ports[p.ID] = p
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/status"):
		var st agentapi.Status
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		maps.Copy(f.status, st.Ports)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/view") && r.URL.Query().Get("watch") == "1":
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		f.watch(w, r, since)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/view"):
		f.mu.Lock()
		v := agentapi.View{Host: "h1", Revision: f.rev,
			Networks: slices.Collect(maps.Values(f.networks)), Subnets: slices.Collect(maps.Values(f.subnets)), Ports: slices.Collect(maps.Values(f.ports))}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(v)
	default:
		http.NotFound(w, r)
	}
}

// watch streams the events after since, then new ones as they come, with a
// bookmark every few seconds.
func (f *fakeServer) watch(w http.ResponseWriter, r *http.Request, since int64) {
	fl := w.(http.Flusher)
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	enc := json.NewEncoder(w)
	for {
		f.mu.Lock()
		var evs []agentapi.Event
		for _, e := range f.log {
			if e.Revision > since {
				evs = append(evs, e)
			}
		}
		notify, rev := f.notify, f.rev
		f.mu.Unlock()
		for _, e := range evs {
			if enc.Encode(e) != nil {
				return
			}
			since = e.Revision
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-notify:
		case <-tick.C:
			if enc.Encode(agentapi.Event{Type: agentapi.EventBookmark, Revision: rev}) != nil {
				return
			}
			fl.Flush()
		}
	}
}

// change applies one change to the view and streams it, followed by a
// bookmark (the agent reconciles on bookmarks).
func (f *fakeServer) change(ev agentapi.Event, apply func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	apply()
	f.rev++
	ev.Revision = f.rev
	f.log = append(f.log, ev, agentapi.Event{Type: agentapi.EventBookmark, Revision: f.rev})
	close(f.notify)
	f.notify = make(chan struct{})
}

func (f *fakeServer) putPort(p agentapi.Port) {
	b, _ := json.Marshal(p)
	f.change(agentapi.Event{Type: agentapi.EventPut, Kind: agentapi.KindPort, Object: b}, func() { f.ports[p.ID] = p })
}

func (f *fakeServer) deletePort(id string) {
	f.change(agentapi.Event{Type: agentapi.EventDelete, Kind: agentapi.KindPort, ID: id}, func() { delete(f.ports, id) })
}

func (f *fakeServer) portStatus(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status[id]
}

func (f *fakeServer) forgetStatuses() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.status)
}

// eventually polls cond every 20 ms until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udhcpcScript records every call of busybox udhcpc's script and configures
// the leased address on the VM's eth0 (inside the VM namespace), so that
// renewals are unicast like a real VM's.
const udhcpcScript = `#!/bin/sh
out='%s'
{
  echo "event=$1"
  for v in ip mask router dns mtu domain hostname staticroutes lease serverid; do
    eval "echo \"$v=\${$v}\""
  done
  echo .
} >>"$out"
case "$1" in
bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
deconfig|nak) ip -4 addr flush dev "$interface" ;;
esac
exit 0
`

// udhcpc is a long-running busybox DHCP client in a VM namespace.
type udhcpc struct {
	cmd  *exec.Cmd
	out  string
	seen int
}

// startUdhcpc starts `udhcpc -f` on the VM's eth0, DISCOVERing every
// second; it renews on SIGUSR1 and is killed when the test ends.
func startUdhcpc(t *testing.T, vm *testNS) *udhcpc {
	t.Helper()
	if _, err := exec.LookPath("udhcpc"); err != nil {
		t.Skip("needs udhcpc (Debian package udhcpc)")
	}
	dir := t.TempDir()
	u := &udhcpc{out: filepath.Join(dir, "records")}
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, fmt.Appendf(nil, udhcpcScript, u.out), 0o755); err != nil {
		t.Fatal(err)
	}
	u.cmd = exec.Command("ip", "netns", "exec", vm.name, "udhcpc", "-f", "-i", "eth0", "-s", script, "-t", "1000", "-T", "1", "-A", "1")
	var buf strings.Builder
	u.cmd.Stdout, u.cmd.Stderr = &buf, &buf
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = u.cmd.Process.Kill()
		_ = u.cmd.Wait()
		if t.Failed() {
			t.Logf("udhcpc in %s:\n%s", vm.name, buf.String())
		}
	})
	return u
}

func (u *udhcpc) renew(t *testing.T) {
	t.Helper()
	if err := u.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
}

// wait returns the next record whose event is one of want.
func (u *udhcpc) wait(t *testing.T, timeout time.Duration, want ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := readRecords(t, u.out)
		for i := u.seen; i < len(recs); i++ {
			if slices.Contains(want, recs[i]["event"]) {
				u.seen = i + 1
				return recs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v from udhcpc within %s; records %v", want, timeout, recs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readRecords(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() == "." {
			out = append(out, cur)
			cur = map[string]string{}
			continue
		}
		k, v, _ := strings.Cut(sc.Text(), "=")
		cur[k] = v
	}
	return out
}

// checkVars compares recorded variables with the wanted ones.
func checkVars(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s=%q, want %q", what, k, got[k], v)
		}
	}
}

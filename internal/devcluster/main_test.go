package devcluster

import (
	"context"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// vlandBinary is the vland binary the e2e tests run (built once in TestMain, or
// VLAND_DEV_BINARY).
var vlandBinary string

// e2eRoot holds the directories of the clusters tests make.
var e2eRoot = filepath.Join(os.TempDir(), "vland-devcluster-e2e")

// e2eName matches the names of test clusters: e<pid of the test>-<what>.
var e2eName = regexp.MustCompile(`^e([0-9]+)-[a-z0-9-]+$`)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // the e2e tests skip themselves
		}
		sweepLeftovers()
		vlandBinary = os.Getenv("VLAND_DEV_BINARY")
		if vlandBinary == "" {
			tmp, err := os.MkdirTemp("", "vland-devcluster-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(tmp)
			vlandBinary = filepath.Join(tmp, "vland")
			out, err := exec.Command("go", "build", "-o", vlandBinary, "github.com/vland/vland/cmd/vland").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building vland for the e2e tests: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// sweepLeftovers removes test clusters of test processes that are gone (a
// run killed by a timeout cannot run its cleanups).
func sweepLeftovers() {
	dead := func(name string) bool {
		m := e2eName.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return pid != os.Getpid() && err != nil
	}
	entries, _ := os.ReadDir(e2eRoot)
	for _, e := range entries {
		if dead(e.Name()) {
			_ = Down(e.Name(), filepath.Join(e2eRoot, e.Name()), nil)
		}
	}
	regs, _ := os.ReadDir(registryDir)
	for _, e := range regs {
		if r, err := readRegistration(e.Name()); err == nil && r != nil && dead(r.Name) {
			_ = Down(r.Name, r.Dir, nil)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root (creates network namespaces, veth pairs, bridges, vxlan devices and runs vland server and agents)")
	}
}

// testContext is a context that ends with the test (or a generous deadline).
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newName returns a cluster name unique to this test run.
func newName(short string) string { return fmt.Sprintf("e%d-%s", os.Getpid(), short) }

// upCluster brings up a cluster for the test and removes it when the test
// ends, pass or fail, checking that nothing of it remains.
func upCluster(t *testing.T, short string, o Options) *Cluster {
	t.Helper()
	requireRoot(t)
	o.Name = newName(short)
	o.Dir = filepath.Join(e2eRoot, o.Name)
	o.Binary = vlandBinary
	if o.NetworkHosts == 0 {
		o.NetworkHosts = -1 // tests need no network host unless they ask
	}
	o.Logger = testLogger(t)
	start := time.Now()
	c, err := Up(testContext(t), o)
	if err != nil {
		t.Fatalf("Up %s: %v", o.Name, err)
	}
	t.Logf("cluster %s (prefix %s) up in %s", o.Name, c.Prefix(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c.Dir())
		}
		if err := c.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, o.Name, o.Dir)
	})
	return c
}

// dumpLogs shows the tails of a failed cluster's logs.
func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		t.Logf("---- %s (tail)\n%s", filepath.Base(l), tail(l, 3000))
	}
}

// assertGone checks that nothing of a cluster remains: no namespace or
// root-namespace link with its prefix, no process naming its directory, no
// directory.
func assertGone(t *testing.T, name, dir string) {
	t.Helper()
	p := Prefix(name)
	if nss, _ := namedns.WithPrefix(p + "-"); len(nss) > 0 {
		t.Errorf("namespaces of %s remain: %v", name, nss)
	}
	root, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	links, err := listLinks(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, p+"-") {
			t.Errorf("root-namespace link %s of %s remains", l.Attrs().Name, name)
		}
	}
	if procs := procsNaming(dir); len(procs) > 0 {
		t.Errorf("processes of %s remain: %v", name, procs)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("directory %s remains", dir)
	}
	if r, _ := readRegistration(p); r != nil {
		t.Errorf("registration of prefix %s remains", p)
	}
}

// newNetwork creates a network with a subnet as the cloud's project and
// returns its id and VNI.
func newNetwork(t *testing.T, c *Cluster, cloud, name, cidr string) (string, uint32) {
	t.Helper()
	ctx := testContext(t)
	id, err := c.CreateNetwork(ctx, cloud, name, cidr)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Network struct {
			SegmentationID uint32 `json:"provider:segmentation_id"`
			Type           string `json:"provider:network_type"`
		} `json:"network"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/networks/"+id, nil, &out); err != nil {
		t.Fatal(err)
	}
	if out.Network.Type != "vxlan" {
		t.Fatalf("network %s is %q, want vxlan", name, out.Network.Type)
	}
	return id, out.Network.SegmentationID
}

// newVM creates a VM and deletes it when the test ends.
func newVM(t *testing.T, c *Cluster, o VMOptions) VM {
	t.Helper()
	start := time.Now()
	vm, err := c.CreateVM(testContext(t), o)
	if err != nil {
		t.Fatalf("CreateVM %s: %v", o.Name, err)
	}
	t.Logf("VM %s on %s: %s %s, ACTIVE after %s", vm.Name, vm.Host, vm.IP, vm.MAC, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(c.Dir(), stateFile)); err != nil {
			return // the cluster is down already
		}
		if err := c.DeleteVM(context.Background(), vm.Name); err != nil && !strings.Contains(err.Error(), "has no VM") {
			t.Errorf("DeleteVM %s: %v", vm.Name, err)
		}
	})
	return *vm
}

// hostLinks maps the names of a host's links to their ifindexes and
// masters' ifindexes.
func hostLinks(t *testing.T, c *Cluster, host string) map[string]netlink.LinkAttrs {
	t.Helper()
	h, err := namedns.Handle(hostNS(c.Prefix(), host))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := listLinks(h)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]netlink.LinkAttrs{}
	for _, l := range links {
		m[l.Attrs().Name] = *l.Attrs()
	}
	return m
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := poll(testContext(t), timeout, 50*time.Millisecond, what, cond); err != nil {
		t.Fatal(err)
	}
}

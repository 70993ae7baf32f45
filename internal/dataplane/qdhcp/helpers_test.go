package qdhcp

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/namedns/nstest"
)

// requireRoot skips tests that build namespaces when not run as root.
func requireRoot(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces, veth pairs and a bridge")
}

// nsSeq numbers the namespaces of this test process.
var nsSeq atomic.Int64

// testPrefix is a namespace prefix unique to this process and test: what
// an agent's --namespace-prefix would be.
func testPrefix() string {
	return fmt.Sprintf("vqdt%d-%d-", os.Getpid(), nsSeq.Add(1))
}

// testNS is a named namespace that lives as long as one test.
type testNS struct {
	name string
	fd   netns.NsHandle
	h    *netlink.Handle
}

// newNS creates namespace vqdt-<pid>-<n> with lo up and removes it when
// the test ends.
func newNS(t *testing.T) *testNS {
	t.Helper()
	ns := nstest.New(t, "vqdt")
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

func (n *testNS) has(name string) bool {
	_, err := n.h.LinkByName(name)
	return err == nil
}

func (n *testNS) up(t *testing.T, name string) {
	t.Helper()
	if err := n.h.LinkSetUp(n.link(t, name)); err != nil {
		t.Fatalf("%s: set %s up: %v", n.name, name, err)
	}
}

// handleIn opens a netlink handle in a named namespace for the test.
func handleIn(t *testing.T, name string) *netlink.Handle {
	t.Helper()
	fd, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// addrsOf returns a link's addresses other than IPv6 link-local ones.
func addrsOf(t *testing.T, h *netlink.Handle, l netlink.Link) []string {
	t.Helper()
	list, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range list {
		if a.IP.To4() == nil && a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	return out
}

// removeLeftovers deletes the namespaces of a prefix that a failed test may
// leave, and reports whether there were any.
func removeLeftovers(prefix string) []string {
	names, _ := namespacesWithPrefix(prefix)
	for _, n := range names {
		_ = unbindNamespace(n)
	}
	return names
}

// testLogger logs into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// lease runs busybox udhcpc once in namespace vm (its eth0), and returns
// the variables its script was given for the bound event.
func lease(t *testing.T, vm string, tries int) (map[string]string, error) {
	t.Helper()
	if _, err := exec.LookPath("udhcpc"); err != nil {
		t.Skip("needs udhcpc (Debian package udhcpc)")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "lease")
	script := filepath.Join(dir, "script")
	body := fmt.Sprintf(`#!/bin/sh
[ "$1" = bound ] || exit 0
for v in ip mask router dns mtu domain hostname staticroutes lease serverid; do
  eval "echo \"$v=\${$v}\""
done >'%s'
`, out)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(tries+5)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", vm, "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", script,
		"-t", fmt.Sprint(tries), "-T", "1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("udhcpc: %w\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vars[k] = v
	}
	return vars, nil
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

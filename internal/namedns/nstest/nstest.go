// Package nstest gives root tests a fresh named network namespace that is
// removed when the test ends, pass or fail: the one place the data-plane
// packages' tests build their namespaces from.
package nstest

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/namedns"
)

// RequireRoot skips tb unless it runs as root; what says what the test builds.
func RequireRoot(tb testing.TB, what string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates " + what)
	}
}

// seq numbers the namespaces of this test process; with the pid it makes
// names unique across concurrent runs.
var seq atomic.Int64

// NS is a namespace that lives as long as one test.
type NS struct {
	Name string
	Fd   netns.NsHandle
	H    *netlink.Handle
}

// New creates namespace <prefix>-<pid>-<n> with lo up and removes it (and
// everything in it) when tb ends.
func New(tb testing.TB, prefix string) *NS {
	tb.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	return Named(tb, name)
}

// Named creates the namespace name with lo up and removes it when tb ends.
func Named(tb testing.TB, name string) *NS {
	tb.Helper()
	if err := namedns.Create(name); err != nil {
		tb.Fatalf("create namespace %s: %v", name, err)
	}
	fd, err := netns.GetFromName(name)
	if err != nil {
		_ = namedns.Delete(name)
		tb.Fatalf("open namespace %s: %v", name, err)
	}
	tb.Cleanup(func() {
		fd.Close()
		if err := namedns.Delete(name); err != nil {
			tb.Errorf("delete namespace %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", name, err)
	}
	tb.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("%s: set lo up: %v", name, err)
	}
	return &NS{Name: name, Fd: fd, H: h}
}

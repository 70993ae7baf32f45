package bench

import (
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
)

// Namespace helpers of the data-plane benchmark. Every namespace it makes is
// named with its dev cluster's prefix, so that devcluster.Down removes it
// with the cluster, even after a crash of the benchmark; nothing is created
// in the root namespace.

// setSysctl writes a /proc/sys/net value as seen from inside the namespace
// (key like "ipv4/neigh/eth0/retrans_time_ms").
func setSysctl(ns, key, value string) error {
	return namedns.Do(ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys/net", key), []byte(value), 0o644)
	})
}

// linkUp sets a link of a handle's namespace up.
func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// listLinks lists a namespace's links, retrying dumps the kernel interrupted.
func listLinks(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for range 10 {
		var links []netlink.Link
		if links, err = h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return nil, err
}

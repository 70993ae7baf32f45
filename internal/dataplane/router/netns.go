package router

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/namedns"
)

// NamespacePath is the file a named namespace is bound on.
func NamespacePath(name string) string { return namedns.Path(name) }

// createNamespace creates network namespace name bound at /run/netns/<name>,
// like `ip netns add`, and returns a handle to it.
func createNamespace(name string) (netns.NsHandle, error) {
	if err := namedns.Create(name); err != nil {
		return netns.None(), err
	}
	h, ok, err := namedns.OpenBound(name)
	if err == nil && !ok {
		err = fmt.Errorf("namespace %s vanished after its creation", name)
	}
	return h, err
}

// sysctl is a /proc/sys/net setting a router namespace needs.
type sysctl struct {
	key, value string
	// optional settings are skipped when the kernel does not have them
	// (IPv6 disabled; conntrack not loaded yet).
	optional bool
}

// routerSysctls are what Neutron's L3 agent sets in a router namespace:
// forwarding on, ARP answered only for addresses of the incoming device
// and from the best local address, and conntrack liberal about TCP windows
// (so that window scaling seen mid-stream does not drop packets); plus no
// IPv6 duplicate address detection on the router's ports, which own their
// addresses: while a port's link-local address is tentative (a second or
// two after its carrier comes up) the kernel sends no neighbour
// solicitation for forwarded packets, which stalls IPv6 routing.
var routerSysctls = []sysctl{
	{key: "ipv4/ip_forward", value: "1"},
	{key: "ipv4/conf/all/arp_ignore", value: "1"},
	{key: "ipv4/conf/all/arp_announce", value: "2"},
	{key: "ipv6/conf/all/forwarding", value: "1", optional: true},
	{key: "ipv6/conf/all/accept_dad", value: "0", optional: true},
	{key: "ipv6/conf/default/accept_dad", value: "0", optional: true},
	{key: "netfilter/nf_conntrack_tcp_be_liberal", value: "1", optional: true},
}

// deviceSysctls are the per-device settings of a router port (for devices
// made before the namespace's defaults were set).
func deviceSysctls(dev string) []sysctl {
	return []sysctl{{key: "ipv6/conf/" + dev + "/accept_dad", value: "0", optional: true}}
}

// ensureSysctls sets the sysctls in namespace h where they differ, and
// returns what it changed. /proc/sys/net shows the namespace of the thread
// that opens it, hence the thread switched into h.
func ensureSysctls(h netns.NsHandle, list []sysctl) (changed []string, missing []sysctl, err error) {
	err = namedns.DoIn(h, func() error {
		var errs []error
		for _, s := range list {
			path := filepath.Join("/proc/sys/net", s.key)
			cur, err := os.ReadFile(path)
			if err != nil {
				if s.optional && errors.Is(err, fs.ErrNotExist) {
					missing = append(missing, s)
				} else {
					errs = append(errs, fmt.Errorf("read %s: %w", s.key, err))
				}
				continue
			}
			if string(bytes.TrimSpace(cur)) == s.value {
				continue
			}
			if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("set %s = %s: %w", s.key, s.value, err))
				continue
			}
			changed = append(changed, fmt.Sprintf("%s = %s (was %s)", strings.ReplaceAll(s.key, "/", "."), s.value, bytes.TrimSpace(cur)))
		}
		return errors.Join(errs...)
	})
	return changed, missing, err
}

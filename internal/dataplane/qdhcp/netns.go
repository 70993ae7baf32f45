package qdhcp

import (
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// NamespacePath is the file a named namespace is bound on.
func NamespacePath(name string) string { return namedns.Path(name) }

// nsIdentity is the inode of a namespace: equal for two handles exactly
// when they refer to the same namespace.
func nsIdentity(h netns.NsHandle) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		return 0, fmt.Errorf("stat namespace: %w", err)
	}
	return st.Ino, nil
}

// createNamespace creates network namespace name bound at
// /run/netns/<name>, like `ip netns add`, and returns a handle to it,
// without moving the calling goroutine: the work happens on a locked thread
// that returns to its own namespace before it is released (should it fail
// to, it stays locked and the runtime retires it).
func createNamespace(name string) (netns.NsHandle, error) {
	if err := namedns.Create(name); err != nil {
		return netns.None(), err
	}
	if err := tuneIPv6(name); err != nil {
		_ = namedns.Delete(name)
		return netns.None(), err
	}
	h, ok, err := namedns.OpenBound(name)
	if err == nil && !ok {
		err = fmt.Errorf("namespace %s vanished after its creation", name)
	}
	return h, err
}

// unbindNamespace removes a named namespace like `ip netns delete`; one that
// is not there is no error.
func unbindNamespace(name string) error { return namedns.Delete(name) }

// namespacesWithPrefix lists the named namespaces whose names start with p.
func namespacesWithPrefix(p string) ([]string, error) { return namedns.WithPrefix(p) }

// tuneIPv6 sets the defaults every device made in a new DHCP namespace
// inherits: no duplicate address detection, so the DHCP port's link-local
// address (the source of DHCPv6 replies and router advertisements) is usable
// the moment the device is up; and no router advertisements accepted, so an
// RA on the tenant network never configures the DHCP port.
func tuneIPv6(name string) error {
	return namedns.Do(name, func() error {
		for _, k := range []string{"all/accept_dad", "default/accept_dad", "all/accept_ra", "default/accept_ra"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k, []byte("0"), 0); err != nil {
				return fmt.Errorf("namespace %s: set net.ipv6.conf.%s=0: %w", name, strings.ReplaceAll(k, "/", "."), err)
			}
		}
		return nil
	})
}

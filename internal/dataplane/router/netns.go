package router

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// NamespacePath is the file a named namespace is bound on.
func NamespacePath(name string) string { return namedns.Path(name) }

// openHostNS opens a namespace: "" is the caller's own, a name without '/'
// one made by `ip netns add`, anything else a path.
func openHostNS(ns string) (netns.NsHandle, error) {
	var (
		h   netns.NsHandle
		err error
	)
	switch {
	case ns == "":
		h, err = netns.Get()
	case strings.Contains(ns, "/"):
		h, err = netns.GetFromPath(ns)
	default:
		h, err = netns.GetFromName(ns)
	}
	if err != nil {
		return netns.None(), fmt.Errorf("open network namespace %q: %w", ns, err)
	}
	return h, nil
}

// openNamespace opens the named namespace. ok is false when there is none:
// no file, or a file without a network namespace mounted on it (what a lost
// mount or a crash between creating the file and binding leaves); such a
// file is removed so that the name can be bound again.
func openNamespace(name string) (h netns.NsHandle, ok bool, err error) {
	path := NamespacePath(name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return netns.None(), false, nil
	}
	if err != nil {
		return netns.None(), false, fmt.Errorf("open namespace %s: %w", name, err)
	}
	if isNetNS(fd) {
		return netns.NsHandle(fd), true, nil
	}
	unix.Close(fd)
	_ = unix.Unmount(path, unix.MNT_DETACH) // whatever else is mounted there
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return netns.None(), false, fmt.Errorf("remove stale namespace file %s: %w", path, err)
	}
	return netns.None(), false, nil
}

// isNetNS reports whether fd refers to a network namespace.
func isNetNS(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		return false
	}
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	return err == nil && t == unix.CLONE_NEWNET
}

// createNamespace creates network namespace name bound at /run/netns/<name>,
// like `ip netns add`, and returns a handle to it.
func createNamespace(name string) (netns.NsHandle, error) {
	if err := namedns.Create(name); err != nil {
		return netns.None(), err
	}
	h, ok, err := openNamespace(name)
	if err == nil && !ok {
		err = fmt.Errorf("namespace %s vanished after its creation", name)
	}
	return h, err
}

// inNamespace runs fn on a locked OS thread switched into the namespace h
// and waits for it; sockets fn opens stay in that namespace. Should the
// thread fail to switch back, it is never unlocked, so that the runtime
// retires it rather than reuse it in the wrong namespace.
func inNamespace(h netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return from network namespace: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
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
	err = inNamespace(h, func() error {
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

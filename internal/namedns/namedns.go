// Package namedns manages named network namespaces the way `ip netns`
// does (bind mounts under /run/netns), and runs code inside them, without
// moving the calling goroutine: the work happens on a locked OS thread that
// returns to its own namespace before it is released (should it fail to
// return, it stays locked and the runtime retires it with its goroutine).
package namedns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bound, as iproute2 keeps them.
const Dir = "/run/netns"

// Path is the bind mount of a named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// dirOnce makes Dir a shared mount point once per process.
var dirOnce = sync.OnceValue(prepareDir)

// prepareDir does what `ip netns add` does before binding a namespace: Dir
// becomes a mount point with shared propagation, so namespaces added later
// appear in mount namespaces made from this one (such as `ip netns exec`'s).
func prepareDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", Dir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s shared: %w", Dir, err)
		}
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on itself: %w", Dir, err)
		}
	}
}

// Create makes a new named namespace, like `ip netns add`; it fails if the
// name is taken.
func Create(name string) error {
	if err := dirOnce(); err != nil {
		return err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind namespace: %w", err)
		}
		return nil
	})
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Delete removes a named namespace like `ip netns delete`; one that is not
// there is no error. The kernel frees it (and its links) once no process
// or descriptor holds it.
func Delete(name string) error {
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}

// Exists reports whether a named namespace is bound.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// WithPrefix lists the named namespaces whose names start with prefix.
func WithPrefix(prefix string) ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Handle opens a netlink handle bound to a named namespace.
func Handle(name string) (*netlink.Handle, error) {
	fd, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	defer fd.Close()
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		return nil, fmt.Errorf("netlink in namespace %s: %w", name, err)
	}
	return h, nil
}

// Open opens a network namespace: "" is the caller's own, a name without '/'
// one made by `ip netns add` (/run/netns/<name>), anything else a path such
// as /proc/<pid>/ns/net.
func Open(ns string) (netns.NsHandle, error) {
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

// OpenBound opens the named namespace; ok is false when there is none: no
// file, or a file without a network namespace mounted on it (what a lost
// mount or a crash between creating the file and binding leaves), which is
// removed so that the name can be bound again.
func OpenBound(name string) (h netns.NsHandle, ok bool, err error) {
	path := Path(name)
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
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
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

// Do runs fn on a locked thread switched into the named namespace (a name
// from `ip netns add`, or a path such as /proc/<pid>/ns/net; "" runs fn where
// the caller is). What fn creates there (sockets, child processes) stays in
// that namespace after the thread returns to its own.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	target, err := Open(name)
	if err != nil {
		return err
	}
	defer target.Close()
	return doIn(target, name, fn)
}

// DoIn is Do for a namespace already open as h (which stays open).
func DoIn(h netns.NsHandle, fn func() error) error { return doIn(h, "", fn) }

// doIn runs fn on a locked thread switched into h; name only labels errors.
func doIn(h netns.NsHandle, name string, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(h); err != nil {
			if name == "" {
				return fmt.Errorf("enter network namespace: %w", err)
			}
			return fmt.Errorf("enter network namespace %q: %w", name, err)
		}
		return fn()
	})
}

// onThread runs fn on a locked thread and puts the thread back into its
// original namespace afterwards.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to own namespace: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

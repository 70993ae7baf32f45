package qdhcp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces are bound, as `ip netns add` does.
const NetnsDir = "/run/netns"

// NamespacePath is the file a named namespace is bound on.
func NamespacePath(name string) string { return filepath.Join(NetnsDir, name) }

// netnsDirOnce makes NetnsDir a shared mount point once per process.
var netnsDirOnce = sync.OnceValue(prepareNetnsDir)

// prepareNetnsDir does what `ip netns add` does before binding a namespace:
// NetnsDir becomes a mount point with shared propagation, so namespaces added
// later appear in mount namespaces made from this one (those of
// `ip netns exec`, for instance). It is idempotent across processes.
func prepareNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", NetnsDir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s shared: %w", NetnsDir, err)
		}
		// Not a mount point yet: bind it on itself first.
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on itself: %w", NetnsDir, err)
		}
	}
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
	if err := netnsDirOnce(); err != nil {
		return netns.None(), err
	}
	path := NamespacePath(name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("create namespace %s: %w", name, err)
	}
	f.Close()
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
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(merr, fmt.Errorf("return to own namespace: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("bind namespace: %w", merr)
		}
		errc <- merr
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return netns.None(), fmt.Errorf("create namespace %s: %w", name, err)
	}
	h, ok, err := openNamespace(name)
	if err == nil && !ok {
		err = fmt.Errorf("namespace %s vanished after its creation", name)
	}
	return h, err
}

// unbindNamespace removes a named namespace like `ip netns delete`; one that
// is not there is no error. The kernel frees it, with its links, once no
// process, socket or descriptor holds it.
func unbindNamespace(name string) error {
	path := NamespacePath(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}

// namespacesWithPrefix lists the named namespaces whose names start with p.
func namespacesWithPrefix(p string) ([]string, error) {
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), p) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

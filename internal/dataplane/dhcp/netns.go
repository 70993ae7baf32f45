package dhcp

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// openNS opens a network namespace: "" is the caller's own, a name without
// '/' is one made by `ip netns add` (/run/netns/<name>), anything else a path
// such as /proc/<pid>/ns/net.
func openNS(ns string) (netns.NsHandle, error) {
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

// inNamespace runs fn on an OS thread switched into network namespace ns and
// waits for it. Sockets fn creates belong to ns for their whole life, while
// the rest of the process stays where it is. The thread is locked for the
// duration; should it fail to switch back, it is never unlocked, so the Go
// runtime retires it instead of reusing it in the wrong namespace.
func inNamespace(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	target, err := openNS(ns)
	if err != nil {
		return err
	}
	defer target.Close()
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
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %q: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return from network namespace %q: %w", ns, err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

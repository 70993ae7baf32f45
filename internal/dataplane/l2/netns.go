package l2

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// vlanProbe caches the one probe of 802.1Q support a process makes.
var vlanProbe = sync.OnceValues(probeVLAN)

// probeVLAN finds out whether the kernel can create 802.1Q devices by trying
// to, in a scratch namespace of its own that disappears with the probe: the
// host's namespaces see nothing. A kernel without the 8021q module answers
// "operation not supported" to the request.
func probeVLAN() (bool, error) {
	scratch, err := newScratchNS()
	if err != nil {
		return false, err
	}
	defer scratch.Close()
	h, err := netlink.NewHandleAt(scratch)
	if err != nil {
		return false, fmt.Errorf("netlink in scratch namespace: %w", err)
	}
	defer h.Close()
	parent := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}
	if err := h.LinkAdd(parent); err != nil {
		return false, fmt.Errorf("create probe veth: %w", err)
	}
	p, err := h.LinkByName("probe0")
	if err != nil {
		return false, fmt.Errorf("find probe veth: %w", err)
	}
	vlan := &netlink.Vlan{
		LinkAttrs: netlink.LinkAttrs{Name: "probe0.2", ParentIndex: p.Attrs().Index},
		VlanId:    2,
	}
	if err := h.LinkAdd(vlan); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return false, nil // no "vlan" link kind registered, and none loadable
		}
		return false, fmt.Errorf("create probe vlan: %w", err)
	}
	return true, nil
}

// newScratchNS creates an anonymous network namespace and returns a handle to
// it, leaving the calling thread where it was. The thread that unshares is
// locked and, should it fail to return to its namespace, never unlocked, so
// the Go runtime retires it instead of reusing it in the wrong namespace.
func newScratchNS() (netns.NsHandle, error) {
	type result struct {
		h   netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{netns.None(), fmt.Errorf("current namespace: %w", err)}
			return
		}
		defer orig.Close()
		scratch, err := netns.New() // unshares this thread into the new namespace
		if err != nil {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
			ch <- result{netns.None(), fmt.Errorf("create scratch namespace: %w", err)}
			return
		}
		if err := netns.Set(orig); err != nil {
			scratch.Close()
			ch <- result{netns.None(), errors.Join(errors.New("return from scratch namespace"), err)}
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		ch <- result{scratch, nil}
	}()
	r := <-ch
	return r.h, r.err
}

package l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/nlutil"
	"github.com/vland/vland/internal/namedns"
)

// Options tune a Manager.
type Options struct {
	// Logger receives what the Manager changes; nil means slog.Default().
	Logger *slog.Logger
}

// Manager converges the L2 wiring of one network namespace. Its methods are
// safe for concurrent use; reconciles are serialized.
type Manager struct {
	ns  netns.NsHandle
	h   *netlink.Handle
	log *slog.Logger
	mu  sync.Mutex
}

// New returns a Manager for a network namespace: "" is the caller's own, a
// bare name one made by `ip netns add`, anything with a '/' a path such as
// /proc/<pid>/ns/net. The namespace is held open until Close.
func New(ns string, opts Options) (*Manager, error) {
	h, err := namedns.Open(ns)
	if err != nil {
		return nil, err
	}
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in namespace %q: %w", ns, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if ns != "" {
		log = log.With("netns", ns)
	}
	return &Manager{ns: h, h: nh, log: log}, nil
}

// Close releases the namespace and netlink sockets. Links stay as they are.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.h.Close()
	return m.ns.Close()
}

// SupportsVLAN reports whether the kernel can create 802.1Q sub-interfaces.
// It is probed once per process, in a scratch namespace.
func (m *Manager) SupportsVLAN() bool {
	ok, err := vlanProbe()
	if err != nil {
		m.log.Warn("probing 802.1Q support failed; assuming none", "err", err)
	}
	return ok
}

// Reconcile makes the namespace's L2 wiring what d describes and returns the
// status of each network and tap. It is level-triggered and idempotent: it
// reads the kernel, changes only what differs, and a second call with the
// same d changes nothing. A network that cannot be wired gets an error in
// the Result without stopping the others; the returned error is reserved for
// failures that leave the whole namespace unknown (the link list cannot be
// read, ctx is done).
func (m *Manager) Reconcile(ctx context.Context, d Desired) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	plan := Render(d)
	r := &run{h: m.h, log: m.log, tapErrs: map[string]error{}}
	if err := r.load(); err != nil {
		return Result{}, err
	}
	res := Result{Networks: map[string]NetworkStatus{}, Taps: map[string]TapStatus{}}
	underlay := r.underlay(d.LocalIP.Unmap())
	for _, np := range plan.Networks {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("reconcile: %w", err)
		}
		err := np.Err
		if err == nil && np.Type == TypeVLAN && !m.SupportsVLAN() {
			err = fmt.Errorf("vlan %s: %w", np.Device, ErrVLANUnsupported)
		}
		if err == nil {
			err = r.wireNetwork(np, underlay)
		}
		if err != nil {
			m.log.Warn("network not wired", "network", np.ID, "err", err)
		}
		res.Networks[np.ID] = NetworkStatus{Bridge: np.Bridge, Err: err}
	}
	if err := r.cleanup(plan); err != nil {
		m.log.Warn("stale links not removed", "err", err)
		res.Stale = err
	}
	if err := r.load(); err != nil {
		return res, err
	}
	res.Taps = r.tapStatus(plan, res.Networks)
	res.Changes = r.changes
	return res, nil
}

// run is the state of one Reconcile: the links it saw and what it changed.
type run struct {
	h       *netlink.Handle
	log     *slog.Logger
	links   map[string]netlink.Link
	byIdx   map[int]netlink.Link
	changes []string
	tapErrs map[string]error
}

// load (re)reads every link of the namespace.
func (r *run) load() error {
	var links []netlink.Link
	err := nlutil.RetryDump(func() (err error) {
		links, err = r.h.LinkList()
		return err
	})
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	r.links = make(map[string]netlink.Link, len(links))
	r.byIdx = make(map[int]netlink.Link, len(links))
	for _, l := range links {
		r.links[l.Attrs().Name] = l
		r.byIdx[l.Attrs().Index] = l
	}
	return nil
}

// byIndex finds a link by its index, among those loaded and not deleted since.
func (r *run) byIndex(index int) netlink.Link {
	if l := r.byIdx[index]; l != nil && r.links[l.Attrs().Name] == l {
		return l
	}
	return nil
}

// changed records and logs one kernel modification.
func (r *run) changed(format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	r.changes = append(r.changes, what)
	r.log.Info("l2 changed", "what", what)
}

// underlay is the index of the link holding the local VTEP address, or 0 when
// no link has it (yet): the vxlan device then works without a bound device.
func (r *run) underlay(local netip.Addr) int {
	if !local.IsValid() {
		return 0
	}
	fam := netlink.FAMILY_V4
	if local.Is6() {
		fam = netlink.FAMILY_V6
	}
	var addrs []netlink.Addr
	err := nlutil.RetryDump(func() (err error) {
		addrs, err = r.h.AddrList(nil, fam)
		return err
	})
	if err != nil {
		r.log.Warn("cannot list addresses to find the VTEP device", "err", err)
		return 0
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == local {
			return a.LinkIndex
		}
	}
	return 0
}

// wireNetwork ensures the bridge of a valid network, its device, its FDB and
// neighbour entries, and its ports. Without its bridge a network is not
// wired at all; any other failure is reported but does not keep the local
// ports off their bridge, where they can at least reach each other.
func (r *run) wireNetwork(np NetworkPlan, underlay int) error {
	br, err := r.ensureBridge(np.Links[0])
	if err != nil {
		return err
	}
	brIndex := br.Attrs().Index
	var errs []error
	for _, spec := range np.Links[1:] {
		switch spec.Kind {
		case KindVXLAN:
			dev, err := r.ensureVXLAN(spec, brIndex, underlay)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, r.syncFDB(dev, np.FDB), r.syncNeighbors(dev, np.Neighbors))
		case KindVLAN:
			errs = append(errs, r.ensureVLAN(spec, brIndex))
		case KindPhysical:
			l := r.links[spec.Name]
			if l == nil {
				errs = append(errs, fmt.Errorf("physical interface %s not found", spec.Name))
				continue
			}
			errs = append(errs, r.wirePort(l, spec, brIndex))
		case KindTap:
			if l := r.links[spec.Name]; l != nil {
				if err := r.wirePort(l, spec, brIndex); err != nil {
					r.tapErrs[spec.Name] = err
					r.log.Warn("tap not wired", "network", np.ID, "port", spec.Name, "err", err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// tapStatus reports, from the links as they are now, whether each desired tap
// exists and is wired to its network's bridge.
func (r *run) tapStatus(plan Plan, nets map[string]NetworkStatus) map[string]TapStatus {
	specs := map[string]LinkSpec{}
	for _, np := range plan.Networks {
		for _, l := range np.Links {
			if l.Kind == KindTap {
				specs[l.Name] = l
			}
		}
	}
	out := map[string]TapStatus{}
	for name, netID := range plan.desiredTaps() {
		st := TapStatus{Network: netID, Err: plan.TapErrs[name]}
		l := r.links[name]
		st.Exists = l != nil
		spec, ok := specs[name]
		if l != nil && ok {
			br := r.links[spec.Master]
			a := l.Attrs()
			st.Wired = br != nil && a.MasterIndex == br.Attrs().Index && isUp(l) &&
				(spec.MTU == 0 || a.MTU == spec.MTU)
		}
		if l != nil && !st.Wired && st.Err == nil {
			st.Err = r.tapErrs[name]
			if err := nets[netID].Err; err != nil {
				st.Err = fmt.Errorf("network %s is not wired: %w", netID, err)
			}
		}
		out[name] = st
	}
	return out
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

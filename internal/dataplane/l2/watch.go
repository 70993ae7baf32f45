package l2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// LinkEvent is a link appearing, changing or disappearing in a watched
// namespace; for the agent it is a reason to reconcile, not a diff to apply.
type LinkEvent struct {
	Name        string
	Index       int
	Kind        string // netlink link type: "tuntap", "veth", "bridge", "vxlan", ...
	Up          bool   // administratively up
	MasterIndex int
	Deleted     bool // the link is gone
	Existing    bool // reported by the initial listing, not a change
	// Resync is set, with no link, when the watch had to be re-established
	// or the kernel's listing was inconsistent: events may have been missed,
	// so reconcile everything.
	Resync bool
}

// Tap reports whether the event is about a tap device (a port).
func (e LinkEvent) Tap() bool { return strings.HasPrefix(e.Name, TapPrefix) }

// WatchLinks reports link changes in a network namespace ("" for the caller's,
// a name or a path as for New) until ctx is done, then closes the channel.
// It starts with one event per existing link (Existing set). Should the
// netlink subscription fail (a full socket buffer drops events, for one), it
// re-subscribes with backoff and sends a Resync event.
func WatchLinks(ctx context.Context, ns string) (<-chan LinkEvent, error) {
	return watchLinks(ctx, ns, nil)
}

// watchLinks is WatchLinks with a channel through which tests break the
// subscription.
func watchLinks(ctx context.Context, ns string, kick chan struct{}) (<-chan LinkEvent, error) {
	h, err := namedns.Open(ns)
	if err != nil {
		return nil, err
	}
	w := &watcher{ns: h, out: make(chan LinkEvent, 128), log: slog.Default().With("netns", ns), kick: kick}
	if w.sub, err = subscribe(h); err != nil {
		h.Close()
		return nil, err
	}
	go w.run(ctx)
	return w.out, nil
}

// watcher holds one WatchLinks: its namespace and current subscription.
type watcher struct {
	ns   netns.NsHandle
	out  chan LinkEvent
	log  *slog.Logger
	sub  *subscription
	kick chan struct{} // tests: break the subscription as a socket error would
}

// minBackoff and maxBackoff bound the wait between re-subscription attempts.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (w *watcher) run(ctx context.Context) {
	defer close(w.out)
	defer w.ns.Close()
	for {
		w.forward(ctx)
		w.sub.stop()
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("link watch lost; re-subscribing")
		if !w.resubscribe(ctx) {
			return
		}
		w.send(ctx, LinkEvent{Resync: true})
	}
}

// forward passes events on until ctx is done or the subscription ends.
func (w *watcher) forward(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
			w.sub.closeSocket()
		case err := <-w.sub.errs:
			if errors.Is(err, netlink.ErrDumpInterrupted) {
				w.send(ctx, LinkEvent{Resync: true})
				continue
			}
			if ctx.Err() == nil {
				w.log.Warn("link watch error", "err", err)
			}
		case u, ok := <-w.sub.updates:
			if !ok {
				return
			}
			w.send(ctx, eventOf(u))
		}
	}
}

// resubscribe retries with exponential backoff until it succeeds or ctx ends.
func (w *watcher) resubscribe(ctx context.Context) bool {
	wait := minBackoff
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		sub, err := subscribe(w.ns)
		if err == nil {
			w.sub = sub
			return true
		}
		w.log.Warn("link watch re-subscription failed", "err", err, "retry_in", wait)
		wait = min(2*wait, maxBackoff)
	}
}

func (w *watcher) send(ctx context.Context, ev LinkEvent) {
	select {
	case w.out <- ev:
	case <-ctx.Done():
	}
}

func eventOf(u netlink.LinkUpdate) LinkEvent {
	a := u.Link.Attrs()
	return LinkEvent{
		Name:        a.Name,
		Index:       a.Index,
		Kind:        u.Link.Type(),
		Up:          a.Flags&net.FlagUp != 0,
		MasterIndex: a.MasterIndex,
		Deleted:     u.Header.Type == unix.RTM_DELLINK,
		Existing:    u.Header.Flags&unix.NLM_F_MULTI != 0,
	}
}

// subscription is one netlink link subscription in a namespace.
type subscription struct {
	updates chan netlink.LinkUpdate
	done    chan struct{}
	errs    chan error
	stopped bool
}

// subscribe opens a subscription that first lists the existing links.
func subscribe(ns netns.NsHandle) (*subscription, error) {
	s := &subscription{
		updates: make(chan netlink.LinkUpdate, 64),
		done:    make(chan struct{}),
		errs:    make(chan error, 16),
	}
	err := netlink.LinkSubscribeWithOptions(s.updates, s.done, netlink.LinkSubscribeOptions{
		Namespace:    &ns,
		ListExisting: true,
		// Called on the library's receiving goroutine, which must not block.
		ErrorCallback: func(err error) {
			select {
			case s.errs <- err:
			default:
			}
		},
		ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		close(s.done) // releases the socket if the library opened it
		return nil, fmt.Errorf("subscribe to link changes: %w", err)
	}
	return s, nil
}

// closeSocket ends the subscription the way a socket error would: the
// library's receiver fails, reports it and closes updates.
func (s *subscription) closeSocket() {
	if !s.stopped {
		s.stopped = true
		close(s.done)
	}
}

// stop closes the subscription and drains updates, so the library's receiver,
// which may be blocked sending one, can see the closed socket and exit.
func (s *subscription) stop() {
	s.closeSocket()
	for range s.updates {
	}
}

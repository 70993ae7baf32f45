package l2

import (
	"context"
	"testing"
	"time"
)

// waitEvent reads events until one matches, failing the test after 5 s.
func waitEvent(t *testing.T, events <-chan LinkEvent, what string, match func(LinkEvent) bool) LinkEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch ended while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event for %s within 5s", what)
		}
	}
}

func TestTapAppearingWakesWatchAndNextReconcileWiresIt(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	h := newNS(t)
	tap := TapName(port1)
	d := Desired{Networks: []Network{{ID: netA, Type: TypeLocal, MTU: 1400, Taps: []string{tap}}}}
	m := h.manager(t)
	res := reconcile(t, m, d)
	if st := res.Taps[tap]; st.Exists || st.Wired || st.Err != nil {
		t.Fatalf("missing tap status %+v, want absent without error", st)
	}

	ctx, cancel := context.WithCancel(t.Context())
	kick := make(chan struct{})
	events, err := watchLinks(ctx, h.name, kick)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		for range events { // the watch closes the channel, and its namespace handle, on its way out
		}
	})
	waitEvent(t, events, "the existing bridge", func(e LinkEvent) bool {
		return e.Existing && e.Name == BridgeName(netA)
	})

	newVM(t, h, tap) // the hypervisor plugs the VM in
	ev := waitEvent(t, events, "the new tap", func(e LinkEvent) bool { return e.Name == tap })
	if ev.Existing || ev.Deleted || !ev.Tap() {
		t.Fatalf("event %+v, want a new tap", ev)
	}
	res = reconcile(t, m, d)
	if st := res.Taps[tap]; !st.Wired {
		t.Fatalf("tap status %+v after reconcile, want wired", st)
	}
	if got := h.link(t, tap).Attrs().MTU; got != 1400 {
		t.Errorf("tap mtu %d, want 1400", got)
	}

	// A broken subscription is re-established and announced with a Resync;
	// events keep coming afterwards.
	kick <- struct{}{}
	waitEvent(t, events, "a resync", func(e LinkEvent) bool { return e.Resync })
	if err := h.h.LinkDel(h.link(t, tap)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "the tap's removal", func(e LinkEvent) bool { return e.Name == tap && e.Deleted })
	res = reconcile(t, m, d)
	if st := res.Taps[tap]; st.Exists || st.Wired {
		t.Fatalf("tap status %+v after removal, want absent", st)
	}
}

package router

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// Gratuitous ARP: when a floating IP (or a gateway address) appears on a
// qg- device, or a floating IP is mapped to another fixed IP, the router
// announces the address from qg- so that the external network's hosts and
// switches learn its (possibly new) place at once instead of waiting for
// their entries to go stale. Like Neutron's arping, it announces three
// times, garpInterval apart; the first goes out before Reconcile returns.

// garpCount and garpInterval pace the announcements of one address.
const (
	garpCount    = 3
	garpInterval = 500 * time.Millisecond
)

// garpFrame is an ARP request for ip from ip (sender = target, the form
// Linux treats as gratuitous and lets override an existing neighbour
// entry), broadcast from mac.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // destination
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1) // hardware: ethernet
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IP)
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, 1) // request
	a := ip.As4()
	f = append(f, mac...)
	f = append(f, a[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0) // target hardware address: unknown
	f = append(f, a[:]...)
	return f
}

// announcer sends the gratuitous ARPs of one device.
type announcer struct {
	fd      int
	ifindex int
	frames  [][]byte
}

// newAnnouncer opens a packet socket inside namespace h for the device
// ifindex (a socket stays in the namespace it was made in) and prepares a
// frame per address.
func newAnnouncer(h netns.NsHandle, ifindex int, mac net.HardwareAddr, addrs []netip.Addr) (*announcer, error) {
	a := &announcer{fd: -1, ifindex: ifindex}
	for _, ip := range addrs {
		if ip.Is4() {
			a.frames = append(a.frames, garpFrame(mac, ip))
		}
	}
	if len(a.frames) == 0 {
		return nil, nil
	}
	err := namedns.DoIn(h, func() error {
		// Protocol 0: the socket sends only and queues nothing received.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		a.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// send sends every frame once; the first error stops it.
func (a *announcer) send() error {
	to := &unix.SockaddrLinklayer{Ifindex: a.ifindex, Protocol: htons(unix.ETH_P_ARP), Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for _, f := range a.frames {
		if err := unix.Sendto(a.fd, f, 0, to); err != nil {
			return fmt.Errorf("send gratuitous ARP: %w", err)
		}
	}
	return nil
}

// repeat sends the remaining announcements in the background, then closes
// the socket; done is called at the end. A device that went away ends it.
func (a *announcer) repeat(ctx context.Context, done func()) {
	go func() {
		defer done()
		defer unix.Close(a.fd)
		t := time.NewTicker(garpInterval)
		defer t.Stop()
		for range garpCount - 1 {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if a.send() != nil {
				return
			}
		}
	}()
}

func (a *announcer) close() { unix.Close(a.fd) }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

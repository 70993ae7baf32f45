// Package nlutil holds the netlink idioms every data-plane package needs:
// reading a link that may not exist, and dumps the kernel interrupted
// because the table changed under them.
package nlutil

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkByName returns the link, or nil when there is none.
func LinkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err == nil {
		return l, nil
	}
	if IgnoreNotFound(err) == nil {
		return nil, nil
	}
	return nil, fmt.Errorf("read %s: %w", name, err)
}

// ListLinks lists a namespace's links, retrying an interrupted dump.
func ListLinks(h *netlink.Handle) ([]netlink.Link, error) {
	var links []netlink.Link
	err := RetryDump(func() (err error) {
		links, err = h.LinkList()
		return err
	})
	return links, err
}

// RetryDump repeats a netlink dump the kernel interrupted because the table
// changed under it; a few retries make a consistent view overwhelmingly
// likely.
func RetryDump(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// IgnoreNotFound treats "already gone" as success.
func IgnoreNotFound(err error) error {
	var lnf netlink.LinkNotFoundError
	if errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

package devcluster

import (
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// underlayMTU is the MTU of the data network; VXLAN networks get 50 less.
const underlayMTU = 1500

// buildFabric creates the fabric namespace and its data-network bridge.
func buildFabric(prefix string) error {
	ns := fabricNS(prefix)
	if err := namedns.Create(ns); err != nil {
		return err
	}
	h, err := namedns.Handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name = fabricBridge(prefix)
	la.MTU = underlayMTU
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return fmt.Errorf("create bridge %s in %s: %w", la.Name, ns, err)
	}
	return linkUp(h, la.Name)
}

// buildHost creates a host namespace attached to the fabric: eth1 inside
// holds the VXLAN endpoint address, its peer <p>-<host> is a port of the
// fabric bridge.
func buildHost(prefix string, host Host) error {
	if err := namedns.Create(host.Namespace); err != nil {
		return err
	}
	hh, err := namedns.Handle(host.Namespace)
	if err != nil {
		return err
	}
	defer hh.Close()
	if err := linkUp(hh, "lo"); err != nil {
		return err
	}
	fabric, err := netns.GetFromName(fabricNS(prefix))
	if err != nil {
		return fmt.Errorf("open fabric namespace: %w", err)
	}
	defer fabric.Close()
	la := netlink.NewLinkAttrs()
	la.Name = hostUplink
	la.MTU = underlayMTU
	veth := &netlink.Veth{LinkAttrs: la, PeerName: host.FabricLink, PeerNamespace: netlink.NsFd(fabric)}
	if err := hh.LinkAdd(veth); err != nil {
		return fmt.Errorf("create %s in %s paired with %s: %w", hostUplink, host.Namespace, host.FabricLink, err)
	}
	ip, err := netip.ParsePrefix(host.LocalIP + "/24")
	if err != nil {
		return err
	}
	if err := addAddr(hh, hostUplink, ip); err != nil {
		return err
	}
	if err := linkUp(hh, hostUplink); err != nil {
		return err
	}
	fh, err := netlink.NewHandleAt(fabric)
	if err != nil {
		return fmt.Errorf("netlink in fabric: %w", err)
	}
	defer fh.Close()
	br, err := fh.LinkByName(fabricBridge(prefix))
	if err != nil {
		return fmt.Errorf("fabric bridge: %w", err)
	}
	port, err := fh.LinkByName(host.FabricLink)
	if err != nil {
		return fmt.Errorf("fabric link %s: %w", host.FabricLink, err)
	}
	if err := fh.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", host.FabricLink, br.Attrs().Name, err)
	}
	return linkUp(fh, host.FabricLink)
}

// setFabricLink takes a host's fabric link up or down: down cuts the host
// off the data network as a pulled cable would.
func setFabricLink(prefix string, host Host, up bool) error {
	h, err := namedns.Handle(fabricNS(prefix))
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(host.FabricLink)
	if err != nil {
		return fmt.Errorf("fabric link of %s: %w", host.Name, err)
	}
	if up {
		err = h.LinkSetUp(l)
	} else {
		err = h.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set fabric link of %s up=%v: %w", host.Name, up, err)
	}
	return nil
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// addAddr adds an address to a link; IPv6 addresses skip duplicate address
// detection, as nothing else in a dev cluster could hold them.
func addAddr(h *netlink.Handle, link string, p netip.Prefix) error {
	l, err := h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("find %s: %w", link, err)
	}
	a, err := netlink.ParseAddr(p.String())
	if err != nil {
		return err
	}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add %s to %s: %w", p, link, err)
	}
	return nil
}

// removeNetworking deletes every namespace named <prefix>-… and every link
// of the root namespace named <prefix>-… (the cluster creates none there;
// this catches anything a crash or another tool left).
func removeNetworking(prefix string, log *slog.Logger) []error {
	var errs []error
	nss, err := namedns.WithPrefix(prefix + "-")
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nss {
		if err := namedns.Delete(ns); err != nil {
			errs = append(errs, err)
		} else {
			log.Debug("namespace deleted", "netns", ns)
		}
	}
	root, err := netlink.NewHandle()
	if err != nil {
		return append(errs, fmt.Errorf("netlink: %w", err))
	}
	defer root.Close()
	links, err := listLinks(root)
	if err != nil {
		return append(errs, fmt.Errorf("list root links: %w", err))
	}
	for _, l := range links {
		if !strings.HasPrefix(l.Attrs().Name, prefix+"-") {
			continue
		}
		if err := root.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", l.Attrs().Name, err))
		} else {
			log.Warn("removed a root-namespace link with the cluster's prefix", "link", l.Attrs().Name)
		}
	}
	return errs
}

// listLinks lists the links of a handle's namespace, retrying a dump the
// kernel interrupted because links changed meanwhile (netlink then returns
// partial results with ErrDumpInterrupted).
func listLinks(h *netlink.Handle) ([]netlink.Link, error) {
	for range 10 {
		links, err := h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return links, err
		}
	}
	return nil, fmt.Errorf("list links: %w", netlink.ErrDumpInterrupted)
}

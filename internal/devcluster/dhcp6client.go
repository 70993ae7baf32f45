package devcluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
)

// IPv6 of VMs, as a guest does it: in a subnet whose ipv6_address_mode is
// slaac or dhcpv6-stateless (and whose ipv6_ra_mode makes the network send
// router advertisements) the VM's kernel makes the address itself from the
// RA's prefix and its MAC (EUI-64), which must be exactly the address the
// API shows; in a dhcpv6-stateful subnet Debian's ISC dhclient -6 asks the
// agent's DHCPv6 server for it, with the script below.
const (
	dhclientScriptName = "dhclient6.script"
	dhclientConfName   = "dhclient6.conf"
	// v6Timeout bounds the wait for a SLAAC or DHCPv6 address: duplicate
	// address detection alone takes a second or two.
	v6Timeout = 30 * time.Second
)

// dhclientScript is the dhclient script of the cluster's VMs: it runs inside
// the VM's namespace and configures only its interface (never resolv.conf),
// recording each event in $VLAND_LEASE_FILE. DHCPv6 carries no prefix
// length; the address gets its subnet's ($VLAND_PREFIXLEN6), as a guest that
// also has the RA's on-link prefix would route it. dhclient runs its script
// with an environment of its own making, so each VM gets a wrapper
// (<vm>.dhclient6.sh) that sets those two and runs this one.
const dhclientScript = `#!/bin/sh
# Written by vland dev. dhclient -6 script for the VMs of a dev cluster:
# configures $interface of the network namespace it runs in, nothing else.
plen="${VLAND_PREFIXLEN6:-128}"
record() {
	[ -n "${VLAND_LEASE_FILE:-}" ] || return 0
	{
		echo "event=$reason"
		echo "ip6=${new_ip6_address:-}"
		echo "old_ip6=${old_ip6_address:-}"
		echo "dns6=${new_dhcp6_name_servers:-}"
		echo "domain6=${new_dhcp6_domain_search:-}"
	} >"$VLAND_LEASE_FILE.tmp" && mv -f "$VLAND_LEASE_FILE.tmp" "$VLAND_LEASE_FILE"
}
case "$reason" in
PREINIT6)
	ip link set dev "$interface" up
	;;
BOUND6|RENEW6|REBIND6|REBOOT6)
	if [ -n "${old_ip6_address:-}" ] && [ "${old_ip6_address}" != "${new_ip6_address:-}" ]; then
		ip -6 addr del "$old_ip6_address/$plen" dev "$interface" 2>/dev/null
	fi
	if [ -n "${new_ip6_address:-}" ]; then
		ip -6 addr replace "$new_ip6_address/$plen" dev "$interface" valid_lft "${new_max_life:-forever}" preferred_lft "${new_preferred_life:-forever}"
	fi
	record
	;;
DEPREF6)
	record
	;;
EXPIRE6|RELEASE6|STOP6)
	[ -n "${old_ip6_address:-}" ] && ip -6 addr del "$old_ip6_address/$plen" dev "$interface" 2>/dev/null
	record
	;;
esac
exit 0
`

// dhclientConf asks for DNS and the search list besides the address.
const dhclientConf = "request dhcp6.name-servers, dhcp6.domain-search;\n"

// dhclientFiles writes the script and configuration, if not there as they
// should be, and returns their paths.
func (c *Cluster) dhclientFiles() (script, conf string, err error) {
	dir := filepath.Join(c.Dir(), dhcpDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{{dhclientScriptName, dhclientScript, 0o755}, {dhclientConfName, dhclientConf, 0o644}} {
		path := filepath.Join(dir, f.name)
		if b, err := os.ReadFile(path); err == nil && string(b) == f.body {
			continue
		}
		if err := writeFileAtomic(path, []byte(f.body), f.mode); err != nil {
			return "", "", err
		}
	}
	return filepath.Join(dir, dhclientScriptName), filepath.Join(dir, dhclientConfName), nil
}

func (c *Cluster) lease6File(vm string) string {
	return filepath.Join(c.Dir(), dhcpDir, vm+".lease6")
}

// VMLease6 returns the last DHCPv6 record of a VM with a stateful address.
func (c *Cluster) VMLease6(name string) (Lease, error) {
	if _, err := c.VM(name); err != nil {
		return nil, err
	}
	return readLease(c.lease6File(name))
}

// obtainLease6 runs dhclient -6 in the VM (DUID-LL from eth0's MAC, its own
// lease and pid files) and waits until the port's address want is on eth0.
func (c *Cluster) obtainLease6(ctx context.Context, vm *VM, want netip.Prefix) error {
	bin, err := exec.LookPath("dhclient")
	if err != nil {
		return fmt.Errorf("VM %s: dhclient is not installed (Debian package isc-dhcp-client; `make deps`)", vm.Name)
	}
	script, conf, err := c.dhclientFiles()
	if err != nil {
		return err
	}
	// dhclient binds to the link-local address, which must have passed
	// duplicate address detection first.
	if err := waitAddr(ctx, vm, func(a netip.Addr) bool { return a.IsLinkLocalUnicast() }, "an IPv6 link-local address"); err != nil {
		return err
	}
	dir := filepath.Join(c.Dir(), dhcpDir)
	leasePath := c.lease6File(vm.Name)
	_ = os.Remove(leasePath)
	args := []string{"-6", "-d", "-D", "LL", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, vm.Name+".dhclient6.leases"), "-pf", filepath.Join(dir, vm.Name+".dhclient6.pid"), vmIface}
	wrapper := filepath.Join(dir, vm.Name+".dhclient6.sh")
	body := "#!/bin/sh\nexport VLAND_LEASE_FILE=" + shellQuote(leasePath) + " VLAND_PREFIXLEN6=" + strconv.Itoa(want.Bits()) +
		"\nexec " + shellQuote(script) + " \"$@\"\n"
	if err := writeFileAtomic(wrapper, []byte(body), 0o755); err != nil {
		return err
	}
	args[7] = wrapper // -sf
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	logPath := filepath.Join(c.Dir(), "logs", "dhclient6-"+vm.Name+".log")
	p, err := startDetachedIn(vm.Namespace, bin, args, env, logPath)
	if err != nil {
		return fmt.Errorf("VM %s: DHCPv6 client: %w", vm.Name, err)
	}
	vm.DHCP6Client = p
	if err := c.saveVM(*vm); err != nil {
		return err
	}
	start := time.Now()
	if err := waitAddr(ctx, vm, func(a netip.Addr) bool { return a == want.Addr() }, "DHCPv6 address "+want.Addr().String()); err != nil {
		l, _ := readLease(leasePath)
		return fmt.Errorf("%w (dhclient's last record: %v; log: %s)", err, l, tail(logPath, 1000))
	}
	c.log.Info("VM leased its IPv6 address by DHCPv6", "vm", vm.Name, "ip", want, "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitSLAAC waits until the VM's kernel has made the port's address want
// from a router advertisement, and fails if it made another global one
// in that prefix instead.
func (c *Cluster) waitSLAAC(ctx context.Context, vm *VM, want netip.Prefix) error {
	start := time.Now()
	if err := waitAddr(ctx, vm, func(a netip.Addr) bool { return a == want.Addr() }, "SLAAC address "+want.Addr().String()); err != nil {
		return err
	}
	c.log.Info("VM configured its IPv6 address by SLAAC", "vm", vm.Name, "ip", want, "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitAddr waits until eth0 of the VM has a usable (not tentative) IPv6
// address for which match is true.
func waitAddr(ctx context.Context, vm *VM, match func(netip.Addr) bool, what string) error {
	var have []string
	err := poll(ctx, v6Timeout, 50*time.Millisecond, what, func() (bool, error) {
		h, err := namedns.Handle(vm.Namespace)
		if err != nil {
			return false, permanent{err}
		}
		defer h.Close()
		eth, err := h.LinkByName(vmIface)
		if err != nil {
			return false, permanent{err}
		}
		list, err := h.AddrList(eth, netlink.FAMILY_V6)
		if err != nil {
			return false, nil
		}
		have = have[:0]
		for _, a := range list {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			have = append(have, a.IPNet.String())
			if match(ip) && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("VM %s: no %s on %s (it has %v): %w", vm.Name, what, vmIface, have, err)
	}
	return nil
}

// stopDHCP6Client ends a VM's DHCPv6 client, if it runs.
func stopDHCP6Client(vm VM) error {
	if vm.DHCP6Client.PID == 0 {
		return nil
	}
	if err := vm.DHCP6Client.stop(2 * time.Second); err != nil {
		return fmt.Errorf("DHCPv6 client of VM %s: %w", vm.Name, err)
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

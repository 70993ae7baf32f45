package devcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// DHCP of VMs: a VM whose port has an address in a DHCP-enabled IPv4 subnet
// gets it, with its routes and MTU, from Debian's busybox udhcpc, started in
// the VM's namespace and left running there to renew, as a real guest's
// client would. udhcpc runs the script below, which the cluster writes into
// <dir>/dhcp/: it configures only the interface of the namespace it runs in
// and records the lease in <dir>/dhcp/<vm>.lease.
const (
	// dhcpDir holds the script and the leases, under the cluster directory.
	dhcpDir = "dhcp"
	// dhcpScriptName is the udhcpc script's file name there.
	dhcpScriptName = "udhcpc.script"
	// dhcpPortWait bounds the wait for the network's DHCP port, which the
	// server's scheduler creates on a network host shortly after a subnet.
	dhcpPortWait = 5 * time.Second
	// dhcpLeaseTimeout bounds the wait for a VM's first lease after its
	// port is ACTIVE, unless VMOptions.DHCPTimeout says otherwise.
	dhcpLeaseTimeout = 30 * time.Second
)

// udhcpcScript is the busybox udhcpc script of the cluster's VMs. udhcpc
// calls it with the event as $1 and the lease in variables (ip, mask,
// router, mtu, staticroutes…); it runs inside the VM's network namespace,
// like udhcpc, so every `ip` command changes that namespace only. It writes
// no resolv.conf and nothing else outside the namespace but the lease record
// ($VLAND_LEASE_FILE, in the cluster directory). Addresses it adds carry the
// label <interface>:dhcp and routes the protocol "dhcp", so it removes only
// what it added (static IPv6 addresses stay). With option 121 the router
// option is ignored, as RFC 3442 requires; 0.0.0.0 as a next hop means
// on-link. Routes are replaced only when the lease's address or routes
// changed, so a renewal disturbs nothing.
const udhcpcScript = `#!/bin/sh
# Written by vland dev. busybox udhcpc script for the VMs of a dev cluster:
# configures $interface of the network namespace it runs in, nothing else.
ev="$1"
label="$interface:dhcp"
lease_file="${VLAND_LEASE_FILE:-}"

record() {
	[ -n "$lease_file" ] || return 0
	seq=0
	[ -f "$lease_file" ] && seq=$(sed -n 's/^seq=//p' "$lease_file")
	{
		echo "seq=$((${seq:-0} + 1))"
		echo "event=$ev"
		for v in interface ip mask subnet broadcast router mtu staticroutes dns domain hostname lease serverid message; do
			eval "echo \"$v=\${$v:-}\""
		done
		echo "key=$1"
	} >"$lease_file.tmp" && mv -f "$lease_file.tmp" "$lease_file"
}

unconfigure() {
	ip -4 route flush dev "$interface" proto dhcp 2>/dev/null
	ip -4 addr flush dev "$interface" label "$label"
}

case "$ev" in
deconfig)
	ip link set dev "$interface" up
	unconfigure
	record ""
	;;
bound|renew)
	[ -n "${mtu:-}" ] && ip link set dev "$interface" mtu "$mtu"
	key="$ip/$mask ${router:-} ${staticroutes:-}"
	old=""
	[ -n "$lease_file" ] && [ -f "$lease_file" ] && old=$(sed -n 's/^key=//p' "$lease_file")
	set -- $(ip -4 -o addr show dev "$interface" label "$label")
	if [ "${4:-}" != "$ip/$mask" ] || [ "$key" != "$old" ]; then
		unconfigure
		ip addr add "$ip/$mask" broadcast "${broadcast:-+}" dev "$interface" label "$label"
		if [ -n "${staticroutes:-}" ]; then
			set -- $staticroutes
			while [ $# -ge 2 ]; do
				if [ "$2" = 0.0.0.0 ]; then
					ip route add "$1" dev "$interface" proto dhcp
				else
					ip route add "$1" via "$2" dev "$interface" proto dhcp
				fi
				shift 2
			done
		elif [ -n "${router:-}" ]; then
			set -- $router
			ip route add default via "$1" dev "$interface" proto dhcp
		fi
	fi
	record "$key"
	;;
leasefail|nak)
	record ""
	;;
esac
exit 0
`

// dhcpScript writes the cluster's udhcpc script, if it is not there as it
// should be, and returns its path.
func (c *Cluster) dhcpScript() (string, error) {
	dir := filepath.Join(c.Dir(), dhcpDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, dhcpScriptName)
	if b, err := os.ReadFile(path); err == nil && string(b) == udhcpcScript {
		return path, nil
	}
	if err := writeFileAtomic(path, []byte(udhcpcScript), 0o755); err != nil {
		return "", err
	}
	return path, nil
}

func (c *Cluster) leaseFile(vm string) string {
	return filepath.Join(c.Dir(), dhcpDir, vm+".lease")
}

// Lease is what a VM's DHCP client last recorded: the script's variables
// (ip, mask, router, mtu, staticroutes, dns, domain, hostname, lease,
// serverid…), the event that brought them (bound, renew, nak…) and seq,
// which counts the records since the client started.
type Lease map[string]string

// VMLease returns the last lease record of a VM that uses DHCP.
func (c *Cluster) VMLease(name string) (Lease, error) {
	v, err := c.VM(name)
	if err != nil {
		return nil, err
	}
	if !v.DHCP {
		return nil, fmt.Errorf("VM %s is configured statically", name)
	}
	return readLease(c.leaseFile(name))
}

func readLease(path string) (Lease, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	l := Lease{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			l[k] = v
		}
	}
	return l, sc.Err()
}

// RenewVMLease makes a VM's DHCP client renew now (udhcpc's SIGUSR1), as
// a guest does when its renewal time comes.
func (c *Cluster) RenewVMLease(name string) error {
	v, err := c.VM(name)
	if err != nil {
		return err
	}
	if !v.DHCP || !v.DHCPClient.Running() {
		return fmt.Errorf("VM %s has no DHCP client running", name)
	}
	return syscall.Kill(v.DHCPClient.PID, syscall.SIGUSR1)
}

// useDHCP decides whether the VM gets its IPv4 address by DHCP: its port
// must have an address in a DHCP-enabled IPv4 subnet, and the network a
// DHCP port, which the server schedules to a network host. Without a live
// network host, or when no DHCP port appears within dhcpPortWait, the VM
// is configured statically (and a warning says why).
func (c *Cluster) useDHCP(ctx context.Context, vm *VM, addrs []portAddr) (bool, error) {
	wants := false
	for _, a := range addrs {
		wants = wants || a.DHCP || a.Auto6 != ""
	}
	if !wants {
		return false, nil
	}
	networkHost := false
	for _, h := range c.State().Hosts {
		networkHost = networkHost || h.Role == RoleNetwork && !h.Down
	}
	if !networkHost {
		c.log.Info("no network host serves DHCP: VM configured statically", "vm", vm.Name, "network", vm.NetworkID)
		return false, nil
	}
	q := "/v2.0/ports?device_owner=network%3Adhcp&network_id=" + url.QueryEscape(vm.NetworkID)
	err := poll(ctx, dhcpPortWait, 200*time.Millisecond, "DHCP port of network "+vm.NetworkID, func() (bool, error) {
		var out struct {
			Ports []port `json:"ports"`
		}
		if err := c.Admin().Do(ctx, http.MethodGet, q, nil, &out); err != nil {
			return false, err
		}
		return len(out.Ports) > 0, nil
	})
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		c.log.Warn("the network has DHCP enabled but no DHCP port: VM configured statically", "vm", vm.Name, "network", vm.NetworkID, "err", err)
		return false, nil
	}
	return true, nil
}

// udhcpcCommand finds busybox udhcpc: the udhcpc command (Debian's udhcpc
// package), else the busybox applet.
func udhcpcCommand() (string, []string, error) {
	if p, err := exec.LookPath("udhcpc"); err == nil {
		return p, nil, nil
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		return p, []string{"udhcpc"}, nil
	}
	return "", nil, errors.New("busybox udhcpc is not installed (Debian packages udhcpc, busybox; `make deps`)")
}

// obtainLease starts the VM's DHCP client in its namespace, records it in
// the state, and waits until the lease is configured on eth0: the port's
// address want, with the subnet's prefix length. It fails, naming the VM and
// its port, when no lease arrives within timeout or the lease is not the
// port's.
func (c *Cluster) obtainLease(ctx context.Context, vm *VM, want netip.Prefix, timeout time.Duration) error {
	script, err := c.dhcpScript()
	if err != nil {
		return err
	}
	bin, args, err := udhcpcCommand()
	if err != nil {
		return fmt.Errorf("VM %s: %w", vm.Name, err)
	}
	leasePath := c.leaseFile(vm.Name)
	if err := os.Remove(leasePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Foreground (-f), so the recorded pid is the client's; it DISCOVERs
	// every second (-t 3 -T 1, then -A 1 of pause) until it has a lease and
	// then renews as the lease says. MTU and classless routes are asked
	// for explicitly.
	args = append(args, "-f", "-i", vmIface, "-s", script, "-t", "3", "-T", "1", "-A", "1", "-O", "mtu", "-O", "staticroutes")
	env := []string{"VLAND_LEASE_FILE=" + leasePath, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	logPath := filepath.Join(c.Dir(), "logs", "udhcpc-"+vm.Name+".log")
	p, err := startDetachedIn(vm.Namespace, bin, args, env, logPath)
	if err != nil {
		return fmt.Errorf("VM %s: DHCP client: %w", vm.Name, err)
	}
	vm.DHCPClient = p
	if err := c.saveVM(*vm); err != nil {
		return err
	}
	start := time.Now()
	var got Lease
	err = poll(ctx, timeout, 50*time.Millisecond, "DHCP lease", func() (bool, error) {
		if !p.Running() {
			return false, permanent{fmt.Errorf("udhcpc exited: %s", tail(logPath, 1000))}
		}
		l, err := readLease(leasePath)
		if err != nil {
			return false, nil
		}
		got = l
		return l["event"] == "bound" || l["event"] == "renew", nil
	})
	if err != nil {
		last := got["event"]
		if last == "" {
			last = "none"
		}
		return fmt.Errorf("VM %s: no DHCP lease for its port %s (MAC %s): %w (udhcpc's last event: %s; is the network's DHCP port ACTIVE on a network host? see %s and the agents' logs)",
			vm.Name, vm.PortID, vm.MAC, err, last, logPath)
	}
	if got["ip"]+"/"+got["mask"] != want.String() {
		return fmt.Errorf("VM %s: DHCP leased %s/%s, but its port %s has %s", vm.Name, got["ip"], got["mask"], vm.PortID, want)
	}
	if err := checkLeaseConfigured(vm, want); err != nil {
		return fmt.Errorf("%w (udhcpc log: %s)", err, tail(logPath, 1000))
	}
	c.log.Info("VM leased its address by DHCP", "vm", vm.Name, "ip", got["ip"]+"/"+got["mask"], "router", got["router"],
		"mtu", got["mtu"], "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkLeaseConfigured verifies that the script configured the leased
// address on the VM's eth0.
func checkLeaseConfigured(vm *VM, want netip.Prefix) error {
	h, err := namedns.Handle(vm.Namespace)
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName(vmIface)
	if err != nil {
		return fmt.Errorf("VM %s: %w", vm.Name, err)
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("VM %s: addresses: %w", vm.Name, err)
	}
	var have []string
	for _, a := range addrs {
		have = append(have, a.IPNet.String())
		if a.IPNet.String() == want.String() {
			return nil
		}
	}
	return fmt.Errorf("VM %s: leased %s but eth0 has %v", vm.Name, want, have)
}

// stopDHCPClient ends a VM's DHCP client, if it runs.
func stopDHCPClient(vm VM) error {
	if vm.DHCPClient.PID == 0 {
		return nil
	}
	if err := vm.DHCPClient.stop(2 * time.Second); err != nil {
		return fmt.Errorf("DHCP client of VM %s: %w", vm.Name, err)
	}
	return nil
}

// portAddr is one address of a port with what its subnet says about it.
type portAddr struct {
	Prefix  netip.Prefix // the address with its subnet's prefix length
	Gateway netip.Addr   // the subnet's gateway_ip; invalid when none
	DHCP    bool         // IPv4 in a subnet with enable_dhcp
	Auto6   string       // IPv6 configured by the guest: auto6SLAAC, auto6DHCP or "" (static)
}

// How a VM's IPv6 address is configured.
const (
	auto6SLAAC = "slaac"
	auto6DHCP  = "dhcpv6"
)

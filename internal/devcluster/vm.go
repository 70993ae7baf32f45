package devcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/l2"
)

// portActiveTimeout bounds the wait for a new VM's port to become ACTIVE.
const portActiveTimeout = 30 * time.Second

// VMOptions describe a VM to create.
type VMOptions struct {
	Name    string
	Network string // name or id of a network of the cloud's project
	Host    string // default: the compute host with the fewest VMs
	Cloud   string // default: <N>-demo
	IP      string // a fixed IP to ask for (default: IPAM chooses)
	// DHCPTimeout bounds the wait for the VM's DHCP lease once its port is
	// ACTIVE (default 30s).
	DHCPTimeout time.Duration
	// SecurityGroups names (or ids) the port's security groups; none means
	// the project's default group, as for a Nova server.
	SecurityGroups []string
	// NoPortSecurity creates the port without port security (and so
	// without security groups): no filtering, no anti-spoofing.
	NoPortSecurity bool
	// UserData and Keys (name -> OpenSSH public key), when set, become the
	// VM's instance metadata (PUT /v2.0/instance-metadata/{device_id}),
	// which the metadata service at 169.254.169.254 answers it.
	UserData []byte
	Keys     map[string]string
}

// port is the part of a Neutron port the cluster reads.
type port struct {
	ID         string `json:"id"`
	MACAddress string `json:"mac_address"`
	Status     string `json:"status"`
	VIFType    string `json:"binding:vif_type"`
	FixedIPs   []struct {
		SubnetID  string `json:"subnet_id"`
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

// network is the part of a Neutron network the cluster reads.
type network struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	MTU       int    `json:"mtu"`
}

// CreateVM creates a port on the network as the cloud's project, binds it to
// a host as admin, builds the VM namespace wired to the port's tap on that
// host, and waits until the port is ACTIVE. When the port has an address in
// a DHCP-enabled IPv4 subnet and the network has a DHCP port, the VM then
// obtains that address, its routes and MTU by DHCP with busybox udhcpc,
// which keeps running in the VM's namespace (see obtainLease); otherwise
// its addresses and default routes are configured statically. On failure
// nothing is left.
func (c *Cluster) CreateVM(ctx context.Context, o VMOptions) (*VM, error) {
	if err := validVMName(o.Name); err != nil {
		return nil, err
	}
	if o.Cloud == "" {
		o.Cloud = c.Name() + "-demo"
	}
	cl, err := c.Client(o.Cloud)
	if err != nil {
		return nil, err
	}
	projectID, err := cl.ProjectID(ctx)
	if err != nil {
		return nil, err
	}
	nw, err := findNetwork(ctx, cl, projectID, o.Network)
	if err != nil {
		return nil, err
	}
	vm := VM{Name: o.Name, Cloud: o.Cloud, ProjectID: projectID, Host: o.Host, NetworkID: nw.ID, MTU: nw.MTU}
	if err := c.update(func(st *State) error { return reserveVM(st, &vm) }); err != nil {
		return nil, err
	}
	if o.DHCPTimeout <= 0 {
		o.DHCPTimeout = dhcpLeaseTimeout
	}
	if err := c.wireVM(ctx, cl, &vm, o); err != nil {
		return nil, errors.Join(err, c.DeleteVM(context.WithoutCancel(ctx), o.Name))
	}
	c.log.Info("VM ready", "vm", vm.Name, "host", vm.Host, "ip", vm.IP, "port", vm.PortID)
	return &vm, nil
}

// reserveVM records a new VM in the state, choosing its host, so that
// concurrent creations neither reuse the name nor pile onto one host.
func reserveVM(st *State, vm *VM) error {
	if slices.ContainsFunc(st.VMs, func(v VM) bool { return v.Name == vm.Name }) {
		return fmt.Errorf("VM %q exists", vm.Name)
	}
	if vm.Host == "" {
		best := -1
		for _, h := range st.Hosts {
			if h.Role != RoleCompute || h.Down {
				continue
			}
			n := 0
			for _, v := range st.VMs {
				if v.Host == h.Name {
					n++
				}
			}
			if best < 0 || n < best {
				best, vm.Host = n, h.Name
			}
		}
		if best < 0 {
			return errors.New("no compute host is up")
		}
	} else if !slices.ContainsFunc(st.Hosts, func(h Host) bool { return h.Name == vm.Host }) {
		return fmt.Errorf("cluster has no host %q", vm.Host)
	}
	vm.Namespace = vmNS(st.Prefix, vm.Name)
	st.VMs = append(st.VMs, *vm)
	return nil
}

// wireVM creates and binds the port, builds the namespace, waits for the
// port to become ACTIVE and, when the VM uses DHCP, for its lease,
// recording progress in the state.
func (c *Cluster) wireVM(ctx context.Context, cl *Client, vm *VM, o VMOptions) error {
	p, err := createPort(ctx, cl, vm, o)
	if err != nil {
		return err
	}
	vm.PortID, vm.MAC = p.ID, p.MACAddress
	if err := c.saveVM(*vm); err != nil {
		return err
	}
	if err := setInstanceMetadata(ctx, cl, *vm, o); err != nil {
		return err
	}
	if err := c.bindPort(ctx, vm); err != nil {
		return err
	}
	addrs, err := portAddresses(ctx, cl, p)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		vm.CIDRs = append(vm.CIDRs, a.Prefix.String())
		if vm.IP == "" && a.Prefix.Addr().Is4() {
			vm.IP = a.Prefix.Addr().String()
		}
	}
	if vm.IP == "" && len(addrs) > 0 {
		vm.IP = addrs[0].Prefix.Addr().String()
	}
	auto, err := c.useDHCP(ctx, vm, addrs)
	if err != nil {
		return err
	}
	vm.DHCP = auto && slices.ContainsFunc(addrs, func(a portAddr) bool { return a.DHCP })
	// The DHCP client configures the port's first address in a
	// DHCP-enabled IPv4 subnet (a DHCP server answers a MAC with one
	// address, that one), with the IPv4 routes and the MTU; the rest is
	// static.
	var static []netip.Prefix
	var gws []netip.Addr
	var lease netip.Prefix
	var slaac, dhcp6 []netip.Prefix
	for _, a := range addrs {
		if vm.DHCP && a.DHCP && !lease.IsValid() {
			lease = a.Prefix
			continue
		}
		if auto && a.Auto6 == auto6SLAAC {
			slaac = append(slaac, a.Prefix)
			continue
		}
		if auto && a.Auto6 == auto6DHCP && len(dhcp6) == 0 {
			dhcp6 = append(dhcp6, a.Prefix) // one address per IA_NA answer: the first
			continue
		}
		static = append(static, a.Prefix)
		if a.Gateway.IsValid() && !(vm.DHCP && a.Gateway.Is4()) &&
			!slices.ContainsFunc(gws, func(g netip.Addr) bool { return g.Is4() == a.Gateway.Is4() }) {
			gws = append(gws, a.Gateway)
		}
	}
	if err := c.saveVM(*vm); err != nil {
		return err
	}
	host, err := c.host(vm.Host)
	if err != nil {
		return err
	}
	mtu := vm.MTU
	if vm.DHCP {
		mtu = 0 // the kernel's default until the lease sets the network's
	}
	if err := buildVM(*vm, host.Namespace, static, gws, mtu); err != nil {
		return err
	}
	if err := c.waitPortStatus(ctx, vm.PortID, "ACTIVE", portActiveTimeout); err != nil {
		return err
	}
	if vm.DHCP {
		if err := c.obtainLease(ctx, vm, lease, o.DHCPTimeout); err != nil {
			return err
		}
	}
	for _, p := range slaac {
		if err := c.waitSLAAC(ctx, vm, p); err != nil {
			return err
		}
	}
	for _, p := range dhcp6 {
		if err := c.obtainLease6(ctx, vm, p); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) saveVM(vm VM) error {
	return c.update(func(st *State) error {
		for i := range st.VMs {
			if st.VMs[i].Name == vm.Name {
				st.VMs[i] = vm
				return nil
			}
		}
		return fmt.Errorf("VM %q vanished from the state", vm.Name)
	})
}

func (c *Cluster) host(name string) (Host, error) {
	for _, h := range c.State().Hosts {
		if h.Name == name {
			return h, nil
		}
	}
	return Host{}, fmt.Errorf("cluster has no host %q", name)
}

// findNetwork finds a network by name (its project's own first) or id.
func findNetwork(ctx context.Context, cl *Client, projectID, ref string) (network, error) {
	if ref == "" {
		return network{}, errors.New("a network is needed (--network NAME or ID)")
	}
	var list struct {
		Networks []network `json:"networks"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/networks?name="+url.QueryEscape(ref), nil, &list); err != nil {
		return network{}, fmt.Errorf("find network %q: %w", ref, err)
	}
	var own []network
	for _, n := range list.Networks {
		if n.ProjectID == projectID {
			own = append(own, n)
		}
	}
	switch {
	case len(own) == 1:
		return own[0], nil
	case len(own) > 1:
		return network{}, fmt.Errorf("project has %d networks named %q: give the id", len(own), ref)
	case len(list.Networks) == 1:
		return list.Networks[0], nil
	}
	var one struct {
		Network network `json:"network"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/networks/"+url.PathEscape(ref), nil, &one); err != nil {
		return network{}, fmt.Errorf("project has no network named or with id %q", ref)
	}
	return one.Network, nil
}

// createPort creates the VM's port as the project.
func createPort(ctx context.Context, cl *Client, vm *VM, o VMOptions) (port, error) {
	vm.DeviceID = newUUID()
	body := map[string]any{"network_id": vm.NetworkID, "name": vm.Name, "device_owner": "compute:nova", "device_id": vm.DeviceID}
	if o.IP != "" {
		body["fixed_ips"] = []map[string]string{{"ip_address": o.IP}}
	}
	if o.NoPortSecurity {
		body["port_security_enabled"], body["security_groups"] = false, []string{}
	} else if len(o.SecurityGroups) > 0 {
		ids, err := securityGroupIDs(ctx, cl, o.SecurityGroups)
		if err != nil {
			return port{}, fmt.Errorf("VM %s: %w", vm.Name, err)
		}
		body["security_groups"] = ids
	}
	var out struct {
		Port port `json:"port"`
	}
	if err := cl.Do(ctx, http.MethodPost, "/v2.0/ports", map[string]any{"port": body}, &out); err != nil {
		return port{}, fmt.Errorf("create port of VM %s: %w", vm.Name, err)
	}
	if len(out.Port.FixedIPs) == 0 {
		return out.Port, fmt.Errorf("port of VM %s has no fixed IP: the network needs a subnet", vm.Name)
	}
	return out.Port, nil
}

// bindPort binds the VM's port to its host as admin, as Nova would.
func (c *Cluster) bindPort(ctx context.Context, vm *VM) error {
	var out struct {
		Port port `json:"port"`
	}
	body := map[string]any{"port": map[string]any{"binding:host_id": vm.Host}}
	if err := c.Admin().Do(ctx, http.MethodPut, "/v2.0/ports/"+vm.PortID, body, &out); err != nil {
		return fmt.Errorf("bind port of VM %s to %s: %w", vm.Name, vm.Host, err)
	}
	if out.Port.VIFType == "binding_failed" || out.Port.VIFType == "unbound" {
		return fmt.Errorf("binding the port of VM %s to %s failed (vif_type %s): is the host's agent alive?", vm.Name, vm.Host, out.Port.VIFType)
	}
	return nil
}

// portAddresses returns the port's addresses with their subnets' prefix
// lengths, gateways and whether DHCPv4 serves them.
func portAddresses(ctx context.Context, cl *Client, p port) ([]portAddr, error) {
	var addrs []portAddr
	for _, f := range p.FixedIPs {
		var out struct {
			Subnet struct {
				CIDR       string `json:"cidr"`
				GatewayIP  string `json:"gateway_ip"`
				EnableDHCP bool   `json:"enable_dhcp"`
				RAMode     string `json:"ipv6_ra_mode"`
				AddrMode   string `json:"ipv6_address_mode"`
			} `json:"subnet"`
		}
		if err := cl.Do(ctx, http.MethodGet, "/v2.0/subnets/"+url.PathEscape(f.SubnetID), nil, &out); err != nil {
			return nil, fmt.Errorf("subnet of %s: %w", f.IPAddress, err)
		}
		sn, err := netip.ParsePrefix(out.Subnet.CIDR)
		if err != nil {
			return nil, fmt.Errorf("subnet %s cidr: %w", f.SubnetID, err)
		}
		ip, err := netip.ParseAddr(f.IPAddress)
		if err != nil {
			return nil, fmt.Errorf("port address: %w", err)
		}
		a := portAddr{Prefix: netip.PrefixFrom(ip, sn.Bits()), DHCP: out.Subnet.EnableDHCP && ip.Is4()}
		if ip.Is6() && out.Subnet.EnableDHCP {
			switch {
			case out.Subnet.AddrMode == "dhcpv6-stateful":
				a.Auto6 = auto6DHCP
			case out.Subnet.RAMode != "" && (out.Subnet.AddrMode == "slaac" || out.Subnet.AddrMode == "dhcpv6-stateless"):
				a.Auto6 = auto6SLAAC
			}
		}
		if gw, err := netip.ParseAddr(out.Subnet.GatewayIP); err == nil {
			a.Gateway = gw
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// buildVM creates the VM namespace: eth0 with the port's MAC and the given
// MTU (0: the kernel's default), its veth peer tap<port11> created directly
// in the host namespace (up, with the MAC a hypervisor gives taps: fe: and
// the port MAC's last five bytes), the static addresses and default routes.
func buildVM(vm VM, hostNS string, addrs []netip.Prefix, gws []netip.Addr, mtu int) error {
	mac, err := net.ParseMAC(vm.MAC)
	if err != nil {
		return fmt.Errorf("port MAC: %w", err)
	}
	if err := namedns.Create(vm.Namespace); err != nil {
		return err
	}
	h, err := namedns.Handle(vm.Namespace)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	hostFd, err := netns.GetFromName(hostNS)
	if err != nil {
		return fmt.Errorf("open host namespace: %w", err)
	}
	defer hostFd.Close()
	tap := l2.TapName(vm.PortID)
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.MTU = vmIface, mac, mtu
	tapMAC := append(net.HardwareAddr{0xfe}, mac[1:]...)
	veth := &netlink.Veth{LinkAttrs: la, PeerName: tap, PeerHardwareAddr: tapMAC, PeerNamespace: netlink.NsFd(hostFd)}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create %s of VM %s paired with %s on its host: %w", vmIface, vm.Name, tap, err)
	}
	for _, a := range addrs {
		if err := addAddr(h, vmIface, a); err != nil {
			return err
		}
	}
	if err := linkUp(h, vmIface); err != nil {
		return err
	}
	eth, err := h.LinkByName(vmIface)
	if err != nil {
		return err
	}
	for _, gw := range gws {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	hh, err := netlink.NewHandleAt(hostFd)
	if err != nil {
		return fmt.Errorf("netlink in host namespace: %w", err)
	}
	defer hh.Close()
	return linkUp(hh, tap)
}

// waitPortStatus waits until the port has the status.
func (c *Cluster) waitPortStatus(ctx context.Context, portID, status string, timeout time.Duration) error {
	last := ""
	err := poll(ctx, timeout, 100*time.Millisecond, "port "+portID+" "+status, func() (bool, error) {
		var out struct {
			Port port `json:"port"`
		}
		if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/ports/"+portID, nil, &out); err != nil {
			return false, err
		}
		last = out.Port.Status
		return last == status, nil
	})
	if err != nil {
		return fmt.Errorf("%w (status %s; see the agent's log in %s/logs)", err, last, c.Dir())
	}
	return nil
}

// DeleteVM stops the VM's DHCP client, deletes its port (as admin) and its
// namespace, and forgets it; a VM or port already gone is no error.
func (c *Cluster) DeleteVM(ctx context.Context, name string) error {
	vm, err := c.VM(name)
	if err != nil {
		return err
	}
	var errs []error
	if err := stopDHCPClient(vm); err != nil {
		errs = append(errs, err)
	}
	if err := stopDHCP6Client(vm); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{c.lease6File(name), filepath.Join(c.Dir(), dhcpDir, name+".dhclient6.leases"), filepath.Join(c.Dir(), dhcpDir, name+".dhclient6.pid"), filepath.Join(c.Dir(), dhcpDir, name+".dhclient6.sh")} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(c.leaseFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if vm.PortID != "" {
		if err := c.Admin().Do(ctx, http.MethodDelete, "/v2.0/ports/"+vm.PortID, nil, nil); err != nil && !IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete port of VM %s: %w", name, err))
		}
	}
	if err := namedns.Delete(vm.Namespace); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return c.update(func(st *State) error {
		st.VMs = slices.DeleteFunc(st.VMs, func(v VM) bool { return v.Name == name })
		return nil
	})
}

// VM returns the recorded VM of that name.
func (c *Cluster) VM(name string) (VM, error) {
	c.reload()
	for _, v := range c.State().VMs {
		if v.Name == name {
			return v, nil
		}
	}
	return VM{}, fmt.Errorf("cluster %q has no VM %q", c.Name(), name)
}

// VMs returns the cluster's VMs.
func (c *Cluster) VMs() []VM {
	c.reload()
	return c.State().VMs
}

// StartInVM starts cmd inside the VM's namespace; the caller waits for it.
func (c *Cluster) StartInVM(vm string, cmd *exec.Cmd) error {
	v, err := c.VM(vm)
	if err != nil {
		return err
	}
	return namedns.Do(v.Namespace, cmd.Start)
}

// Exec runs a command inside the VM and returns its combined output.
func (c *Cluster) Exec(vm string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("exec: no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := c.StartInVM(vm, cmd); err != nil {
		return "", err
	}
	err := cmd.Wait()
	return out.String(), err
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// securityGroupIDs resolves names or ids of the client's project's security
// groups, as the openstack CLI does.
func securityGroupIDs(ctx context.Context, cl *Client, refs []string) ([]string, error) {
	projectID, err := cl.ProjectID(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ref := range refs {
		var out struct {
			SecurityGroups []struct {
				ID string `json:"id"`
			} `json:"security_groups"`
		}
		q := "/v2.0/security-groups?project_id=" + url.QueryEscape(projectID) + "&name=" + url.QueryEscape(ref)
		if err := cl.Do(ctx, http.MethodGet, q, nil, &out); err != nil {
			return nil, err
		}
		if len(out.SecurityGroups) == 0 {
			if err := cl.Do(ctx, http.MethodGet, "/v2.0/security-groups?id="+url.QueryEscape(ref), nil, &out); err != nil {
				return nil, err
			}
		}
		switch len(out.SecurityGroups) {
		case 0:
			return nil, fmt.Errorf("no security group %q", ref)
		case 1:
			ids = append(ids, out.SecurityGroups[0].ID)
		default:
			return nil, fmt.Errorf("security group name %q is ambiguous: use its id", ref)
		}
	}
	return ids, nil
}

// setInstanceMetadata records the VM's name, hostname, user data and keys
// as its instance metadata, as Nova does when it boots a server. Without
// user data or keys nothing is stored: the metadata service then answers
// the VM from its port alone.
func setInstanceMetadata(ctx context.Context, cl *Client, vm VM, o VMOptions) error {
	if o.UserData == nil && len(o.Keys) == 0 {
		return nil
	}
	md := map[string]any{"name": vm.Name, "hostname": strings.ToLower(strings.ReplaceAll(vm.Name, "_", "-"))}
	if o.UserData != nil {
		md["user_data"] = base64.StdEncoding.EncodeToString(o.UserData)
	}
	if len(o.Keys) > 0 {
		md["public_keys"] = o.Keys
	}
	if err := cl.Do(ctx, http.MethodPut, "/v2.0/instance-metadata/"+url.PathEscape(vm.DeviceID), map[string]any{"instance_metadata": md}, nil); err != nil {
		return fmt.Errorf("instance metadata of VM %s: %w", vm.Name, err)
	}
	return nil
}

package devcluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Routers and floating IPs of a dev cloud, made through the Networking API
// as the cloud's project would, so the demo and the tests exercise exactly
// what a tenant's tools do.

// externalNetworkID returns the id of the cloud's external network.
func (c *Cluster) externalNetworkID(ctx context.Context) (string, error) {
	var out struct {
		Networks []network `json:"networks"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/networks?name="+ExternalNetwork+"&router%3Aexternal=true", nil, &out); err != nil {
		return "", err
	}
	if len(out.Networks) == 0 {
		return "", fmt.Errorf("the cluster has no external network %q (it needs a network host)", ExternalNetwork)
	}
	return out.Networks[0].ID, nil
}

// CreateRouter creates a router of the cloud's project with its gateway on
// the external network (SNAT on) and an interface on the first subnet of
// each named network; it returns the router's id.
func (c *Cluster) CreateRouter(ctx context.Context, cloud, name string, networks ...string) (string, error) {
	cl, err := c.Client(cloud)
	if err != nil {
		return "", err
	}
	ext, err := c.externalNetworkID(ctx)
	if err != nil {
		return "", err
	}
	var out struct {
		Router struct {
			ID string `json:"id"`
		} `json:"router"`
	}
	body := map[string]any{"router": map[string]any{"name": name, "external_gateway_info": map[string]any{"network_id": ext}}}
	if err := cl.Do(ctx, http.MethodPost, "/v2.0/routers", body, &out); err != nil {
		return "", fmt.Errorf("create router %s: %w", name, err)
	}
	projectID, err := cl.ProjectID(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range networks {
		netw, err := findNetwork(ctx, cl, projectID, n)
		if err != nil {
			return "", err
		}
		var subnets struct {
			Subnets []struct {
				ID        string `json:"id"`
				IPVersion int    `json:"ip_version"`
			} `json:"subnets"`
		}
		if err := cl.Do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+url.QueryEscape(netw.ID), nil, &subnets); err != nil {
			return "", err
		}
		for _, sn := range subnets.Subnets {
			if sn.IPVersion != 4 {
				continue
			}
			if err := cl.Do(ctx, http.MethodPut, "/v2.0/routers/"+out.Router.ID+"/add_router_interface", map[string]any{"subnet_id": sn.ID}, nil); err != nil {
				return "", fmt.Errorf("attach %s to router %s: %w", n, name, err)
			}
			break
		}
	}
	return out.Router.ID, nil
}

// FloatingIP is a floating IP as the cluster reads it.
type FloatingIP struct {
	ID      string `json:"id"`
	Address string `json:"floating_ip_address"`
	PortID  string `json:"port_id"`
	Status  string `json:"status"`
}

// CreateFloatingIP allocates a floating IP on the external network for the
// cloud's project and associates it with the VM's port ("" vm: none).
func (c *Cluster) CreateFloatingIP(ctx context.Context, cloud, vm string) (FloatingIP, error) {
	cl, err := c.Client(cloud)
	if err != nil {
		return FloatingIP{}, err
	}
	ext, err := c.externalNetworkID(ctx)
	if err != nil {
		return FloatingIP{}, err
	}
	req := map[string]any{"floating_network_id": ext}
	if vm != "" {
		v, err := c.VM(vm)
		if err != nil {
			return FloatingIP{}, err
		}
		req["port_id"] = v.PortID
	}
	var out struct {
		FloatingIP FloatingIP `json:"floatingip"`
	}
	if err := cl.Do(ctx, http.MethodPost, "/v2.0/floatingips", map[string]any{"floatingip": req}, &out); err != nil {
		return FloatingIP{}, fmt.Errorf("create floating IP: %w", err)
	}
	return out.FloatingIP, nil
}

// AssociateFloatingIP points a floating IP at a VM's port ("" vm:
// disassociate).
func (c *Cluster) AssociateFloatingIP(ctx context.Context, cloud, fipID, vm string) error {
	cl, err := c.Client(cloud)
	if err != nil {
		return err
	}
	var port any // JSON null disassociates
	if vm != "" {
		v, err := c.VM(vm)
		if err != nil {
			return err
		}
		port = v.PortID
	}
	return cl.Do(ctx, http.MethodPut, "/v2.0/floatingips/"+fipID, map[string]any{"floatingip": map[string]any{"port_id": port}}, nil)
}

// CreatePortForwarding forwards (floating IP, tcp, external) to the VM's
// address and internal port.
func (c *Cluster) CreatePortForwarding(ctx context.Context, cloud, fipID, vm string, external, internal int) error {
	cl, err := c.Client(cloud)
	if err != nil {
		return err
	}
	v, err := c.VM(vm)
	if err != nil {
		return err
	}
	body := map[string]any{"port_forwarding": map[string]any{
		"protocol": "tcp", "internal_port_id": v.PortID, "internal_ip_address": v.IP,
		"internal_port": internal, "external_port": external,
	}}
	return cl.Do(ctx, http.MethodPost, "/v2.0/floatingips/"+fipID+"/port_forwardings", body, nil)
}

// StartEchoServer runs the outside's echo HTTP server inside a VM on port:
// every GET is answered with the caller's address, so a test sees which
// source address reached the VM. It runs until the VM is deleted.
func (c *Cluster) StartEchoServer(ctx context.Context, vm string, port int) error {
	v, err := c.VM(vm)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.st.Binary, "dev", "outside", "serve", "--dir", c.st.Dir, "--listen", "0.0.0.0:"+strconv.Itoa(port))
	logPath := filepath.Join(c.Dir(), "logs", "echo-"+vm+"-"+strconv.Itoa(port)+".log")
	p, err := startDetachedIn(v.Namespace, c.st.Binary, cmd.Args[1:], nil, logPath)
	if err != nil {
		return err
	}
	c.log.Debug("echo server started in VM", "vm", vm, "port", port, "pid", p.PID)
	return poll(ctx, 10*time.Second, 50*time.Millisecond, "echo server in "+vm, func() (bool, error) {
		out, err := c.Exec(vm, "curl", "-sS", "-m", "2", "http://127.0.0.1:"+strconv.Itoa(port)+"/")
		return err == nil && strings.TrimSpace(out) == "127.0.0.1", nil
	})
}

// Curl fetches url from inside a VM ("" vm: from the outside) and returns
// the body's first line: with the echo servers, the address the server saw.
func (c *Cluster) Curl(vm, url string, timeout time.Duration) (string, error) {
	args := []string{"curl", "-sS", "-m", strconv.FormatFloat(timeout.Seconds(), 'f', 1, 64), url}
	var out string
	var err error
	if vm == "" {
		out, err = c.OutsideExec(args...)
	} else {
		out, err = c.Exec(vm, args...)
	}
	if err != nil {
		return "", fmt.Errorf("curl %s from %s: %w: %s", url, orOutside(vm), err, strings.TrimSpace(out))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if _, perr := netip.ParseAddr(line); perr != nil {
		return "", fmt.Errorf("curl %s from %s: unexpected answer %q", url, orOutside(vm), line)
	}
	return line, nil
}

func orOutside(vm string) string {
	if vm == "" {
		return "the outside"
	}
	return "VM " + vm
}

// AllowIngress adds a rule to the cloud project's default security group
// letting protocol ("tcp", "udp", "icmp") in from anywhere on IPv4, on port
// (0: every port), as a tenant opens a service to the world.
func (c *Cluster) AllowIngress(ctx context.Context, cloud, protocol string, port int) error {
	cl, err := c.Client(cloud)
	if err != nil {
		return err
	}
	projectID, err := cl.ProjectID(ctx)
	if err != nil {
		return err
	}
	var groups struct {
		SecurityGroups []struct {
			ID string `json:"id"`
		} `json:"security_groups"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/security-groups?name=default&project_id="+url.QueryEscape(projectID), nil, &groups); err != nil {
		return err
	}
	if len(groups.SecurityGroups) != 1 {
		return fmt.Errorf("project of %s has %d default security groups", cloud, len(groups.SecurityGroups))
	}
	rule := map[string]any{"security_group_id": groups.SecurityGroups[0].ID, "direction": "ingress",
		"ethertype": "IPv4", "protocol": protocol, "remote_ip_prefix": "0.0.0.0/0"}
	if port > 0 {
		rule["port_range_min"], rule["port_range_max"] = port, port
	}
	err = cl.Do(ctx, http.MethodPost, "/v2.0/security-group-rules", map[string]any{"security_group_rule": rule}, nil)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
		return nil // the rule is there already
	}
	return err
}

package devcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// CreateNetwork creates a network with one IPv4 subnet as the cloud's
// project, or returns the project's network of that name if it exists (and
// gives it the subnet if it has none).
func (c *Cluster) CreateNetwork(ctx context.Context, cloud, name, cidr string) (string, error) {
	cl, err := c.Client(cloud)
	if err != nil {
		return "", err
	}
	projectID, err := cl.ProjectID(ctx)
	if err != nil {
		return "", err
	}
	var list struct {
		Networks []network `json:"networks"`
	}
	q := "/v2.0/networks?name=" + url.QueryEscape(name) + "&project_id=" + url.QueryEscape(projectID)
	if err := cl.Do(ctx, http.MethodGet, q, nil, &list); err != nil {
		return "", fmt.Errorf("find network %s: %w", name, err)
	}
	var id string
	if len(list.Networks) > 0 {
		id = list.Networks[0].ID
	} else {
		var out struct {
			Network network `json:"network"`
		}
		if err := cl.Do(ctx, http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{"name": name}}, &out); err != nil {
			return "", fmt.Errorf("create network %s: %w", name, err)
		}
		id = out.Network.ID
	}
	var subnets struct {
		Subnets []struct {
			ID string `json:"id"`
		} `json:"subnets"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+url.QueryEscape(id), nil, &subnets); err != nil {
		return "", fmt.Errorf("subnets of %s: %w", name, err)
	}
	if len(subnets.Subnets) == 0 {
		body := map[string]any{"subnet": map[string]any{"network_id": id, "name": name + "-subnet", "cidr": cidr, "ip_version": 4}}
		if err := cl.Do(ctx, http.MethodPost, "/v2.0/subnets", body, nil); err != nil {
			return "", fmt.Errorf("create subnet %s on %s: %w", cidr, name, err)
		}
	}
	return id, nil
}

// Matrix is the outcome of the demo's connectivity check: every VM pings
// every other VM's address once.
type Matrix struct {
	VMs   []MatrixVM `json:"vms"`
	Pairs []Pair     `json:"pairs"`
	// OK: every pair behaved as expected.
	OK bool `json:"ok"`
}

// MatrixVM is one VM of the matrix.
type MatrixVM struct {
	Name  string `json:"name"`
	Cloud string `json:"cloud"`
	Host  string `json:"host"`
	IP    string `json:"ip_address"`
	MAC   string `json:"mac_address"`
}

// Pair is one ping of the matrix, judged by what the target received and
// by who answered. Delivered says whether the echo request arrived in the
// target VM (a socket listening there saw it); AnsweredBy names the VM that
// answered, found by the MAC the sender's neighbour table learned (or the
// sender itself when the address is its own). Same-project pairs must be
// delivered and answered by the target; other pairs must not be delivered,
// though their ping may be answered by a VM of the sender's own project
// that holds the same address.
type Pair struct {
	From        string `json:"from"`
	To          string `json:"to"`
	ToIP        string `json:"to_ip"`
	SameProject bool   `json:"same_project"`
	Expected    string `json:"expected"` // "reach" or "isolated"
	Delivered   bool   `json:"delivered"`
	Replied     bool   `json:"replied"`
	AnsweredBy  string `json:"answered_by,omitempty"`
	Actual      string `json:"actual"`
	OK          bool   `json:"ok"`
}

// Demo runs the demo scenario: as the demo and alt projects, a network net1
// with subnet 10.0.0.0/24 each, and two VMs each on different compute hosts
// with the same addresses in both projects (10.0.0.11 and 10.0.0.12, or the
// first pair 10.0.0.x1, x2 free in both networks); then the connectivity
// matrix. VMs and networks that exist are reused.
func (c *Cluster) Demo(ctx context.Context) (*Matrix, error) {
	st := c.State()
	var computes []string
	for _, h := range st.Hosts {
		if h.Role == RoleCompute {
			computes = append(computes, h.Name)
		}
	}
	nets := map[string]string{} // cloud -> net1's id
	used := map[string]bool{}
	for _, p := range st.Projects {
		netID, err := c.CreateNetwork(ctx, p.Cloud, "net1", "10.0.0.0/24")
		if err != nil {
			return nil, err
		}
		nets[p.Cloud] = netID
		if err := c.addUsedIPs(ctx, p.Cloud, netID, used); err != nil {
			return nil, err
		}
	}
	base := 11
	for base < 250 && (used[fmt.Sprintf("10.0.0.%d", base)] || used[fmt.Sprintf("10.0.0.%d", base+1)]) {
		base += 10
	}
	var vms []VM
	for _, p := range st.Projects {
		short := strings.TrimPrefix(p.Cloud, st.Name+"-")
		for i := range 2 {
			name := fmt.Sprintf("%s-vm%d", short, i+1)
			vm, err := c.VM(name)
			if err != nil {
				o := VMOptions{Name: name, Network: nets[p.Cloud], Cloud: p.Cloud, Host: computes[i%len(computes)], IP: fmt.Sprintf("10.0.0.%d", base+i),
					UserData: []byte("#!/bin/sh\necho hello from " + name + ", project " + p.Cloud + "\n")}
				v, err := c.CreateVM(ctx, o)
				if err != nil {
					return nil, err
				}
				vm = *v
			}
			vms = append(vms, vm)
		}
	}
	return c.Connectivity(vms)
}

// addUsedIPs adds the addresses of the network's ports to used.
func (c *Cluster) addUsedIPs(ctx context.Context, cloud, netID string, used map[string]bool) error {
	cl, err := c.Client(cloud)
	if err != nil {
		return err
	}
	var out struct {
		Ports []port `json:"ports"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/ports?network_id="+url.QueryEscape(netID), nil, &out); err != nil {
		return fmt.Errorf("ports of net1 of %s: %w", cloud, err)
	}
	for _, p := range out.Ports {
		for _, f := range p.FixedIPs {
			used[f.IPAddress] = true
		}
	}
	return nil
}

// Connectivity pings from every VM to every other VM's address and judges
// each pair (see Pair).
func (c *Cluster) Connectivity(vms []VM) (*Matrix, error) {
	m := &Matrix{OK: true}
	byMAC := map[string]string{}
	for _, v := range vms {
		m.VMs = append(m.VMs, MatrixVM{Name: v.Name, Cloud: v.Cloud, Host: v.Host, IP: v.IP, MAC: v.MAC})
		byMAC[strings.ToLower(v.MAC)] = v.Name
	}
	for _, from := range vms {
		for _, to := range vms {
			if from.Name == to.Name {
				continue
			}
			p, err := c.probe(from, to, byMAC)
			if err != nil {
				return nil, err
			}
			m.OK = m.OK && p.OK
			m.Pairs = append(m.Pairs, p)
		}
	}
	return m, nil
}

// probe pings to's address from from (up to three tries of one second),
// watching inside to for the request, and finds out who answered.
func (c *Cluster) probe(from, to VM, byMAC map[string]string) (Pair, error) {
	p := Pair{From: from.Name, To: to.Name, ToIP: to.IP, SameProject: from.ProjectID == to.ProjectID, Expected: "isolated"}
	if p.SameProject {
		p.Expected = "reach"
	}
	if err := c.FlushNeighbor(from.Name, to.IP); err != nil {
		return p, err
	}
	pc, err := c.openPing(from.Name, to.IP)
	if err != nil {
		return p, err
	}
	defer pc.close()
	watch, err := c.openPing(to.Name, from.IP)
	if err != nil {
		return p, err
	}
	defer watch.close()
	watch.id = pc.id
	for seq := 1; seq <= 3 && !p.Replied; seq++ {
		if pc.send(seq) == nil {
			got, err := pc.recv(time.Now().Add(time.Second))
			p.Replied = err == nil && got == seq
		}
	}
	_, err = watch.recvEcho(time.Now().Add(100*time.Millisecond), true)
	p.Delivered = err == nil
	if p.Replied {
		if err := c.answeredBy(&p, from, to, byMAC); err != nil {
			return p, err
		}
	}
	reached := p.Delivered && p.Replied && p.AnsweredBy == to.Name
	switch {
	case reached:
		p.Actual = "reached"
	case p.Delivered:
		p.Actual = "delivered to " + to.Name + ", answered by " + orNone(p.AnsweredBy)
	case !p.Replied:
		p.Actual = "not delivered, no reply"
	case p.AnsweredBy == from.Name:
		p.Actual = "not delivered, answered by itself (same address)"
	default:
		p.Actual = "not delivered, answered by " + p.AnsweredBy
	}
	p.OK = reached == p.SameProject && (p.SameProject || !p.Delivered)
	return p, nil
}

// answeredBy finds which VM answered from's ping by the MAC address.
func (c *Cluster) answeredBy(p *Pair, from, to VM, byMAC map[string]string) error {
	if from.IP == to.IP {
		p.AnsweredBy = from.Name // its own address
		return nil
	}
	mac, err := c.Neighbor(from.Name, to.IP)
	if err != nil {
		return err
	}
	p.AnsweredBy = byMAC[strings.ToLower(mac.String())]
	if p.AnsweredBy == "" {
		p.AnsweredBy = "unknown MAC " + mac.String()
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}

// Print writes the matrix as a table and a verdict.
func (m *Matrix) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VM\tCLOUD\tHOST\tIP\tMAC")
	for _, v := range m.VMs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Cloud, v.Host, v.IP, v.MAC)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "FROM\tTO\tTO IP\tEXPECTED\tACTUAL\t")
	bad := 0
	for _, p := range m.Pairs {
		verdict := "ok"
		if !p.OK {
			verdict, bad = "UNEXPECTED", bad+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.From, p.To, p.ToIP, p.Expected, p.Actual, verdict)
	}
	tw.Flush()
	if bad == 0 {
		fmt.Fprintf(w, "\nall %d pairs as expected: same-project VMs reach each other across hosts; no VM reaches another project's VM, though their addresses are the same\n", len(m.Pairs))
	} else {
		fmt.Fprintf(w, "\n%d of %d pairs NOT as expected\n", bad, len(m.Pairs))
	}
}

package devcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Flow is one north-south check of the demo: who asked, which address the
// answering side saw, and what Neutron's semantics say it must be.
type Flow struct {
	What string `json:"what"`
	From string `json:"from"`
	URL  string `json:"url"`
	Saw  string `json:"saw"`
	Want string `json:"want"`
	OK   bool   `json:"ok"`
	Err  string `json:"error,omitempty"`
}

// NorthSouth is the demo's routing part.
type NorthSouth struct {
	Flows []Flow `json:"flows"`
	OK    bool   `json:"ok"`
}

// DemoNorthSouth gives each demo project a router (SNAT) from net1 to the
// external network, opens TCP 80 in its default group, runs an echo server
// in its VMs, floats an address to <project>-vm1 and forwards port 8080 of a
// second floating IP to <project>-vm2:80; then checks what the outside and
// the VMs see. What exists is reused. It needs the VMs of Demo.
func (c *Cluster) DemoNorthSouth(ctx context.Context) (*NorthSouth, error) {
	st := c.State()
	ns := &NorthSouth{OK: true}
	for _, p := range st.Projects {
		short := strings.TrimPrefix(p.Cloud, st.Name+"-")
		vm1, vm2 := short+"-vm1", short+"-vm2"
		routerID, err := c.ensureRouter(ctx, p.Cloud, "router1", "net1")
		if err != nil {
			return nil, err
		}
		gw, err := c.routerGatewayIP(ctx, routerID)
		if err != nil {
			return nil, err
		}
		if err := c.AllowIngress(ctx, p.Cloud, "tcp", 80); err != nil {
			return nil, err
		}
		for _, vm := range []string{vm1, vm2} {
			if _, err := c.Curl(vm, "http://127.0.0.1/", time.Second); err != nil {
				if err := c.StartEchoServer(ctx, vm, 80); err != nil {
					return nil, err
				}
			}
		}
		fip1, err := c.ensureFloatingIP(ctx, p.Cloud, vm1, "demo: "+vm1)
		if err != nil {
			return nil, err
		}
		fip2, err := c.ensureFloatingIP(ctx, p.Cloud, "", "demo: forwards to "+vm2)
		if err != nil {
			return nil, err
		}
		if err := c.CreatePortForwarding(ctx, p.Cloud, fip2.ID, vm2, 8080, 80); err != nil && !isConflict(err) {
			return nil, err
		}
		outside := "http://" + OutsideIP.String() + "/"
		flows := []Flow{
			{What: "SNAT: " + vm2 + " without floating IP reaches the outside", From: vm2, URL: outside, Want: gw},
			{What: "floating IP: " + vm1 + "'s own traffic leaves as " + fip1.Address, From: vm1, URL: outside, Want: fip1.Address},
			{What: "floating IP: the outside reaches " + vm1, From: "outside", URL: "http://" + fip1.Address + "/", Want: OutsideIP.String()},
			{What: "port forward: " + fip2.Address + ":8080 reaches " + vm2 + ":80", From: "outside", URL: "http://" + fip2.Address + ":8080/", Want: OutsideIP.String()},
		}
		for _, f := range flows {
			from := f.From
			if from == "outside" {
				from = ""
			}
			// The router may still be coming up: give it a few seconds.
			err := poll(ctx, 15*time.Second, 100*time.Millisecond, f.What, func() (bool, error) {
				got, err := c.Curl(from, f.URL, 2*time.Second)
				f.Saw = got
				return err == nil && got == f.Want, nil
			})
			f.OK = err == nil
			if err != nil {
				f.Err = err.Error()
				ns.OK = false
			}
			ns.Flows = append(ns.Flows, f)
		}
	}
	return ns, nil
}

func isConflict(err error) bool {
	var e *APIError
	return asAPIError(err, &e) && e.Status == http.StatusConflict
}

// ensureRouter returns the project's router of that name, creating it.
func (c *Cluster) ensureRouter(ctx context.Context, cloud, name string, networks ...string) (string, error) {
	cl, err := c.Client(cloud)
	if err != nil {
		return "", err
	}
	var out struct {
		Routers []struct {
			ID string `json:"id"`
		} `json:"routers"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/routers?name="+url.QueryEscape(name), nil, &out); err != nil {
		return "", err
	}
	if len(out.Routers) > 0 {
		return out.Routers[0].ID, nil
	}
	return c.CreateRouter(ctx, cloud, name, networks...)
}

// routerGatewayIP is a router's first external address.
func (c *Cluster) routerGatewayIP(ctx context.Context, id string) (string, error) {
	var rt struct {
		Router struct {
			Gateway struct {
				FixedIPs []struct {
					IP string `json:"ip_address"`
				} `json:"external_fixed_ips"`
			} `json:"external_gateway_info"`
		} `json:"router"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/routers/"+id, nil, &rt); err != nil {
		return "", err
	}
	if len(rt.Router.Gateway.FixedIPs) == 0 {
		return "", fmt.Errorf("router %s has no gateway address", id)
	}
	return rt.Router.Gateway.FixedIPs[0].IP, nil
}

// ensureFloatingIP returns the project's floating IP with that
// description, creating it (associated with vm's port, if vm is set).
func (c *Cluster) ensureFloatingIP(ctx context.Context, cloud, vm, description string) (FloatingIP, error) {
	cl, err := c.Client(cloud)
	if err != nil {
		return FloatingIP{}, err
	}
	var out struct {
		FloatingIPs []FloatingIP `json:"floatingips"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/floatingips?description="+url.QueryEscape(description), nil, &out); err != nil {
		return FloatingIP{}, err
	}
	if len(out.FloatingIPs) > 0 {
		return out.FloatingIPs[0], nil
	}
	f, err := c.CreateFloatingIP(ctx, cloud, vm)
	if err != nil {
		return FloatingIP{}, err
	}
	err = cl.Do(ctx, http.MethodPut, "/v2.0/floatingips/"+f.ID, map[string]any{"floatingip": map[string]any{"description": description}}, nil)
	return f, err
}

// Print writes the flows as a table.
func (n *NorthSouth) Print(w io.Writer) {
	fmt.Fprintln(w, "north-south (the echo servers answer with the source address they saw):")
	for _, f := range n.Flows {
		mark := "ok"
		if !f.OK {
			mark = "UNEXPECTED"
		}
		saw := f.Saw
		if saw == "" {
			saw = "nothing"
		}
		fmt.Fprintf(w, "  %-4s %-62s saw %-15s (want %s)\n", mark, f.What, saw, f.Want)
	}
}

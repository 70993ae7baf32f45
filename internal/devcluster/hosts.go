package devcluster

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/vland/vland/internal/namedns"
	"syscall"
	"time"
)

// agentRestartTimeout bounds the wait for a restarted agent to report.
const agentRestartTimeout = 30 * time.Second

// HostDown simulates the failure of a host: its agent is killed with
// SIGKILL and its fabric link is set down, cutting it off the data network.
// The server notices the agent's death after its down time.
func (c *Cluster) HostDown(ctx context.Context, name string) error {
	return c.update(func(st *State) error {
		h := findHost(st, name)
		if h == nil {
			return fmt.Errorf("cluster has no host %q", name)
		}
		if !h.Agent.kill(syscall.SIGKILL, 5*time.Second) {
			return fmt.Errorf("agent of %s (pid %d) does not die", name, h.Agent.PID)
		}
		if err := setFabricLink(st.Prefix, *h, false); err != nil {
			return err
		}
		if err := setExternalLink(st.Prefix, *h, false); err != nil {
			return err
		}
		h.Down = true
		c.log.Info("host down", "host", name)
		return nil
	})
}

// HostUp brings a host back. Its agent starts first, with the host still
// cut off, and the links come up only once the agent has removed the
// routers (and DHCP services) the server moved elsewhere while the host was
// down: a stale router would otherwise answer for its gateway and floating
// addresses beside the router's new home, as a real host rebooting with old
// state would. It returns when the agent is alive and the host reconnected.
func (c *Cluster) HostUp(ctx context.Context, name string) error {
	start, restarted := time.Now(), ""
	err := c.update(func(st *State) error {
		h := findHost(st, name)
		if h == nil {
			return fmt.Errorf("cluster has no host %q", name)
		}
		if !h.Agent.Running() {
			p, err := c.startAgent(*h)
			if err != nil {
				return err
			}
			h.Agent, restarted = p, name
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.waitAgents(ctx, restarted, start, agentRestartTimeout); err != nil {
		return err
	}
	if err := c.waitStaleRouters(ctx, name); err != nil {
		return err
	}
	err = c.update(func(st *State) error {
		h := findHost(st, name)
		if err := setFabricLink(st.Prefix, *h, true); err != nil {
			return err
		}
		if err := setExternalLink(st.Prefix, *h, true); err != nil {
			return err
		}
		h.Down = false
		return nil
	})
	if err == nil {
		c.log.Info("host up", "host", name)
	}
	return err
}

// waitStaleRouters waits until the host holds no router namespace of a
// router the server does not place on it.
func (c *Cluster) waitStaleRouters(ctx context.Context, host string) error {
	st := c.State()
	h := findHost(&st, host)
	if h == nil || h.Role != RoleNetwork {
		return nil
	}
	prefix := agentNSPrefix(c.st.Prefix, host) + "qrouter-"
	return poll(ctx, agentRestartTimeout, 100*time.Millisecond, "stale routers removed from "+host, func() (bool, error) {
		placed, err := c.routersOn(ctx, host)
		if err != nil {
			return false, err
		}
		nss, err := namedns.WithPrefix(prefix)
		if err != nil {
			return false, err
		}
		for _, ns := range nss {
			if !placed[strings.TrimPrefix(ns, prefix)] {
				return false, fmt.Errorf("%s still holds %s", host, ns)
			}
		}
		return true, nil
	})
}

// routersOn returns the routers the server places on a host's L3 agent.
func (c *Cluster) routersOn(ctx context.Context, host string) (map[string]bool, error) {
	var agents struct {
		Agents []struct {
			ID string `json:"id"`
		} `json:"agents"`
	}
	q := "/v2.0/agents?agent_type=" + url.QueryEscape("L3 agent") + "&host=" + url.QueryEscape(host)
	if err := c.Admin().Do(ctx, http.MethodGet, q, nil, &agents); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range agents.Agents {
		var rs struct {
			Routers []struct {
				ID string `json:"id"`
			} `json:"routers"`
		}
		if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/agents/"+a.ID+"/l3-routers", nil, &rs); err != nil {
			return nil, err
		}
		for _, r := range rs.Routers {
			out[r.ID] = true
		}
	}
	return out, nil
}

// RestartAgent kills a host's agent with SIGKILL and starts it again,
// leaving the host on the fabric: the data plane must not notice. It
// returns when the new agent has reported alive.
func (c *Cluster) RestartAgent(ctx context.Context, name string) error {
	start := time.Now()
	err := c.update(func(st *State) error {
		h := findHost(st, name)
		if h == nil {
			return fmt.Errorf("cluster has no host %q", name)
		}
		if !h.Agent.kill(syscall.SIGKILL, 5*time.Second) {
			return fmt.Errorf("agent of %s (pid %d) does not die", name, h.Agent.PID)
		}
		p, err := c.startAgent(*h)
		if err != nil {
			return err
		}
		h.Agent = p
		return nil
	})
	if err != nil {
		return err
	}
	return c.waitAgents(ctx, name, start, agentRestartTimeout)
}

func findHost(st *State, name string) *Host {
	for i := range st.Hosts {
		if st.Hosts[i].Name == name {
			return &st.Hosts[i]
		}
	}
	return nil
}

// Status is what `vland dev status` shows.
type Status struct {
	Name          string       `json:"name"`
	Prefix        string       `json:"prefix"`
	Dir           string       `json:"dir"`
	ServerURL     string       `json:"server_url"`
	ServerRunning bool         `json:"server_running"`
	Hosts         []HostStatus `json:"hosts"`
	VMs           []VMStatus   `json:"vms"`
	// Error says why the server could not be asked, if it could not.
	Error string `json:"error,omitempty"`
}

// HostStatus is a host with its agent's state.
type HostStatus struct {
	Name         string `json:"name"`
	Role         string `json:"role"`
	Namespace    string `json:"namespace"`
	LocalIP      string `json:"local_ip"`
	AgentPID     int    `json:"agent_pid"`
	AgentRunning bool   `json:"agent_running"`
	Alive        bool   `json:"alive"`
	Down         bool   `json:"down"`
}

// VMStatus is a VM with its port's status.
type VMStatus struct {
	VM
	PortStatus string `json:"port_status"`
}

// Status reports the cluster's hosts and VMs; when the server cannot be
// asked it still reports what the state and /proc say.
func (c *Cluster) Status(ctx context.Context) (*Status, error) {
	c.reload()
	st := c.State()
	s := &Status{Name: st.Name, Prefix: st.Prefix, Dir: st.Dir, ServerURL: st.ServerURL, ServerRunning: st.Server.Running(),
		Hosts: []HostStatus{}, VMs: []VMStatus{}}
	recs, err := c.agents(ctx)
	if err != nil {
		s.Error = err.Error()
	}
	for _, h := range st.Hosts {
		s.Hosts = append(s.Hosts, HostStatus{Name: h.Name, Role: h.Role, Namespace: h.Namespace, LocalIP: h.LocalIP,
			AgentPID: h.Agent.PID, AgentRunning: h.Agent.Running(), Alive: recs[h.Name].Alive, Down: h.Down})
	}
	for _, v := range st.VMs {
		vs := VMStatus{VM: v, PortStatus: "-"}
		if err == nil && v.PortID != "" {
			var out struct {
				Port port `json:"port"`
			}
			switch perr := c.Admin().Do(ctx, http.MethodGet, "/v2.0/ports/"+v.PortID, nil, &out); {
			case perr == nil:
				vs.PortStatus = out.Port.Status
			case IsNotFound(perr):
				vs.PortStatus = "GONE"
			}
		}
		s.VMs = append(s.VMs, vs)
	}
	return s, nil
}

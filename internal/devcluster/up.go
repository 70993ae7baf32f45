package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Deadlines of Up's waits.
const (
	serverReadyTimeout = 60 * time.Second
	agentsAliveTimeout = 60 * time.Second
)

// Up builds cluster o.Name and starts its server and agents; it returns when
// the server answers and every agent is alive. Leftovers of an earlier run
// of the same cluster (not running) are removed first; a cluster that is up
// is an error. On failure everything Up created is removed again.
func Up(ctx context.Context, o Options) (*Cluster, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	prefix := Prefix(o.Name)
	if st, err := loadState(o.Dir); err == nil && st.Server.Running() {
		return nil, fmt.Errorf("cluster %q is already up (%s): `vland dev down --cluster %s` first", o.Name, o.Dir, o.Name)
	}
	if prev, _ := readRegistration(prefix); prev != nil && prev.Name == o.Name && prev.Dir != o.Dir {
		if st, err := loadState(prev.Dir); err == nil && st.Server.Running() {
			return nil, fmt.Errorf("cluster %q is already up (%s): `vland dev down --cluster %s` first", o.Name, prev.Dir, o.Name)
		}
		if err := Down(o.Name, prev.Dir, o.Logger); err != nil {
			return nil, fmt.Errorf("removing leftovers of cluster %q in %s: %w", o.Name, prev.Dir, err)
		}
	}
	reg := registration{Name: o.Name, Dir: o.Dir}
	if err := register(prefix, reg); err != nil {
		return nil, err
	}
	if leftovers(prefix, o.Dir) {
		o.Logger.Info("removing leftovers of an earlier run", "cluster", o.Name)
		if err := Down(o.Name, o.Dir, o.Logger); err != nil {
			return nil, err
		}
		if err := register(prefix, reg); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	st := newState(o, prefix)
	if err := st.save(); err != nil {
		return nil, err
	}
	c := &Cluster{log: o.Logger.With("cluster", o.Name), base: o.Logger, st: st, clients: map[string]*Client{}}
	if err := c.build(ctx, o); err != nil {
		if derr := Down(o.Name, o.Dir, o.Logger); derr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
		}
		return nil, err
	}
	return c, nil
}

// leftovers reports whether anything of a cluster exists already.
func leftovers(prefix, dir string) bool {
	nss, _ := namedns.WithPrefix(prefix + "-")
	_, err := os.Stat(filepath.Join(dir, stateFile))
	return len(nss) > 0 || err == nil || len(procsNaming(dir)) > 0
}

// newState lays out a cluster's hosts and credentials before anything runs.
func newState(o Options, prefix string) *State {
	u := underlay(o.Name)
	st := &State{
		Name: o.Name, Prefix: prefix, Dir: o.Dir, Binary: o.Binary, Underlay: u.String(),
		AdminPassword:  randomSecret(),
		ReportInterval: o.ReportInterval.String(), AgentDownTime: o.AgentDownTime.String(),
		DHCPAgentsPerNetwork: o.DHCPAgentsPerNetwork,
	}
	add := func(role string, n int) {
		name := hostName(role, n)
		st.Hosts = append(st.Hosts, Host{
			Name: name, Role: role, Namespace: hostNS(prefix, name), LocalIP: hostIP(u, role, n).String(),
			FabricLink: hostFabricLink(prefix, name),
		})
	}
	for i := 1; i <= o.Hosts; i++ {
		add(RoleCompute, i)
	}
	for i := 1; i <= o.NetworkHosts; i++ {
		add(RoleNetwork, i)
	}
	for _, p := range []string{"demo", "alt"} {
		name := o.Name + "-" + p
		st.Projects = append(st.Projects, Project{Cloud: name, Credentials: Credentials{Username: name, Password: randomSecret(), Project: name}})
	}
	return st
}

func randomSecret() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// build does Up's work; st is saved after every step that starts something.
func (c *Cluster) build(ctx context.Context, o Options) error {
	st := c.st
	if err := buildFabric(st.Prefix); err != nil {
		return err
	}
	external := o.NetworkHosts > 0
	if external {
		if err := buildOutside(st.Prefix); err != nil {
			return err
		}
	}
	for _, h := range st.Hosts {
		if err := buildHost(st.Prefix, h); err != nil {
			return err
		}
		if external && h.Role == RoleNetwork {
			if err := buildHostExternal(st.Prefix, h); err != nil {
				return err
			}
		}
	}
	c.log.Info("fabric and hosts ready", "prefix", st.Prefix, "hosts", len(st.Hosts), "underlay", st.Underlay)
	if err := c.startServer(ctx); err != nil {
		return err
	}
	c.log.Info("server ready", "url", st.ServerURL)
	for i := range st.Hosts {
		if err := c.writeToken(ctx, st.Hosts[i].Name); err != nil {
			return err
		}
		p, err := c.startAgent(st.Hosts[i])
		if err != nil {
			return err
		}
		st.Hosts[i].Agent = p
		if err := st.save(); err != nil {
			return err
		}
	}
	if err := c.createProjects(ctx); err != nil {
		return err
	}
	if external {
		if err := c.createExternalNetwork(ctx); err != nil {
			return err
		}
		if err := c.startOutsideServer(ctx); err != nil {
			return err
		}
	}
	if err := st.save(); err != nil {
		return err
	}
	if err := writeClouds(st); err != nil {
		return err
	}
	if err := c.waitAgents(ctx, "", time.Time{}, agentsAliveTimeout); err != nil {
		return err
	}
	c.log.Info("agents alive", "hosts", len(st.Hosts))
	return nil
}

// startServer starts `vland server` on a loopback port the kernel picks
// and learns it from the URL file the server writes once it listens: a
// port chosen beforehand could be taken by a parallel cluster's server, and
// then this cluster would talk to the other one.
func (c *Cluster) startServer(ctx context.Context) error {
	st := c.st
	urlFile := filepath.Join(st.Dir, serverURLFile)
	_ = os.Remove(urlFile)
	args := []string{"server", "--listen", "127.0.0.1:0", "--url-file", urlFile,
		"--data-dir", filepath.Join(st.Dir, "server"), "--agent-down-time", st.AgentDownTime}
	if st.DHCPAgentsPerNetwork > 0 {
		args = append(args, "--dhcp-agents-per-network", strconv.Itoa(st.DHCPAgentsPerNetwork))
	}
	logPath := filepath.Join(st.Dir, "logs", "server.log")
	p, err := startDetached(st.Binary, args, []string{"VLAND_ADMIN_PASSWORD=" + st.AdminPassword}, logPath)
	if err != nil {
		return err
	}
	st.Server = p
	var url string
	err = poll(ctx, serverReadyTimeout, 50*time.Millisecond, "server URL file", func() (bool, error) {
		if !p.Running() {
			return false, permanent{fmt.Errorf("server exited: %s", tail(logPath, 2000))}
		}
		b, err := os.ReadFile(urlFile)
		if err != nil {
			return false, nil
		}
		url = strings.TrimSpace(string(b))
		return url != "", nil
	})
	if err != nil {
		return err
	}
	st.ServerURL = url
	if err := st.save(); err != nil {
		return err
	}
	return waitServer(ctx, url, p, logPath)
}

// waitServer polls the identity version document until it answers.
func waitServer(ctx context.Context, url string, p Proc, logPath string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, serverReadyTimeout, 100*time.Millisecond, "server "+url+" answering", func() (bool, error) {
		if !p.Running() {
			return false, permanent{fmt.Errorf("server exited: %s", tail(logPath, 2000))}
		}
		resp, err := hc.Get(url + "/identity/v3")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// tokenPath is where a host's agent token is kept.
func tokenPath(st *State, host string) string { return filepath.Join(st.Dir, host+".token") }

// writeToken fetches a host's agent token as admin and stores it.
func (c *Cluster) writeToken(ctx context.Context, host string) error {
	var out struct {
		Token string `json:"token"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/agent/v1/hosts/"+host+"/token", nil, &out); err != nil {
		return fmt.Errorf("agent token of %s: %w", host, err)
	}
	return writeFileAtomic(tokenPath(c.st, host), []byte(out.Token+"\n"), 0o600)
}

// startAgent starts a host's `vland agent` managing its namespace.
func (c *Cluster) startAgent(h Host) (Proc, error) {
	st := c.st
	args := []string{"agent", "--host", h.Name, "--netns", h.Namespace, "--local-ip", h.LocalIP,
		"--server", st.ServerURL, "--token-file", tokenPath(st, h.Name), "--roles", h.Role,
		"--report-interval", st.ReportInterval, "--namespace-prefix", agentNSPrefix(st.Prefix, h.Name)}
	if h.Role == RoleNetwork {
		args = append(args, "--physical-interface-mappings", ExternalPhysnet+":"+hostExtIface)
	}
	p, err := startDetached(st.Binary, args, nil, filepath.Join(st.Dir, "logs", "agent-"+h.Name+".log"))
	if err != nil {
		return Proc{}, fmt.Errorf("agent of %s: %w", h.Name, err)
	}
	c.log.Debug("agent started", "host", h.Name, "pid", p.PID)
	return p, nil
}

// agentRecord is the part of GET /v2.0/agents the cluster reads.
type agentRecord struct {
	Host      string `json:"host"`
	AgentType string `json:"agent_type"`
	Alive     bool   `json:"alive"`
	StartedAt string `json:"started_at"`
}

const l2AgentType = "Linux bridge agent"

// agents returns the L2 agent record of each host.
func (c *Cluster) agents(ctx context.Context) (map[string]agentRecord, error) {
	var out struct {
		Agents []agentRecord `json:"agents"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/agents?agent_type="+strings.ReplaceAll(l2AgentType, " ", "%20"), nil, &out); err != nil {
		return nil, err
	}
	m := map[string]agentRecord{}
	for _, a := range out.Agents {
		if a.AgentType == l2AgentType {
			m[a.Host] = a
		}
	}
	return m, nil
}

// waitAgents waits until the agent of every host that is not down is alive
// and, when restarted names a host, that host's agent was started at or
// after since.
func (c *Cluster) waitAgents(ctx context.Context, restarted string, since time.Time, timeout time.Duration) error {
	st := c.State()
	return poll(ctx, timeout, 200*time.Millisecond, "agents alive", func() (bool, error) {
		recs, err := c.agents(ctx)
		if err != nil {
			return false, err
		}
		for _, h := range st.Hosts {
			if h.Down {
				continue
			}
			if !h.Agent.Running() {
				log := filepath.Join(st.Dir, "logs", "agent-"+h.Name+".log")
				return false, permanent{fmt.Errorf("agent of %s exited: %s", h.Name, tail(log, 2000))}
			}
			r, ok := recs[h.Name]
			if !ok || !r.Alive {
				return false, fmt.Errorf("agent of %s not alive yet", h.Name)
			}
			if h.Name == restarted && !startedSince(r.StartedAt, since) {
				return false, fmt.Errorf("agent of %s has not reported since its restart", h.Name)
			}
		}
		return true, nil
	})
}

// startedSince compares an agent's started_at ("2006-01-02 15:04:05", UTC,
// whole seconds) with t.
func startedSince(startedAt string, t time.Time) bool {
	s, err := time.Parse("2006-01-02 15:04:05", startedAt)
	if err != nil {
		s, err = time.Parse(time.RFC3339, startedAt)
	}
	return err == nil && !s.Before(t.UTC().Truncate(time.Second))
}

// serverURLFile is where the server writes its URL once it listens.
const serverURLFile = "server.url"

package devcluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Options shape a cluster.
type Options struct {
	// Name of the cluster (default "dev"); see ValidName.
	Name string
	// Hosts is the number of compute hosts (0 means 2).
	Hosts int
	// NetworkHosts is the number of network hosts (0 means 1, negative none).
	NetworkHosts int
	// Dir holds the cluster's state, logs and server data
	// (default /var/lib/vland/dev/<Name>).
	Dir string
	// Binary is the vland binary to run (default: this executable).
	Binary string
	// ReportInterval is the agents' heartbeat interval (default 2s) and
	// AgentDownTime the server's --agent-down-time (default 6s).
	ReportInterval time.Duration
	AgentDownTime  time.Duration
	// DHCPAgentsPerNetwork is the server's --dhcp-agents-per-network: how
	// many network hosts serve each network's DHCP (0: the server's
	// default, 1).
	DHCPAgentsPerNetwork int
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		o.Name = "dev"
	}
	if err := ValidName(o.Name); err != nil {
		return o, err
	}
	if o.Hosts == 0 {
		o.Hosts = 2
	}
	switch {
	case o.NetworkHosts == 0:
		o.NetworkHosts = 1
	case o.NetworkHosts < 0:
		o.NetworkHosts = 0
	}
	if o.Hosts < 0 || o.Hosts > maxComputeHosts || o.NetworkHosts > maxNetworkHosts {
		return o, fmt.Errorf("a cluster has 1-%d compute hosts and 0-%d network hosts", maxComputeHosts, maxNetworkHosts)
	}
	if o.Dir == "" {
		o.Dir = DefaultDir(o.Name)
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, err
	}
	o.Dir = abs
	if o.Binary == "" {
		if o.Binary, err = os.Executable(); err != nil {
			return o, fmt.Errorf("find the vland binary: %w", err)
		}
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return o, fmt.Errorf("vland binary: %w", err)
	}
	if o.ReportInterval <= 0 {
		o.ReportInterval = 2 * time.Second
	}
	if o.AgentDownTime <= 0 {
		o.AgentDownTime = 6 * time.Second
	}
	if o.DHCPAgentsPerNetwork < 0 {
		return o, fmt.Errorf("DHCP agents per network %d: want 0 (the server's default) or more", o.DHCPAgentsPerNetwork)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

// Cluster is a dev cluster that is up. Its methods are safe for concurrent
// use, and coordinate with other processes through a lock on the directory.
type Cluster struct {
	log  *slog.Logger // with the cluster's name
	base *slog.Logger

	mu      sync.Mutex
	st      *State
	clients map[string]*Client // by cloud name
}

// Open returns the cluster that `vland dev up` (or Up) left in dir; an
// empty dir is resolved by ResolveDir.
func Open(name, dir string, log *slog.Logger) (*Cluster, error) {
	if name == "" {
		name = "dev"
	}
	if err := ValidName(name); err != nil {
		return nil, err
	}
	dir = ResolveDir(name, dir)
	st, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster %q is not up (no %s): run `vland dev up --cluster %s`", name, filepath.Join(dir, stateFile), name)
	}
	if err != nil {
		return nil, err
	}
	if st.Name != name {
		return nil, fmt.Errorf("%s belongs to cluster %q, not %q", dir, st.Name, name)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Cluster{log: log.With("cluster", name), base: log, st: st, clients: map[string]*Client{}}, nil
}

// State returns a copy of the cluster's recorded state.
func (c *Cluster) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := *c.st
	s.Hosts = append([]Host(nil), c.st.Hosts...)
	s.Projects = append([]Project(nil), c.st.Projects...)
	s.VMs = append([]VM(nil), c.st.VMs...)
	return s
}

// Name is the cluster's name, Prefix its namespace and link prefix, Dir its
// directory, URL its server's base URL.
func (c *Cluster) Name() string   { return c.State().Name }
func (c *Cluster) Prefix() string { return c.State().Prefix }
func (c *Cluster) Dir() string    { return c.State().Dir }
func (c *Cluster) URL() string    { return c.State().ServerURL }

// update changes the state under the directory lock, starting from what is
// on disk (another process may have changed it), and saves it.
func (c *Cluster) update(fn func(*State) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := lockDir(c.st.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	if st, err := loadState(c.st.Dir); err == nil {
		c.st = st
	}
	if err := fn(c.st); err != nil {
		return err
	}
	return c.st.save()
}

// reload refreshes the state from disk.
func (c *Cluster) reload() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, err := loadState(c.st.Dir); err == nil {
		c.st = st
	}
}

// Admin is a client acting as the cluster's admin.
func (c *Cluster) Admin() *Client {
	cl, _ := c.Client(c.Name() + "-admin")
	return cl
}

// Client is a client acting as one of the cluster's clouds: <N>-admin,
// <N>-demo or <N>-alt.
func (c *Cluster) Client(cloud string) (*Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[cloud]; cl != nil {
		return cl, nil
	}
	var creds Credentials
	if cloud == c.st.Name+"-admin" {
		creds = Credentials{Username: "admin", Password: c.st.AdminPassword, Project: "admin"}
	} else {
		i := c.projectIndex(cloud)
		if i < 0 {
			return nil, fmt.Errorf("cluster %q has no cloud %q (it has %s)", c.st.Name, cloud, c.cloudNames())
		}
		creds = c.st.Projects[i].Credentials
	}
	cl := NewClient(c.st.ServerURL, creds)
	c.clients[cloud] = cl
	return cl, nil
}

func (c *Cluster) projectIndex(cloud string) int {
	for i, p := range c.st.Projects {
		if p.Cloud == cloud {
			return i
		}
	}
	return -1
}

func (c *Cluster) cloudNames() string {
	s := c.st.Name + "-admin"
	for _, p := range c.st.Projects {
		s += ", " + p.Cloud
	}
	return s
}

// Down removes everything of the cluster: see the package Down.
func (c *Cluster) Down() error {
	st := c.State()
	return Down(st.Name, st.Dir, c.base)
}

// Down removes everything cluster name created, in this process or any
// other: its processes, its namespaces (hosts, VMs, fabric, and any the
// agents made with the prefix), links named with its prefix, its files,
// and the directory when nothing else is left in it. It is idempotent and
// works from a partial or missing state.json. An empty dir is resolved by
// ResolveDir.
func Down(name, dir string, log *slog.Logger) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir = ResolveDir(name, dir)
	prefix := Prefix(name)
	if reg, err := readRegistration(prefix); err == nil && reg != nil && reg.Name != name {
		return fmt.Errorf("prefix %s belongs to cluster %q (dir %s), not %q: nothing removed", prefix, reg.Name, reg.Dir, name)
	}
	st, err := loadState(dir)
	if err == nil && st.Name != name {
		return fmt.Errorf("%s belongs to cluster %q, not %q: nothing removed", dir, st.Name, name)
	}
	var errs []error
	errs = append(errs, stopProcesses(st, dir, log)...)
	errs = append(errs, removeNetworking(prefix, log)...)
	errs = append(errs, removeFiles(dir, log)...)
	if err := unregister(prefix); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("down %s: %w", name, err)
	}
	log.Info("cluster removed", "cluster", name, "prefix", prefix)
	return nil
}

// stopProcesses ends the VMs' DHCP clients and the agents (SIGKILL: they
// keep no state worth a goodbye), then the server (SIGTERM, for etcd's
// sake), and any process whose command line points into dir.
func stopProcesses(st *State, dir string, log *slog.Logger) []error {
	var errs []error
	if st != nil {
		for _, v := range st.VMs {
			if !v.DHCPClient.kill(syscall.SIGKILL, 5*time.Second) {
				errs = append(errs, fmt.Errorf("DHCP client of VM %s (pid %d) does not end", v.Name, v.DHCPClient.PID))
			}
			if !v.DHCP6Client.kill(syscall.SIGKILL, 5*time.Second) {
				errs = append(errs, fmt.Errorf("DHCPv6 client of VM %s (pid %d) does not end", v.Name, v.DHCP6Client.PID))
			}
		}
		for _, h := range st.Hosts {
			if !h.Agent.kill(syscall.SIGKILL, 5*time.Second) {
				errs = append(errs, fmt.Errorf("agent of %s (pid %d) does not end", h.Name, h.Agent.PID))
			}
		}
		if !st.Outside.kill(syscall.SIGKILL, 5*time.Second) {
			errs = append(errs, fmt.Errorf("outside HTTP server (pid %d) does not end", st.Outside.PID))
		}
		if err := st.Server.stop(5 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("server: %w", err))
		}
	}
	for _, p := range procsNaming(dir) {
		log.Info("stopping leftover process", "pid", p.PID)
		if err := p.stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// removeFiles deletes what a cluster writes in its directory, and the
// directory if that leaves it empty; other files are left alone.
func removeFiles(dir string, log *slog.Logger) []error {
	var errs []error
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return []error{err}
	}
	for _, e := range entries {
		n := e.Name()
		ours := n == stateFile || n == stateFile+".tmp" || n == ".lock" || n == cloudsFile ||
			n == "logs" || n == "server" || n == serverURLFile || n == serverURLFile+".tmp" || n == dhcpDir || filepath.Ext(n) == ".token"
		if !ours {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil {
		log.Warn("cluster directory kept: it holds files vland dev did not write", "dir", dir)
	}
	return errs
}

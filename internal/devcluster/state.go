package devcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// State is what <dir>/state.json records of a cluster: enough for any later
// command, in this process or another, to drive it or tear it down.
type State struct {
	Name          string `json:"name"`
	Prefix        string `json:"prefix"`
	Dir           string `json:"dir"`
	Binary        string `json:"binary"`
	Underlay      string `json:"underlay"`
	ServerURL     string `json:"server_url"`
	AdminPassword string `json:"admin_password"`
	Server        Proc   `json:"server"`
	// Outside is the outside namespace's HTTP server (none without
	// network hosts).
	Outside  Proc      `json:"outside,omitzero"`
	Hosts    []Host    `json:"hosts"`
	Projects []Project `json:"projects"`
	VMs      []VM      `json:"vms"`
	// Agent timing the cluster was started with (Go duration strings).
	ReportInterval string `json:"report_interval"`
	AgentDownTime  string `json:"agent_down_time"`
	// DHCPAgentsPerNetwork, when set, is passed to the server as
	// --dhcp-agents-per-network.
	DHCPAgentsPerNetwork int `json:"dhcp_agents_per_network,omitempty"`
}

// Proc identifies a process the cluster started: the pid and its start
// time (clock ticks after boot, /proc/<pid>/stat field 22), so a recycled
// pid is never mistaken for it.
type Proc struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// Host is a simulated host: a namespace on the fabric and its agent.
type Host struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	Namespace string `json:"namespace"`
	LocalIP   string `json:"local_ip"`
	// FabricLink is the host's veth end on the fabric bridge.
	FabricLink string `json:"fabric_link"`
	Agent      Proc   `json:"agent"`
	// Down is set by HostDown: the agent is killed and the host cut off.
	Down bool `json:"down,omitempty"`
}

// Project is an ordinary project of the cluster with its member user.
type Project struct {
	Cloud string `json:"cloud"` // its clouds.yaml entry, <N>-demo or <N>-alt
	ID    string `json:"id"`
	Credentials
}

// VM is a simulated virtual machine: a namespace whose eth0 pairs with the
// tap of its port on its host.
type VM struct {
	Name      string `json:"name"`
	Cloud     string `json:"cloud"`
	ProjectID string `json:"project_id"`
	Host      string `json:"host"`
	Namespace string `json:"namespace"`
	PortID    string `json:"port_id"`
	// DeviceID is the port's device_id: the instance's id.
	DeviceID  string `json:"device_id,omitempty"`
	NetworkID string `json:"network_id"`
	MAC       string `json:"mac_address"`
	IP        string `json:"ip_address"`
	// CIDRs are the VM's addresses with their subnets' prefix lengths.
	CIDRs []string `json:"cidrs"`
	MTU   int      `json:"mtu"`
	// DHCP: the VM's IPv4 address, routes and MTU come from a DHCP lease,
	// obtained and renewed by DHCPClient (busybox udhcpc running in the VM's
	// namespace); otherwise they were configured statically.
	DHCP       bool `json:"dhcp,omitempty"`
	DHCPClient Proc `json:"dhcp_client,omitzero"`
	// DHCP6Client is dhclient -6, for an address in a dhcpv6-stateful subnet.
	DHCP6Client Proc `json:"dhcp6_client,omitzero"`
}

const stateFile = "state.json"

// loadState reads dir's state.json.
func loadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

// save writes the state atomically; it holds a password, so only root reads it.
func (s *State) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.Dir, stateFile), append(b, '\n'), 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// lockDir takes an exclusive lock on the cluster directory so that commands
// changing the state (in this process or others) take turns.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock cluster directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock cluster directory: %w", err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// registration is the record /run/vland/dev/<prefix> keeps of the cluster
// owning the prefix.
type registration struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
}

// readRegistration returns the cluster owning prefix, if any.
func readRegistration(prefix string) (*registration, error) {
	b, err := os.ReadFile(filepath.Join(registryDir, prefix))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r registration
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(registryDir, prefix), err)
	}
	return &r, nil
}

// register claims prefix for a cluster; it fails if another cluster holds it.
func register(prefix string, r registration) error {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", registryDir, err)
	}
	cur, err := readRegistration(prefix)
	if err != nil {
		return err
	}
	if cur != nil && cur.Name != r.Name {
		return fmt.Errorf("prefix %s of cluster %q is held by cluster %q (dir %s): choose another name, or `vland dev down --cluster %s`",
			prefix, r.Name, cur.Name, cur.Dir, cur.Name)
	}
	b, _ := json.Marshal(r)
	return writeFileAtomic(filepath.Join(registryDir, prefix), b, 0o644)
}

func unregister(prefix string) error {
	err := os.Remove(filepath.Join(registryDir, prefix))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ResolveDir returns the directory of cluster name: dir when given, else
// the one recorded when it came up, else DefaultDir(name).
func ResolveDir(name, dir string) string {
	if dir != "" {
		return dir
	}
	if r, err := readRegistration(Prefix(name)); err == nil && r != nil && r.Name == name && r.Dir != "" {
		return r.Dir
	}
	return DefaultDir(name)
}

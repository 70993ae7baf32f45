package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/vland/vland/internal/namedns"
)

// Service is the DNS service of one network: a server on Addrs (the DHCP
// port's addresses) inside the named namespace, answering from Table.
type Service struct {
	NetworkID string
	Namespace string
	Addrs     []netip.Addr
	Table     *Table
}

// ManagerOptions tune a Manager.
type ManagerOptions struct {
	Upstreams []string
	Port      int // 0: 53
	Logger    *slog.Logger
}

// Manager runs the DNS servers of a host, one per network. Its methods are
// safe for concurrent use.
type Manager struct {
	o   ManagerOptions
	log *slog.Logger

	mu      sync.Mutex
	servers map[string]*running // by network ID
}

type running struct {
	ns    string
	nsID  uint64 // inode of the namespace when the server started
	addrs string // the addresses, as a key
	srv   *Server
}

// NewManager returns a Manager with no servers.
func NewManager(o ManagerOptions) *Manager {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Manager{o: o, log: log, servers: map[string]*running{}}
}

// Reconcile makes the running servers exactly services (one per network):
// running ones get their new tables at once; a server whose namespace was
// recreated or whose addresses changed is restarted; servers of networks
// not in services are stopped. The returned error joins the failures to
// start; the others are still served.
func (m *Manager) Reconcile(services []Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[string]Service{}
	for _, s := range services {
		if _, dup := want[s.NetworkID]; !dup && len(s.Addrs) > 0 {
			want[s.NetworkID] = s
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(m.servers)) {
		r := m.servers[id]
		s, ok := want[id]
		why := ""
		switch {
		case !ok:
			why = "the network is not served here any more"
		case s.Namespace != r.ns || addrKey(s.Addrs) != r.addrs:
			why = "its addresses changed"
		case nsInode(s.Namespace) != r.nsID:
			why = "its namespace was recreated"
		}
		if why == "" {
			r.srv.SetRecords(s.Table)
			continue
		}
		m.log.Info("stopping DNS server", "network", id, "namespace", r.ns, "why", why)
		if err := r.srv.Stop(); err != nil {
			m.log.Warn("DNS server did not stop cleanly", "network", id, "err", err)
		}
		delete(m.servers, id)
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if m.servers[id] != nil {
			continue
		}
		s := want[id]
		srv := NewServer(s.Table, ServerOptions{Upstreams: m.o.Upstreams, Port: m.o.Port, Logger: m.log.With("network", id)})
		if err := srv.Start(s.Namespace, s.Addrs); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", id, err))
			continue
		}
		m.servers[id] = &running{ns: s.Namespace, nsID: nsInode(s.Namespace), addrs: addrKey(s.Addrs), srv: srv}
	}
	return errors.Join(errs...)
}

// Networks lists the networks with a running server.
func (m *Manager) Networks() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.servers))
}

// Close stops every server.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for id, r := range m.servers {
		errs = append(errs, r.srv.Stop())
		delete(m.servers, id)
	}
	return errors.Join(errs...)
}

func addrKey(addrs []netip.Addr) string {
	s := slices.Clone(addrs)
	slices.SortFunc(s, netip.Addr.Compare)
	return fmt.Sprint(s)
}

// nsInode identifies a named namespace; 0 for the caller's own or one that
// cannot be read.
func nsInode(name string) uint64 {
	if name == "" {
		return 0
	}
	fi, err := os.Stat(namedns.Path(name))
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

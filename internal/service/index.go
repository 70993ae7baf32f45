package service

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"

	"github.com/vland/vland/internal/model"
)

// index keeps the lookups the hot paths need, fed by the cache: which
// quota slots a project's objects hold, and which addresses of a subnet
// are in use. Allocation reads them instead of the store; the transaction
// that commits an allocation still compares the keys, so a stale index can
// only cost a retry.
type index struct {
	mu    sync.RWMutex
	owned map[string]map[string]*holdings  // kind → project → holdings
	ips   map[string]map[netip.Addr]string // subnet → address → port id
	dhcp  map[string]map[string]string     // network → DHCP port id → host
	macs  map[string]map[string]string     // network → MAC → port id
	l3    l3Index
	sg    sgIndex
}

// holdings are a project's objects of one kind and the quota slots they hold.
type holdings struct {
	ids   map[string]int // id → quota slot+1 (0: none)
	slots map[int]bool
}

func newIndex() *index {
	ix := &index{}
	ix.Reset()
	return ix
}

// Reset implements store.Indexer.
func (ix *index) Reset() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.owned = map[string]map[string]*holdings{}
	ix.ips = map[string]map[netip.Addr]string{}
	ix.dhcp = map[string]map[string]string{}
	ix.macs = map[string]map[string]string{}
	ix.l3 = newL3Index()
	ix.sg.reset()
}

// Change implements store.Indexer.
func (ix *index) Change(kind, id string, old, new any) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if o, ok := old.(*model.Cached); ok {
		ix.apply(kind, id, o.Obj, false)
	}
	if n, ok := new.(*model.Cached); ok {
		ix.apply(kind, id, n.Obj, true)
	}
}

func (ix *index) apply(kind, id string, obj model.Object, add bool) {
	std := obj.Std()
	if _, counted := quotaName(kind); counted {
		byProject := ix.owned[kind]
		if byProject == nil {
			byProject = map[string]*holdings{}
			ix.owned[kind] = byProject
		}
		h := byProject[std.ProjectID]
		if h == nil {
			h = &holdings{ids: map[string]int{}, slots: map[int]bool{}}
			byProject[std.ProjectID] = h
		}
		if add {
			h.ids[id] = std.QuotaSlot
			if std.QuotaSlot > 0 {
				h.slots[std.QuotaSlot-1] = true
			}
		} else {
			if slot := h.ids[id]; slot > 0 {
				delete(h.slots, slot-1)
			}
			delete(h.ids, id)
		}
	}
	ix.l3.apply(id, obj, add)
	ix.sg.apply(id, obj, add)
	if p, ok := obj.(*model.Port); ok && p.DeviceOwner == OwnerDHCP {
		hosts := ix.dhcp[p.NetworkID]
		if add {
			if hosts == nil {
				hosts = map[string]string{}
				ix.dhcp[p.NetworkID] = hosts
			}
			hosts[id] = p.HostID
		} else {
			delete(hosts, id)
		}
	}
	if p, ok := obj.(*model.Port); ok {
		macs := ix.macs[p.NetworkID]
		if add {
			if macs == nil {
				macs = map[string]string{}
				ix.macs[p.NetworkID] = macs
			}
			macs[p.MACAddress] = id
		} else if macs[p.MACAddress] == id {
			delete(macs, p.MACAddress)
		}
		for _, f := range p.FixedIPs {
			used := ix.ips[f.SubnetID]
			if add {
				if used == nil {
					used = map[netip.Addr]string{}
					ix.ips[f.SubnetID] = used
				}
				used[f.IPAddress] = id
			} else if used[f.IPAddress] == id {
				delete(used, f.IPAddress)
			}
		}
	}
}

// usage returns how many objects of kind a project has, and up to want
// free quota slots below limit, chosen at random so that concurrent
// creators rarely pick the same one.
func (ix *index) usage(kind, project string, limit, want int) (int, []int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	h := ix.owned[kind][project]
	if h == nil {
		h = &holdings{}
	}
	var free []int
	chosen := map[int]bool{}
	for tries := 0; len(free) < want && tries < 8*want+32; tries++ {
		if n := rand.IntN(limit); !h.slots[n] && !chosen[n] {
			chosen[n] = true
			free = append(free, n)
		}
	}
	for n := 0; len(free) < want && n < limit; n++ {
		if !h.slots[n] && !chosen[n] {
			chosen[n] = true
			free = append(free, n)
		}
	}
	return len(h.ids), free
}

// ipUsed reports whether an address of a subnet is held by a port.
func (ix *index) ipUsed(subnet string, a netip.Addr) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	_, used := ix.ips[subnet][a]
	return used
}

// dhcpHosts returns the hosts holding a network's DHCP ports.
func (ix *index) dhcpHosts(network string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []string
	for _, h := range ix.dhcp[network] {
		out = append(out, h)
	}
	return out
}

// macUsed reports whether a MAC is held by a port of a network.
func (ix *index) macUsed(network, mac string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	_, used := ix.macs[network][mac]
	return used
}

// dhcpPorts returns the ids of a network's DHCP ports, sorted.
func (ix *index) dhcpPorts(network string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]string, 0, len(ix.dhcp[network]))
	for id := range ix.dhcp[network] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

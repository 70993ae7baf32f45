// Package agentserver serves the agent API (/agent/v1, see
// docs/design/agent-api.md): per-host views computed by the service, a
// resumable watch of their changes, status reports, and agent tokens.
package agentserver

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/service"
)

// maxLog bounds the events kept per host for watches that resume.
const maxLog = 4096

// hostState is the last view computed for one host and the recent events
// that led to it.
type hostState struct {
	rev     int64                      // revision of objects
	base    int64                      // a watch may resume from any revision >= base
	objects map[string]json.RawMessage // "kind/id" -> object
	log     []agentapi.Event
	notify  chan struct{} // closed and replaced when events are appended
	used    time.Time
}

// Hub keeps the views of the hosts that agents watch up to date.
type Hub struct {
	svc   *service.Service
	mu    sync.Mutex
	hosts map[string]*hostState
}

// NewHub returns a hub; Run keeps it current.
func NewHub(svc *service.Service) *Hub {
	return &Hub{svc: svc, hosts: map[string]*hostState{}}
}

// Run recomputes the watched hosts' views whenever the store changes.
func (h *Hub) Run(ctx context.Context) {
	for {
		_, ch := h.svc.Cache().Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		h.mu.Lock()
		hosts := make([]string, 0, len(h.hosts))
		for host, st := range h.hosts {
			// Forget hosts nobody asked about for a while.
			if time.Since(st.used) > 15*time.Minute {
				delete(h.hosts, host)
				continue
			}
			hosts = append(hosts, host)
		}
		h.mu.Unlock()
		for _, host := range hosts {
			h.refresh(host)
		}
	}
}

func key(kind, id string) string { return kind + "/" + id }

// flatten turns a view into keyed objects.
func flatten(v agentapi.View) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(v.Networks)+len(v.Ports))
	for _, n := range v.Networks {
		b, _ := json.Marshal(n)
		out[key(agentapi.KindNetwork, n.ID)] = b
	}
	for _, sn := range v.Subnets {
		b, _ := json.Marshal(sn)
		out[key(agentapi.KindSubnet, sn.ID)] = b
	}
	for _, p := range v.Ports {
		b, _ := json.Marshal(p)
		out[key(agentapi.KindPort, p.ID)] = b
	}
	for _, r := range v.Routers {
		b, _ := json.Marshal(r)
		out[key(agentapi.KindRouter, r.ID)] = b
	}
	for _, g := range v.SecurityGroups {
		b, _ := json.Marshal(g)
		out[key(agentapi.KindSecurityGroup, g.ID)] = b
	}
	for _, g := range v.AddressGroups {
		b, _ := json.Marshal(g)
		out[key(agentapi.KindAddressGroup, g.ID)] = b
	}
	for _, in := range v.Instances {
		b, _ := json.Marshal(in)
		out[key(agentapi.KindInstance, in.DeviceID)] = b
	}
	return out
}

// refresh recomputes host's view and appends what changed to its log.
func (h *Hub) refresh(host string) *hostState {
	v := h.svc.HostView(host)
	objects := flatten(v)
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.hosts[host]
	if !ok {
		st = &hostState{rev: v.Revision, base: v.Revision, objects: objects, notify: make(chan struct{})}
		h.hosts[host] = st
		st.used = time.Now()
		return st
	}
	if v.Revision <= st.rev {
		return st
	}
	var events []agentapi.Event
	for k, b := range objects {
		if old, ok := st.objects[k]; ok && bytes.Equal(old, b) {
			continue
		}
		kind, id := splitKey(k)
		events = append(events, agentapi.Event{Type: agentapi.EventPut, Kind: kind, ID: id, Revision: v.Revision, Object: b})
	}
	for k := range st.objects {
		if _, ok := objects[k]; !ok {
			kind, id := splitKey(k)
			events = append(events, agentapi.Event{Type: agentapi.EventDelete, Kind: kind, ID: id, Revision: v.Revision})
		}
	}
	// Networks before ports on put, ports before networks on delete, so an
	// agent applying events in order never sees a port without its network.
	slices.SortStableFunc(events, func(a, b agentapi.Event) int { return eventOrder(a) - eventOrder(b) })
	st.objects, st.rev = objects, v.Revision
	if len(events) > 0 {
		st.log = append(st.log, events...)
		if len(st.log) > maxLog {
			cut := len(st.log) - maxLog
			// Cut at a revision boundary so a resumed watch never gets half a change.
			for cut < len(st.log) && st.log[cut].Revision == st.log[cut-1].Revision {
				cut++
			}
			st.base = st.log[cut-1].Revision
			st.log = slices.Clone(st.log[cut:])
		}
		close(st.notify)
		st.notify = make(chan struct{})
	}
	return st
}

// kindRank orders kinds so that what an object refers to comes first:
// networks, subnets, groups, ports (which name groups), then routers and
// instances (which name ports).
var kindRank = map[string]int{
	agentapi.KindNetwork: 0, agentapi.KindSubnet: 1, agentapi.KindAddressGroup: 2, agentapi.KindSecurityGroup: 3,
	agentapi.KindPort: 4, agentapi.KindRouter: 5, agentapi.KindInstance: 5,
}

// eventOrder puts referenced kinds first on put and last on delete.
func eventOrder(e agentapi.Event) int {
	rank := kindRank[e.Kind]
	if e.Type == agentapi.EventDelete {
		return 10 - rank
	}
	return rank
}

func splitKey(k string) (kind, id string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// View returns host's current view.
func (h *Hub) View(host string) (agentapi.View, error) {
	st := h.refresh(host)
	h.mu.Lock()
	defer h.mu.Unlock()
	st.used = time.Now()
	v := agentapi.View{Host: host, Revision: st.rev, Networks: []agentapi.Network{}, Subnets: []agentapi.Subnet{}, Ports: []agentapi.Port{}}
	for k, b := range st.objects {
		kind, _ := splitKey(k)
		switch kind {
		case agentapi.KindNetwork:
			var n agentapi.Network
			if err := json.Unmarshal(b, &n); err != nil {
				return v, err
			}
			v.Networks = append(v.Networks, n)
		case agentapi.KindPort:
			var p agentapi.Port
			if err := json.Unmarshal(b, &p); err != nil {
				return v, err
			}
			v.Ports = append(v.Ports, p)
		case agentapi.KindSubnet:
			var sn agentapi.Subnet
			if err := json.Unmarshal(b, &sn); err != nil {
				return v, err
			}
			v.Subnets = append(v.Subnets, sn)
		case agentapi.KindRouter:
			if err := appendJSON(b, &v.Routers); err != nil {
				return v, err
			}
		case agentapi.KindSecurityGroup:
			if err := appendJSON(b, &v.SecurityGroups); err != nil {
				return v, err
			}
		case agentapi.KindAddressGroup:
			if err := appendJSON(b, &v.AddressGroups); err != nil {
				return v, err
			}
		case agentapi.KindInstance:
			if err := appendJSON(b, &v.Instances); err != nil {
				return v, err
			}
		}
	}
	return v, nil
}

// since returns the events after rev, the revision they bring the watcher
// to, and a channel closed when more arrive; ok is false when rev cannot be
// resumed from.
func (h *Hub) since(host string, rev int64) (events []agentapi.Event, now int64, more <-chan struct{}, ok bool) {
	h.mu.Lock()
	st, known := h.hosts[host]
	h.mu.Unlock()
	if !known {
		st = h.refresh(host)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st.used = time.Now()
	if rev < st.base || rev > st.rev {
		return nil, 0, nil, false
	}
	i, _ := slices.BinarySearchFunc(st.log, rev+1, func(e agentapi.Event, r int64) int { return int(e.Revision - r) })
	return slices.Clone(st.log[i:]), st.rev, st.notify, true
}

// appendJSON decodes b and appends it to list.
func appendJSON[T any](b []byte, list *[]T) error {
	var x T
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*list = append(*list, x)
	return nil
}

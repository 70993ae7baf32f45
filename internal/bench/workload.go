package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// runAPI sets up the projects and runs every measured phase.
func (b *bench) runAPI(ctx context.Context, prof *os.File) error {
	var err error
	b.adminTok, _, err = b.c.passwordToken(ctx, "admin", b.t.adminPassword, "admin", true)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if b.memberID, err = b.c.roleID(ctx, b.adminTok, "member"); err != nil {
		return fmt.Errorf("member role: %w", err)
	}
	b.workers = make([]*worker, b.opts.Clients)
	for i := range b.workers {
		b.workers[i] = &worker{idx: i, password: randomPassword()}
	}
	fail := func(w *worker) { w.failed = true }

	phases := []struct {
		name string
		fn   func(ctx context.Context, w *worker, rec *recorder)
	}{
		{phaseProjectCreate, func(ctx context.Context, w *worker, rec *recorder) {
			var out struct {
				Project struct {
					ID string `json:"id"`
				} `json:"project"`
			}
			body := map[string]any{"project": map[string]any{
				"name": fmt.Sprintf("bench-%s-%03d", b.runID, w.idx), "domain_id": "default",
				"description": "vland bench api"}}
			if !b.call(w, rec, "create project", func() (response, error) {
				return b.c.do(ctx, http.MethodPost, "/identity/v3/projects", b.adminTok, body, http.StatusCreated, &out)
			}) {
				fail(w)
				return
			}
			w.projectID = out.Project.ID
		}},
		{phaseUserCreate, func(ctx context.Context, w *worker, rec *recorder) {
			var out struct {
				User struct {
					ID string `json:"id"`
				} `json:"user"`
			}
			body := map[string]any{"user": map[string]any{
				"name": fmt.Sprintf("bench-%s-%03d", b.runID, w.idx), "domain_id": "default",
				"password": w.password, "default_project_id": w.projectID}}
			if !b.call(w, rec, "create user", func() (response, error) {
				return b.c.do(ctx, http.MethodPost, "/identity/v3/users", b.adminTok, body, http.StatusCreated, &out)
			}) {
				fail(w)
				return
			}
			w.userID = out.User.ID
		}},
		{phaseRoleGrant, func(ctx context.Context, w *worker, rec *recorder) {
			path := "/identity/v3/projects/" + w.projectID + "/users/" + w.userID + "/roles/" + b.memberID
			if !b.call(w, rec, "grant member role", func() (response, error) {
				return b.c.do(ctx, http.MethodPut, path, b.adminTok, nil, http.StatusNoContent, nil)
			}) {
				fail(w)
			}
		}},
		{phaseQuotaSet, func(ctx context.Context, w *worker, rec *recorder) {
			// Neutron's default quotas (500 ports, 100 networks and subnets
			// per project) may be below what a client creates: as an
			// operator would, the admin raises them to twice the need.
			ports := b.opts.PortQuota
			if ports == 0 {
				ports = max(500, 2*share(b.opts.Ports, b.opts.Clients, w.idx))
			}
			nets := max(100, 2*b.opts.NetworksPerClient)
			body := map[string]any{"quota": map[string]any{"port": ports, "network": nets, "subnet": nets}}
			if !b.call(w, rec, "set quota", func() (response, error) {
				r, err := b.c.do(ctx, http.MethodPut, "/v2.0/quotas/"+w.projectID, b.adminTok, body, http.StatusOK, nil)
				var se *statusError
				if errors.As(err, &se) && se.status == http.StatusNotFound {
					b.noQuotaAPI.Store(true)
					return r, nil
				}
				return r, err
			}) {
				fail(w)
			}
		}},
		{phaseTokenIssue, func(ctx context.Context, w *worker, rec *recorder) {
			if !b.call(w, rec, "issue token", func() (response, error) {
				tok, r, err := b.c.passwordToken(ctx, w.userID, w.password, w.projectID, false)
				w.token = tok
				return r, err
			}) {
				fail(w)
			}
		}},
		{phaseNetworkCreate, func(ctx context.Context, w *worker, rec *recorder) {
			for k := 0; k < b.opts.NetworksPerClient && ctx.Err() == nil; k++ {
				var out struct {
					Network struct {
						ID string `json:"id"`
					} `json:"network"`
				}
				name := fmt.Sprintf("bench-%d-%d", w.idx, k)
				body := map[string]any{"network": map[string]any{"name": name}}
				g := w.idx*b.opts.NetworksPerClient + k
				if b.call(w, rec, "create network", func() (response, error) {
					r, err := b.c.do(ctx, http.MethodPost, "/v2.0/networks", w.token, body, http.StatusCreated, &out)
					if err == nil && out.Network.ID == "" {
						err = fmt.Errorf("POST /v2.0/networks: answer without an id")
					}
					return r, err
				}) {
					w.nets = append(w.nets, &netState{id: out.Network.ID, name: name, cidr: subnetCIDR(g)})
				}
			}
		}},
		{phaseSubnetCreate, func(ctx context.Context, w *worker, rec *recorder) {
			for _, n := range w.nets {
				if ctx.Err() != nil {
					return
				}
				var out struct {
					Subnet struct {
						ID   string `json:"id"`
						CIDR string `json:"cidr"`
					} `json:"subnet"`
				}
				body := map[string]any{"subnet": map[string]any{
					"network_id": n.id, "ip_version": 4, "cidr": n.cidr, "name": n.name}}
				if b.call(w, rec, "create subnet", func() (response, error) {
					r, err := b.c.do(ctx, http.MethodPost, "/v2.0/subnets", w.token, body, http.StatusCreated, &out)
					if err == nil && out.Subnet.CIDR != n.cidr {
						err = fmt.Errorf("POST /v2.0/subnets: cidr %q, want %q", out.Subnet.CIDR, n.cidr)
					}
					return r, err
				}) {
					n.subnetID = out.Subnet.ID
				}
			}
		}},
		{phasePortCreate, func(ctx context.Context, w *worker, rec *recorder) {
			var nets []*netState
			for _, n := range w.nets {
				if n.subnetID != "" {
					nets = append(nets, n)
				}
			}
			count := share(b.opts.Ports, b.opts.Clients, w.idx)
			if len(nets) == 0 {
				if count > 0 {
					rec.errors += count
					b.errs.add(fmt.Sprintf("create port (client %d)", w.idx), fmt.Errorf("no network with a subnet: %d ports not attempted", count))
				}
				return
			}
			for j := 0; j < count && ctx.Err() == nil; j++ {
				n := nets[j%len(nets)]
				var out struct {
					Port struct {
						ID       string `json:"id"`
						FixedIPs []struct {
							SubnetID  string `json:"subnet_id"`
							IPAddress string `json:"ip_address"`
						} `json:"fixed_ips"`
					} `json:"port"`
				}
				body := map[string]any{"port": map[string]any{
					"network_id": n.id, "name": fmt.Sprintf("bench-%d-%d", w.idx, j)}}
				if b.call(w, rec, "create port", func() (response, error) {
					r, err := b.c.do(ctx, http.MethodPost, "/v2.0/ports", w.token, body, http.StatusCreated, &out)
					if err == nil && (out.Port.ID == "" || len(out.Port.FixedIPs) != 1 || out.Port.FixedIPs[0].SubnetID != n.subnetID) {
						err = fmt.Errorf("POST /v2.0/ports: want an id and one address in subnet %s, got %+v", n.subnetID, out.Port)
					}
					return r, err
				}) {
					p := &portRef{id: out.Port.ID, ip: out.Port.FixedIPs[0].IPAddress}
					n.ports = append(n.ports, p)
					w.ports = append(w.ports, p)
					b.livePorts.Add(1)
				}
			}
		}},
		{phaseListByNetwork, func(ctx context.Context, w *worker, rec *recorder) {
			if len(w.nets) == 0 {
				return
			}
			for j := 0; j < b.opts.Lists && ctx.Err() == nil; j++ {
				n := w.nets[j%len(w.nets)]
				path := "/v2.0/ports?" + url.Values{"network_id": {n.id}}.Encode()
				b.call(w, rec, "list ports by network", func() (response, error) {
					var out portList
					r, err := b.c.do(ctx, http.MethodGet, path, w.token, nil, http.StatusOK, &out)
					if err == nil && len(out.Ports) != len(n.ports) {
						err = fmt.Errorf("GET %s: %d ports, want %d", path, len(out.Ports), len(n.ports))
					}
					return r, err
				})
			}
		}},
		{phaseListByIP, func(ctx context.Context, w *worker, rec *recorder) {
			if len(w.ports) == 0 {
				return
			}
			for j := 0; j < b.opts.Lists && ctx.Err() == nil; j++ {
				// Spread the lookups over the client's ports.
				p := w.ports[(j*len(w.ports))/max(b.opts.Lists, 1)%len(w.ports)]
				path := "/v2.0/ports?" + url.Values{"fixed_ips": {"ip_address=" + p.ip}}.Encode()
				b.call(w, rec, "list ports by address", func() (response, error) {
					var out portList
					r, err := b.c.do(ctx, http.MethodGet, path, w.token, nil, http.StatusOK, &out)
					if err == nil && (len(out.Ports) != 1 || out.Ports[0].ID != p.id) {
						err = fmt.Errorf("GET %s: %d ports, want exactly port %s", path, len(out.Ports), p.id)
					}
					return r, err
				})
			}
		}},
		{phasePortGet, func(ctx context.Context, w *worker, rec *recorder) {
			for _, p := range w.ports {
				if ctx.Err() != nil {
					return
				}
				b.call(w, rec, "get port", func() (response, error) {
					var out struct {
						Port struct {
							ID string `json:"id"`
						} `json:"port"`
					}
					r, err := b.c.do(ctx, http.MethodGet, "/v2.0/ports/"+p.id, w.token, nil, http.StatusOK, &out)
					if err == nil && out.Port.ID != p.id {
						err = fmt.Errorf("GET /v2.0/ports/%s: answered port %q", p.id, out.Port.ID)
					}
					return r, err
				})
			}
		}},
		{phasePortDelete, func(ctx context.Context, w *worker, rec *recorder) {
			for _, p := range w.ports {
				if ctx.Err() != nil {
					return
				}
				if b.call(w, rec, "delete port", func() (response, error) {
					return b.c.do(ctx, http.MethodDelete, "/v2.0/ports/"+p.id, w.token, nil, http.StatusNoContent, nil)
				}) {
					b.livePorts.Add(-1)
				}
			}
		}},
		{phaseSubnetDelete, func(ctx context.Context, w *worker, rec *recorder) {
			for _, n := range w.nets {
				if ctx.Err() != nil {
					return
				}
				if n.subnetID == "" {
					continue
				}
				b.call(w, rec, "delete subnet", func() (response, error) {
					return b.c.do(ctx, http.MethodDelete, "/v2.0/subnets/"+n.subnetID, w.token, nil, http.StatusNoContent, nil)
				})
			}
		}},
		{phaseNetworkDelete, func(ctx context.Context, w *worker, rec *recorder) {
			for _, n := range w.nets {
				if ctx.Err() != nil {
					return
				}
				b.call(w, rec, "delete network", func() (response, error) {
					return b.c.do(ctx, http.MethodDelete, "/v2.0/networks/"+n.id, w.token, nil, http.StatusNoContent, nil)
				})
			}
		}},
	}
	for _, p := range phases {
		if err := b.phase(ctx, prof, p.name, p.fn); err != nil {
			return err
		}
		if p.name == phaseQuotaSet {
			b.res.QuotaNote = fmt.Sprintf("port quota of each project raised to max(500, 2 x its ports), network and subnet quotas to max(100, 2 x %d)", b.opts.NetworksPerClient)
			switch {
			case b.opts.PortQuota == -1:
				b.res.QuotaNote = "port quota unlimited (--port-quota -1)" + strings.TrimPrefix(b.res.QuotaNote, "port quota of each project raised to max(500, 2 x its ports)")
			case b.opts.PortQuota > 0:
				b.res.QuotaNote = fmt.Sprintf("port quota %d (--port-quota)", b.opts.PortQuota) + strings.TrimPrefix(b.res.QuotaNote, "port quota of each project raised to max(500, 2 x its ports)")
			}
			if b.noQuotaAPI.Load() {
				b.res.QuotaNote = "the server has no quota API (PUT /v2.0/quotas/{project} answered 404): its own limits apply"
			}
		}
	}
	return nil
}

// portList is a port list answer, decoded only as far as it is checked.
type portList struct {
	Ports []struct {
		ID string `json:"id"`
	} `json:"ports"`
}

// cleanupIdentity deletes the users and projects the run created on an
// external server (a server the benchmark started is thrown away whole).
func (b *bench) cleanupIdentity(ctx context.Context) {
	if b.adminTok == "" {
		return
	}
	for _, w := range b.workers {
		if w.userID != "" {
			if _, err := b.c.do(ctx, http.MethodDelete, "/identity/v3/users/"+w.userID, b.adminTok, nil, http.StatusNoContent, nil); err != nil {
				b.progress("cleanup: %v", err)
			}
		}
		if w.projectID != "" {
			if _, err := b.c.do(ctx, http.MethodDelete, "/identity/v3/projects/"+w.projectID, b.adminTok, nil, http.StatusNoContent, nil); err != nil {
				b.progress("cleanup: %v", err)
			}
		}
	}
}

package service

import (
	"context"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
)

// Bindings returns a port's bindings, the active one first (admins only,
// binding-extended).
func (s *Service) Bindings(ctx context.Context, portID string) ([]map[string]any, error) {
	p, err := s.bindingPort(ctx, portID)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	if p.HostID != "" {
		out = append(out, p.BindingView(p.ActiveBinding(), true))
	}
	for _, b := range p.InactiveBindings {
		out = append(out, p.BindingView(b, false))
	}
	return out, nil
}

func (s *Service) bindingPort(ctx context.Context, portID string) (*model.Port, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.NotFound("Port", "Port", portID)
	}
	return s.GetPort(ctx, portID)
}

func bindingNotFound(portID, host string) error {
	return apierr.New(404, "PortBindingNotFound", "Binding for port %s for host %s could not be found.", portID, host)
}

// changeBinding applies change to a freshly loaded port in a transaction.
func (s *Service) changeBinding(ctx context.Context, portID string, change func(p *model.Port, n *model.Network) error) (*model.Port, error) {
	if _, err := s.bindingPort(ctx, portID); err != nil {
		return nil, err
	}
	var out *model.Port
	err := retry(ctx, "change port binding", func() error {
		p, rev, err := load[model.Port](ctx, s, Ports, portID)
		if err != nil {
			return err
		}
		if p == nil {
			return apierr.NotFound("Port", "Port", portID)
		}
		n, _ := cachedAs[*model.Network](s, Networks, p.NetworkID)
		if n == nil {
			return apierr.NotFound("Network", "Network", p.NetworkID)
		}
		if err := change(p, n); err != nil {
			return err
		}
		p.Touch()
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Ports, portID), rev)}, []clientv3.Op{s.putJSON(Ports, portID, p)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = p
		return nil
	})
	return out, err
}

// CreateBinding adds an inactive binding to another host (the target of a
// live migration); a port without a host gets it as its active binding.
func (s *Service) CreateBinding(ctx context.Context, portID, host, vnicType string, profile map[string]any) (map[string]any, error) {
	var view map[string]any
	_, err := s.changeBinding(ctx, portID, func(p *model.Port, n *model.Network) error {
		if p.HostID == host || slices.ContainsFunc(p.InactiveBindings, func(b model.Binding) bool { return b.Host == host }) {
			return apierr.Conflict("PortBindingAlreadyExists", "Binding for port %s on host %s already exists.", portID, host)
		}
		if vnicType == "" {
			vnicType = p.VNICType
		}
		// Bind the candidate with the same mechanism as the active binding.
		probe := &model.Port{Standard: model.Standard{ID: p.ID}, HostID: host, VNICType: vnicType}
		s.bind(probe, n)
		b := model.Binding{Host: host, VIFType: probe.VIFType, VIFDetails: probe.VIFDetails, VNICType: vnicType, Profile: profile}
		if b.Profile == nil {
			b.Profile = map[string]any{}
		}
		if p.HostID == "" {
			p.HostID, p.VIFType, p.VIFDetails, p.VNICType, p.Profile = b.Host, b.VIFType, b.VIFDetails, b.VNICType, b.Profile
			view = p.BindingView(b, true)
			return nil
		}
		p.InactiveBindings = append(p.InactiveBindings, b)
		view = p.BindingView(b, false)
		return nil
	})
	return view, err
}

// ActivateBinding makes the binding to host the active one; the previous
// active binding becomes inactive.
func (s *Service) ActivateBinding(ctx context.Context, portID, host string) (map[string]any, error) {
	var view map[string]any
	_, err := s.changeBinding(ctx, portID, func(p *model.Port, _ *model.Network) error {
		if p.HostID == host {
			return apierr.Conflict("PortBindingAlreadyActive", "Binding for port %s on host %s is already active.", portID, host)
		}
		i := slices.IndexFunc(p.InactiveBindings, func(b model.Binding) bool { return b.Host == host })
		if i < 0 {
			return bindingNotFound(portID, host)
		}
		b := p.InactiveBindings[i]
		p.InactiveBindings = slices.Delete(p.InactiveBindings, i, i+1)
		if p.HostID != "" {
			p.InactiveBindings = append(p.InactiveBindings, p.ActiveBinding())
		}
		p.HostID, p.VIFType, p.VIFDetails, p.VNICType, p.Profile = b.Host, b.VIFType, b.VIFDetails, b.VNICType, b.Profile
		p.Status = model.StatusDown
		view = p.BindingView(b, true)
		return nil
	})
	return view, err
}

// DeleteBinding removes a binding; removing the active one unbinds the port.
func (s *Service) DeleteBinding(ctx context.Context, portID, host string) error {
	_, err := s.changeBinding(ctx, portID, func(p *model.Port, _ *model.Network) error {
		if p.HostID == host && host != "" {
			p.HostID, p.VIFType, p.VIFDetails, p.Profile = "", model.VIFUnbound, map[string]any{}, map[string]any{}
			p.Status = model.StatusDown
			return nil
		}
		i := slices.IndexFunc(p.InactiveBindings, func(b model.Binding) bool { return b.Host == host })
		if i < 0 {
			return bindingNotFound(portID, host)
		}
		p.InactiveBindings = slices.Delete(p.InactiveBindings, i, i+1)
		return nil
	})
	return err
}

package service

import (
	"context"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
)

// trustedOwner reports whether a port belongs to the network's own
// services (device owner "network:…"): Neutron applies no security groups
// to them (net.is_port_trusted).
func trustedOwner(owner string) bool { return strings.HasPrefix(owner, "network:") }

func portSecurityRequired() error {
	return apierr.New(400, "PortSecurityAndIPRequiredForSecurityGroups",
		"Port security must be enabled and port must have an IP address in order to use security groups.")
}

// planPortGroups settles a new port's security groups, as Neutron: none
// for the network's service ports, none (and none may be asked for)
// without port security, else the ones asked for or the project's default
// group (created if missing). It adds to the plan what keeps them valid.
func (s *Service) planPortGroups(ctx context.Context, p *portPlan, port *model.Port, f model.Fields) error {
	if trustedOwner(port.DeviceOwner) {
		port.SecurityGroups = []string{}
		return nil
	}
	if !port.PortSecurityEnabled {
		if len(port.SecurityGroups) > 0 {
			return portSecurityRequired()
		}
		port.SecurityGroups = []string{}
		return nil
	}
	if !f.Has("security_groups") {
		id, err := s.EnsureDefaultSecurityGroup(ctx, port.ProjectID)
		if err != nil {
			return err
		}
		port.SecurityGroups = []string{}
		if id != "" {
			port.SecurityGroups = []string{id}
		}
	}
	return s.holdPortGroups(ctx, p, port, nil)
}

// planPortGroupsUpdate checks a port update against its security groups:
// port security cannot be turned off while the port keeps groups, nor
// groups given to a port without it; changed groups are checked and held.
func (s *Service) planPortGroupsUpdate(ctx context.Context, p *portPlan, port *model.Port, f model.Fields, old []string) error {
	given := f.Has("security_groups")
	if !port.PortSecurityEnabled {
		if given && len(port.SecurityGroups) > 0 {
			return portSecurityRequired()
		}
		if !given && len(old) > 0 {
			return apierr.Conflict("PortSecurityPortHasSecurityGroup",
				"Port has security group associated. Cannot disable port security or IP address until security group is removed.")
		}
	}
	if !given {
		return nil
	}
	if trustedOwner(port.DeviceOwner) {
		port.SecurityGroups = []string{}
	}
	return s.holdPortGroups(ctx, p, port, old)
}

// holdPortGroups checks that a port's groups exist and belong to its
// project (an admin may use any), that they do not mix stateful and
// stateless groups, and records the port in the groups it joins (and out
// of those it leaves, old being its groups before).
func (s *Service) holdPortGroups(ctx context.Context, p *portPlan, port *model.Port, old []string) error {
	c := creds(ctx)
	var missing []string
	stateful := map[bool]bool{}
	for _, id := range port.SecurityGroups {
		g, err := s.loadGroup(ctx, id)
		if err != nil {
			return err
		}
		if g == nil || !c.IsAdmin() && g.ProjectID != port.ProjectID {
			missing = append(missing, id)
			continue
		}
		stateful[g.Stateful] = true
	}
	if len(missing) > 0 {
		return SecurityGroupNotFound(strings.Join(missing, ", "))
	}
	if len(stateful) > 1 {
		return apierr.Conflict("SecurityGroupConflict", "Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.")
	}
	for _, id := range port.SecurityGroups {
		if slices.Contains(old, id) {
			continue
		}
		// The group must still exist when the port joins it; one compare
		// per group however many ports of a bulk create join it.
		if key := s.st.Keys.Resource(SecurityGroups, id); !p.taken["exists:"+key] {
			p.taken["exists:"+key] = true
			p.cmps = append(p.cmps, exists(key))
		}
		p.ops = append(p.ops, clientv3.OpPut(s.st.Keys.SecurityGroupPort(id, port.ID), ""))
	}
	for _, id := range old {
		if !slices.Contains(port.SecurityGroups, id) {
			p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.SecurityGroupPort(id, port.ID)))
		}
	}
	return nil
}

// portGroupDeleteOps take a deleted port out of its groups.
func (s *Service) portGroupDeleteOps(port *model.Port) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(port.SecurityGroups))
	for _, id := range port.SecurityGroups {
		ops = append(ops, clientv3.OpDelete(s.st.Keys.SecurityGroupPort(id, port.ID)))
	}
	return ops
}

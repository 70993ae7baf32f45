package policy

import "github.com/vland/vland/internal/model"

// Grants is what RBAC policies give the caller's project on one network
// (beyond the network's own wildcard shared and external flags).
type Grants struct {
	Shared   bool // an access_as_shared policy targets the project
	External bool // an access_as_external policy targets the project
}

// CanSeeNetwork reports whether c may read network n: its owner, an admin,
// anyone for a shared or external network, and projects RBAC grants either.
func CanSeeNetwork(c *Credentials, n *model.Network, g Grants) bool {
	return c.IsAdmin() || c.Owns(n.ProjectID) || n.Shared || n.External || g.Shared || g.External
}

// CanUseNetwork reports whether c may create ports on network n.
func CanUseNetwork(c *Credentials, n *model.Network, g Grants) bool {
	return c.IsAdmin() || c.Owns(n.ProjectID) || n.Shared || g.Shared
}

// CanSeeSubnet reports whether c may read subnet s of network n.
func CanSeeSubnet(c *Credentials, s *model.Subnet, n *model.Network, g Grants) bool {
	return c.IsAdmin() || c.Owns(s.ProjectID) || n != nil && (n.Shared || g.Shared)
}

// CanSeePort reports whether c may read port p of network n: its owner,
// the network's owner, or an admin.
func CanSeePort(c *Credentials, p *model.Port, n *model.Network) bool {
	return c.IsAdmin() || c.Owns(p.ProjectID) || n != nil && c.Owns(n.ProjectID)
}

// CanChange reports whether c may change or delete an object of projectID.
func CanChange(c *Credentials, projectID string) bool {
	return c.IsAdmin() || c.CanWrite() && c.Owns(projectID)
}

// HiddenAttributes returns the rendered attributes of a kind c may not see.
func HiddenAttributes(c *Credentials, kind string) []string {
	if c.IsAdmin() {
		return nil
	}
	switch kind {
	case "networks":
		return model.NetworkAdminOnlyViews
	case "ports":
		return model.PortAdminOnlyViews
	}
	return nil
}

package policy

import "github.com/vland/vland/internal/model"

// CanSeeNetwork reports whether c may read network n: its owner, an admin,
// anyone for a shared network, and readers of external networks.
func CanSeeNetwork(c *Credentials, n *model.Network) bool {
	return c.IsAdmin() || c.Owns(n.ProjectID) || n.Shared || n.External
}

// CanUseNetwork reports whether c may create ports on network n.
func CanUseNetwork(c *Credentials, n *model.Network) bool {
	return c.IsAdmin() || c.Owns(n.ProjectID) || n.Shared
}

// CanSeeSubnet reports whether c may read subnet s of network n.
func CanSeeSubnet(c *Credentials, s *model.Subnet, n *model.Network) bool {
	return c.IsAdmin() || c.Owns(s.ProjectID) || n != nil && n.Shared
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

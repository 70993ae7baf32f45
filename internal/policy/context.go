// Package policy decides who may see and change what, following Neutron's
// default policies: admin, member and reader roles, project ownership,
// shared and external networks, and admin-only attributes.
package policy

import (
	"context"
	"slices"
)

// Role names that exist from the start.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// Credentials is who is calling: the identity behind a validated token.
type Credentials struct {
	UserID      string
	UserName    string
	ProjectID   string
	ProjectName string
	DomainID    string
	Roles       []string
}

// IsAdmin reports whether the caller holds the admin role.
func (c *Credentials) IsAdmin() bool { return c != nil && slices.Contains(c.Roles, RoleAdmin) }

// CanWrite reports whether the caller may change anything: readers may not.
func (c *Credentials) CanWrite() bool {
	if c == nil {
		return false
	}
	return c.IsAdmin() || slices.Contains(c.Roles, RoleMember)
}

// Owns reports whether the caller's project owns a resource of projectID.
func (c *Credentials) Owns(projectID string) bool {
	return c != nil && c.ProjectID != "" && c.ProjectID == projectID
}

type ctxKey struct{}

// With returns ctx carrying the caller's credentials.
func With(ctx context.Context, c *Credentials) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// From returns the credentials in ctx, or nil.
func From(ctx context.Context) *Credentials {
	c, _ := ctx.Value(ctxKey{}).(*Credentials)
	return c
}

// Package identity answers "who is calling": the builtin Keystone v3 subset
// vland serves under /identity, validation against an external Keystone, and
// the development-only noauth mode.
package identity

import (
	"errors"
	"net/http"

	"github.com/vland/vland/internal/policy"
)

// ErrUnauthenticated means the request carries no valid token.
var ErrUnauthenticated = errors.New("the request you have made requires authentication")

// Authenticator turns a request's credentials (X-Auth-Token, or headers in
// noauth mode) into the caller's identity.
type Authenticator interface {
	Authenticate(r *http.Request) (*policy.Credentials, error)
}

// NoAuth trusts every request as admin of the project named by X-Project-Id.
type NoAuth struct {
	// DefaultProject is used when the request names none.
	DefaultProject string
}

// Authenticate implements Authenticator.
func (n NoAuth) Authenticate(r *http.Request) (*policy.Credentials, error) {
	p := r.Header.Get("X-Project-Id")
	if p == "" {
		p = n.DefaultProject
	}
	return &policy.Credentials{
		UserID:    "noauth",
		UserName:  "noauth",
		ProjectID: p,
		DomainID:  "default",
		Roles:     []string{policy.RoleAdmin, policy.RoleMember, policy.RoleReader},
	}, nil
}

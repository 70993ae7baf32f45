package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/vland/vland/internal/store"
)

// The records below are what the builtin identity service keeps in etcd, one
// JSON value per key. modRev is the etcd revision that last wrote the key: the
// mirror fills it so that updates can compare-and-swap without reading etcd.

// domainRec is a Keystone domain. Only the bootstrap "default" domain exists.
type domainRec struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	modRev      int64
}

// projectRec is a Keystone project (Neutron's tenant).
type projectRec struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	DomainID    string   `json:"domain_id"`
	Description string   `json:"description"`
	Enabled     bool     `json:"enabled"`
	Tags        []string `json:"tags,omitempty"`
	modRev      int64
}

// userRec is a Keystone user. The password hash lives under its own key so
// that its revision tells when the password last changed.
type userRec struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	DomainID         string `json:"domain_id"`
	Enabled          bool   `json:"enabled"`
	DefaultProjectID string `json:"default_project_id,omitempty"`
	Email            string `json:"email,omitempty"`
	Description      string `json:"description,omitempty"`
	modRev           int64
}

// roleRec is a Keystone role; roles are global (no domain-specific roles).
type roleRec struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	modRev      int64
}

func (r *domainRec) key() nameKey      { return nameKey{kindDomain, globalScope, r.Name} }
func (r *domainRec) setRev(rev int64)  { r.modRev = rev }
func (r *projectRec) key() nameKey     { return nameKey{kindProject, r.DomainID, r.Name} }
func (r *projectRec) setRev(rev int64) { r.modRev = rev }
func (r *userRec) key() nameKey        { return nameKey{kindUser, r.DomainID, r.Name} }
func (r *userRec) setRev(rev int64)    { r.modRev = rev }
func (r *roleRec) key() nameKey        { return nameKey{kindRole, globalScope, r.Name} }
func (r *roleRec) setRev(rev int64)    { r.modRev = rev }

// passwordRec is a user's bcrypt hash and the revision that set it.
type passwordRec struct {
	hash   []byte
	modRev int64
}

// Object kinds, as they appear in keys and in Keystone's error messages.
const (
	kindDomain  = "domain"
	kindProject = "project"
	kindUser    = "user"
	kindRole    = "role"
)

// globalScope is the name-index scope of kinds whose names are unique
// across the whole service (domains and roles) rather than per domain.
const globalScope = "-"

// defaultDomainID is the id Keystone gives the domain it bootstraps.
const defaultDomainID = "default"

// implied lists the roles each default role implies, as keystone-manage
// bootstrap sets them up: a token carrying admin also carries member and
// reader, so policy checks on "member" pass for admins.
var implied = map[string][]string{
	"admin":  {"member", "reader"},
	"member": {"reader"},
}

// keys names every etcd key of the identity service. Names used in keys are
// path-escaped so that a name containing "/" cannot forge another key.
type keys struct{ k store.Keys }

func (k keys) root() string                  { return k.k.IdentityPrefix() }
func (k keys) signingKey() string            { return k.k.Identity("signing-key") }
func (k keys) domain(id string) string       { return k.k.Identity("domains", id) }
func (k keys) project(id string) string      { return k.k.Identity("projects", id) }
func (k keys) user(id string) string         { return k.k.Identity("users", id) }
func (k keys) password(userID string) string { return k.k.Identity("passwords", userID) }
func (k keys) role(id string) string         { return k.k.Identity("roles", id) }
func (k keys) revoked(auditID string) string { return k.k.Identity("revoked", auditID) }

// name is the uniqueness index of one kind: creating an object puts this key
// in the same transaction only if it is absent.
func (k keys) name(kind, scope, name string) string {
	return k.k.Identity("names", kind, url.PathEscape(scope), url.PathEscape(name))
}

// assignment grants role to user on project; the key's create revision tells
// tokens issued before the grant from tokens issued after it.
func (k keys) assignment(projectID, userID, roleID string) string {
	return k.k.Identity("assignments", projectID, userID, roleID)
}

// projectAssignments covers every grant on one project, so deleting the
// project removes them in the same transaction.
func (k keys) projectAssignments(projectID string) string {
	return k.k.IdentityPrefix("assignments", projectID)
}

// parse splits a watched key into its category and the remaining parts.
func (k keys) parse(key string) (category string, parts []string, ok bool) {
	rest, found := strings.CutPrefix(key, k.root())
	if !found {
		return "", nil, false
	}
	parts = strings.Split(rest, "/")
	return parts[0], parts[1:], true
}

// newID returns a random id shaped like Keystone's (uuid4 hex).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:])
}

// newAuditID returns a random audit id shaped like Keystone's (22 characters
// of URL-safe base64).
func newAuditID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

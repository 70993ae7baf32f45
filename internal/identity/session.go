package identity

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vland/vland/internal/policy"
)

// session is a validated token: the claims plus the current records they
// name. Records are shared with the mirror and must not be modified.
type session struct {
	claims        *claims
	user          *userRec
	userDomain    *domainRec
	project       *projectRec // nil when unscoped
	projectDomain *domainRec
	roles         []*roleRec // granted roles plus the ones they imply
}

// hasRole reports whether the session carries the named role.
func (s *session) hasRole(name string) bool {
	return slices.ContainsFunc(s.roles, func(r *roleRec) bool { return r.Name == name })
}

func (s *session) isAdmin() bool { return s.hasRole(policy.RoleAdmin) }

// credentials is the session as the rest of vland sees a caller.
func (s *session) credentials() *policy.Credentials {
	c := &policy.Credentials{UserID: s.user.ID, UserName: s.user.Name, DomainID: s.user.DomainID}
	if s.project != nil {
		c.ProjectID, c.ProjectName, c.DomainID = s.project.ID, s.project.Name, s.project.DomainID
	}
	c.Roles = make([]string, len(s.roles))
	for i, r := range s.roles {
		c.Roles[i] = r.Name
	}
	return c
}

// validate opens a token and checks it against the mirror: expiry,
// revocation, and that its user, project and grants still stand.
func (b *Builtin) validate(ctx context.Context, token string) (*session, error) {
	c, err := b.signer.open(token)
	if err != nil {
		return nil, errTokenInvalid
	}
	if time.Now().UnixMicro() >= c.Expires {
		return nil, errTokenExpired
	}
	s, stale, err := b.check(c)
	if err != nil && stale {
		// The token was issued by a server that had seen newer identity
		// data (a user or grant created a moment ago): catch up and retry.
		wctx, cancel := context.WithTimeout(ctx, staleWait)
		werr := b.mirror.waitRev(wctx, c.Rev)
		cancel()
		if werr == nil {
			s, _, err = b.check(c)
		}
	}
	return s, err
}

// check validates claims against the mirror; stale reports that the mirror
// is older than the token, so a failure may be this server lagging.
func (b *Builtin) check(c *claims) (s *session, stale bool, err error) {
	b.mirror.read(func(st *mirrorState, rev int64) {
		stale = c.Rev > rev
		if _, revoked := st.revoked[c.Audit[0]]; revoked {
			err = errTokenRevoked
			return
		}
		s = &session{claims: c}
		if err = s.bindUser(st, c.User, c.Rev); err != nil {
			return
		}
		if c.Project == "" {
			return
		}
		if err = s.bindProject(st, c.Project); err != nil {
			return
		}
		direct := make([]*roleRec, 0, len(c.Roles))
		for _, roleID := range c.Roles {
			granted, ok := st.grants[c.Project][c.User][roleID]
			role := st.roles[roleID]
			if !ok || granted > c.Rev || role == nil {
				err = fmt.Errorf("%w: role %s no longer granted", errTokenRevoked, roleID)
				return
			}
			direct = append(direct, role)
		}
		s.roles = st.withImplied(direct)
	})
	if err != nil {
		return nil, stale, err
	}
	return s, stale, nil
}

// bindUser checks the user exists, is enabled, and has not changed its
// password since rev.
func (s *session) bindUser(st *mirrorState, userID string, rev int64) error {
	u := st.users[userID]
	if u == nil || !u.Enabled {
		return fmt.Errorf("%w: user %s unknown or disabled", ErrUnauthenticated, userID)
	}
	d := st.domains[u.DomainID]
	if d == nil || !d.Enabled {
		return fmt.Errorf("%w: domain of user %s unknown or disabled", ErrUnauthenticated, userID)
	}
	if pw, ok := st.passwords[userID]; ok && pw.modRev > rev {
		return fmt.Errorf("%w: password of user %s changed", errTokenRevoked, userID)
	}
	s.user, s.userDomain = u, d
	return nil
}

// bindProject checks the project and its domain exist and are enabled.
func (s *session) bindProject(st *mirrorState, projectID string) error {
	p := st.projects[projectID]
	if p == nil || !p.Enabled {
		return fmt.Errorf("%w: project %s unknown or disabled", ErrUnauthenticated, projectID)
	}
	d := st.domains[p.DomainID]
	if d == nil || !d.Enabled {
		return fmt.Errorf("%w: domain of project %s unknown or disabled", ErrUnauthenticated, projectID)
	}
	s.project, s.projectDomain = p, d
	return nil
}

// issueRequest says whom to issue a token for.
type issueRequest struct {
	userID    string
	projectID string // empty: unscoped
	// defaultScope scopes to the user's default project when projectID is
	// empty and the user holds a role there, as Keystone does.
	defaultScope bool
	methods      authMethod
	// pwRev, when set, is the revision of the password that was checked: a
	// password changed since then fails the issue.
	pwRev int64
	// parent is the token being rescoped: the new one keeps its expiry and
	// audit chain.
	parent *claims
}

// issue signs a token for an authenticated user.
func (b *Builtin) issue(req issueRequest) (string, *session, error) {
	now := time.Now()
	c := &claims{
		User:    req.userID,
		Project: req.projectID,
		Issued:  now.UnixMicro(),
		Expires: now.Add(b.ttl).UnixMicro(),
		Audit:   []string{newAuditID()},
		Methods: uint8(req.methods),
	}
	if req.parent != nil {
		c.Expires = req.parent.Expires
		c.Audit = append(c.Audit, req.parent.Audit[0])
		c.Methods |= req.parent.Methods
	}
	var s *session
	var err error
	b.mirror.read(func(st *mirrorState, rev int64) {
		c.Rev = rev
		s = &session{claims: c}
		if err = s.bindUser(st, c.User, rev); err != nil {
			return
		}
		if req.pwRev != 0 && st.passwords[c.User].modRev != req.pwRev {
			err = fmt.Errorf("%w: password changed during authentication", ErrUnauthenticated)
			return
		}
		if c.Project == "" && req.defaultScope && s.user.DefaultProjectID != "" {
			if p := st.projects[s.user.DefaultProjectID]; p != nil && p.Enabled && len(st.userRoles(p.ID, c.User)) > 0 {
				c.Project = p.ID
			}
		}
		if c.Project == "" {
			return
		}
		err = s.scope(st, c)
	})
	if err != nil {
		return "", nil, err
	}
	tok, err := b.signer.seal(c)
	if err != nil {
		return "", nil, err
	}
	return tok, s, nil
}

// scope binds the session to c.Project and records the roles granted there;
// a user with no role on the project may not scope to it.
func (s *session) scope(st *mirrorState, c *claims) error {
	if err := s.bindProject(st, c.Project); err != nil {
		return err
	}
	grants := st.userRoles(c.Project, c.User)
	if len(grants) == 0 {
		return fmt.Errorf("%w: user %s has no role on project %s", ErrUnauthenticated, c.User, c.Project)
	}
	direct := make([]*roleRec, len(grants))
	for i, g := range grants {
		c.Roles = append(c.Roles, g.role.ID)
		direct[i] = g.role
	}
	s.roles = st.withImplied(direct)
	return nil
}

package identity

import (
	"context"
	"net/http"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// userBody renders a user as Keystone does (never its password).
func userBody(r *http.Request, u *userRec) map[string]any {
	out := map[string]any{
		"id":                  u.ID,
		"name":                u.Name,
		"domain_id":           u.DomainID,
		"enabled":             u.Enabled,
		"password_expires_at": nil,
		"options":             map[string]any{},
		"links":               selfLink(r, "users", u.ID),
	}
	if u.DefaultProjectID != "" {
		out["default_project_id"] = u.DefaultProjectID
	}
	if u.Email != "" {
		out["email"] = u.Email
	}
	if u.Description != "" {
		out["description"] = u.Description
	}
	return out
}

// userInput is the user object of a create or update body.
type userInput struct {
	Name             *string `json:"name"`
	DomainID         *string `json:"domain_id"`
	Password         *string `json:"password"`
	DefaultProjectID *string `json:"default_project_id"`
	Email            *string `json:"email"`
	Description      *string `json:"description"`
	Enabled          *bool   `json:"enabled"`
}

// apply copies the given fields (but the password) onto u.
func (in *userInput) apply(u *userRec) error {
	if in.Name != nil {
		if err := checkName(kindUser, *in.Name); err != nil {
			return err
		}
		u.Name = *in.Name
	}
	for _, f := range []struct {
		src *string
		dst *string
	}{{in.DefaultProjectID, &u.DefaultProjectID}, {in.Email, &u.Email}, {in.Description, &u.Description}} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
	if in.Enabled != nil {
		u.Enabled = *in.Enabled
	}
	return nil
}

// createUser stores a new user and, when withPassword, its password hash,
// in one transaction; names are unique within a domain.
func (b *Builtin) createUser(ctx context.Context, u *userRec, password string, withPassword bool) error {
	if err := checkName(kindUser, u.Name); err != nil {
		return err
	}
	var domainOK bool
	b.mirror.read(func(st *mirrorState, _ int64) { domainOK = st.domains[u.DomainID] != nil })
	if !domainOK {
		return errBadRequest("Could not find domain: %s.", u.DomainID)
	}
	ops := []clientv3.Op{b.putOp(b.keys.user(u.ID), u)}
	if withPassword {
		hash, err := hashPassword(password)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(b.keys.password(u.ID), string(hash)))
	}
	return b.createNamed(ctx, kindUser, u.DomainID, u.Name, u.ID, []string{b.keys.domain(u.DomainID)}, ops...)
}

// postUser is POST /v3/users.
func (b *Builtin) postUser(w http.ResponseWriter, r *http.Request, s *session) {
	var body struct {
		User *userInput `json:"user"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	in := body.User
	if in == nil || in.Name == nil {
		writeError(w, errBadRequest("Invalid input for field 'user': 'name' is a required property."))
		return
	}
	u := &userRec{ID: newID(), DomainID: defaultDomainID, Enabled: true}
	if in.DomainID != nil && *in.DomainID != "" {
		u.DomainID = *in.DomainID
	}
	if err := in.apply(u); err != nil {
		writeError(w, err)
		return
	}
	var password string
	if in.Password != nil {
		password = *in.Password
	}
	if err := b.createUser(r.Context(), u, password, in.Password != nil); err != nil {
		b.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": userBody(r, u)})
}

// listUsers is GET /v3/users with Keystone's name, domain_id and enabled
// filters.
func (b *Builtin) listUsers(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	out := []any{}
	b.mirror.read(func(st *mirrorState, _ int64) {
		for _, u := range sortedValues(st.users, func(u *userRec) string { return u.Name }) {
			if match(q.Get("name"), u.Name) && match(q.Get("domain_id"), u.DomainID) && matchBool(q, "enabled", u.Enabled) {
				out = append(out, userBody(r, u))
			}
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "links": listLinks(r)})
}

// getUser is GET /v3/users/{id}: admins see anyone, users themselves.
func (b *Builtin) getUser(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !s.isAdmin() && s.user.ID != id {
		writeError(w, errForbidden("identity:get_user"))
		return
	}
	var u *userRec
	b.mirror.read(func(st *mirrorState, _ int64) { u = st.users[id] })
	if u == nil {
		writeError(w, errNotFound(kindUser, id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": userBody(r, u)})
}

// patchUser is PATCH /v3/users/{id}; a new password revokes the user's
// tokens (its revision postdates them).
func (b *Builtin) patchUser(w http.ResponseWriter, r *http.Request, _ *session) {
	var body struct {
		User *userInput `json:"user"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	in := body.User
	if in == nil {
		writeError(w, errBadRequest("Invalid input for field 'user': expecting an object."))
		return
	}
	var extra []clientv3.Op
	if in.Password != nil {
		hash, err := hashPassword(*in.Password)
		if err != nil {
			b.serverError(w, r, err)
			return
		}
		extra = append(extra, clientv3.OpPut(b.keys.password(r.PathValue("id")), string(hash)))
	}
	id := r.PathValue("id")
	for range maxRetries {
		var cur *userRec
		b.mirror.read(func(st *mirrorState, _ int64) { cur = st.users[id] })
		if cur == nil {
			writeError(w, errNotFound(kindUser, id))
			return
		}
		if in.DomainID != nil && *in.DomainID != cur.DomainID {
			writeError(w, errBadRequest("Cannot change Domain ID."))
			return
		}
		next := *cur
		if err := in.apply(&next); err != nil {
			writeError(w, err)
			return
		}
		ok, err := b.update(r.Context(), kindUser, b.keys.user(id), cur.modRev, cur.key(), next.key(), id, &next, extra...)
		if err != nil {
			b.serverError(w, r, err)
			return
		}
		if ok {
			writeJSON(w, http.StatusOK, map[string]any{"user": userBody(r, &next)})
			return
		}
	}
	writeError(w, errRaced)
}

// deleteUser is DELETE /v3/users/{id}.
func (b *Builtin) deleteUser(w http.ResponseWriter, r *http.Request, _ *session) {
	if err := b.removeUser(r.Context(), r.PathValue("id")); err != nil {
		b.serverError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeUser deletes a user, its name, password and grants. A grant
// created concurrently may outlive it; grants to missing users are ignored
// everywhere, and ids are never reused.
func (b *Builtin) removeUser(ctx context.Context, id string) error {
	for range maxRetries {
		var cur *userRec
		var ops []clientv3.Op
		b.mirror.read(func(st *mirrorState, _ int64) {
			cur = st.users[id]
			for projectID, byUser := range st.grants {
				for roleID := range byUser[id] {
					ops = append(ops, clientv3.OpDelete(b.keys.assignment(projectID, id, roleID)))
				}
			}
		})
		if cur == nil {
			return errNotFound(kindUser, id)
		}
		k := b.keys.user(id)
		ops = append(ops, clientv3.OpDelete(k),
			clientv3.OpDelete(b.keys.name(kindUser, cur.DomainID, cur.Name)),
			clientv3.OpDelete(b.keys.password(id)))
		ok, err := b.commit(ctx, "delete user",
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", cur.modRev)}, ops...)
		if err != nil || ok {
			return err
		}
	}
	return errRaced
}

// userProjects is GET /v3/users/{id}/projects: admins ask about anyone,
// users about themselves.
func (b *Builtin) userProjects(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !s.isAdmin() && s.user.ID != id {
		writeError(w, errForbidden("identity:list_user_projects"))
		return
	}
	var exists bool
	b.mirror.read(func(st *mirrorState, _ int64) { exists = st.users[id] != nil })
	if !exists {
		writeError(w, errNotFound(kindUser, id))
		return
	}
	b.writeUserProjects(w, r, id)
}

// writeUserProjects lists the enabled projects where a user holds a role.
func (b *Builtin) writeUserProjects(w http.ResponseWriter, r *http.Request, userID string) {
	out := []any{}
	b.mirror.read(func(st *mirrorState, _ int64) {
		for _, p := range sortedValues(st.projects, func(p *projectRec) string { return p.Name }) {
			if p.Enabled && len(st.userRoles(p.ID, userID)) > 0 {
				out = append(out, projectBody(r, p))
			}
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"projects": out, "links": listLinks(r)})
}

// changePassword is POST /v3/users/{id}/password: users change their own
// password by proving the old one (no token needed, as in Keystone).
func (b *Builtin) changePassword(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User *struct {
			Password         *string `json:"password"`
			OriginalPassword *string `json:"original_password"`
		} `json:"user"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.User == nil || body.User.Password == nil || body.User.OriginalPassword == nil {
		writeError(w, errBadRequest("Invalid input for field 'user': 'password' and 'original_password' are required properties."))
		return
	}
	id := r.PathValue("id")
	_, pwRev, err := b.checkUserPassword(&authInput{userID: id, password: *body.User.OriginalPassword})
	if err != nil {
		b.unauthorized(w, r)
		return
	}
	hash, err := hashPassword(*body.User.Password)
	if err != nil {
		b.serverError(w, r, err)
		return
	}
	k := b.keys.password(id)
	ok, err := b.commit(r.Context(), "change password",
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", pwRev)}, clientv3.OpPut(k, string(hash)))
	if err != nil {
		b.serverError(w, r, err)
		return
	}
	if !ok {
		writeError(w, errRaced)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

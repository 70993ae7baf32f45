package identity

import (
	"cmp"
	"net/http"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// domainBody renders a domain as Keystone does.
func domainBody(r *http.Request, d *domainRec) map[string]any {
	return map[string]any{
		"id":          d.ID,
		"name":        d.Name,
		"description": d.Description,
		"enabled":     d.Enabled,
		"tags":        []string{},
		"options":     map[string]any{},
		"links":       selfLink(r, "domains", d.ID),
	}
}

// listDomains is GET /v3/domains with the name and enabled filters.
func (b *Builtin) listDomains(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	out := []any{}
	b.mirror.read(func(st *mirrorState, _ int64) {
		for _, d := range sortedValues(st.domains, func(d *domainRec) string { return d.Name }) {
			if match(q.Get("name"), d.Name) && matchBool(q, "enabled", d.Enabled) {
				out = append(out, domainBody(r, d))
			}
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"domains": out, "links": listLinks(r)})
}

// getDomain is GET /v3/domains/{id}: admins see any domain, others the
// domain of their user or project.
func (b *Builtin) getDomain(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !s.isAdmin() && s.user.DomainID != id && (s.project == nil || s.project.DomainID != id) {
		writeError(w, errForbidden("identity:get_domain"))
		return
	}
	var d *domainRec
	b.mirror.read(func(st *mirrorState, _ int64) { d = st.domains[id] })
	if d == nil {
		writeError(w, errNotFound(kindDomain, id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"domain": domainBody(r, d)})
}

// roleBody renders a role as Keystone does.
func roleBody(r *http.Request, role *roleRec) map[string]any {
	var desc any
	if role.Description != "" {
		desc = role.Description
	}
	return map[string]any{
		"id":          role.ID,
		"name":        role.Name,
		"domain_id":   nil,
		"description": desc,
		"options":     map[string]any{},
		"links":       selfLink(r, "roles", role.ID),
	}
}

// listRoles is GET /v3/roles with the name filter.
func (b *Builtin) listRoles(w http.ResponseWriter, r *http.Request, _ *session) {
	name := r.URL.Query().Get("name")
	out := []any{}
	b.mirror.read(func(st *mirrorState, _ int64) {
		for _, role := range sortedValues(st.roles, func(r *roleRec) string { return r.Name }) {
			if match(name, role.Name) {
				out = append(out, roleBody(r, role))
			}
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"roles": out, "links": listLinks(r)})
}

// getRole is GET /v3/roles/{id}.
func (b *Builtin) getRole(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("id")
	var role *roleRec
	b.mirror.read(func(st *mirrorState, _ int64) { role = st.roles[id] })
	if role == nil {
		writeError(w, errNotFound(kindRole, id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"role": roleBody(r, role)})
}

// postRole is POST /v3/roles; role names are unique.
func (b *Builtin) postRole(w http.ResponseWriter, r *http.Request, _ *session) {
	var body struct {
		Role *struct {
			Name        *string `json:"name"`
			Description *string `json:"description"`
			DomainID    *string `json:"domain_id"`
		} `json:"role"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	in := body.Role
	if in == nil || in.Name == nil {
		writeError(w, errBadRequest("Invalid input for field 'role': 'name' is a required property."))
		return
	}
	if in.DomainID != nil && *in.DomainID != "" {
		writeError(w, errBadRequest("Domain-specific roles are not supported."))
		return
	}
	if err := checkName(kindRole, *in.Name); err != nil {
		writeError(w, err)
		return
	}
	role := &roleRec{ID: newID(), Name: *in.Name}
	if in.Description != nil {
		role.Description = *in.Description
	}
	err := b.createNamed(r.Context(), kindRole, globalScope, role.Name, role.ID, nil, b.putOp(b.keys.role(role.ID), role))
	if err != nil {
		b.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"role": roleBody(r, role)})
}

// deleteRole is DELETE /v3/roles/{id}: its grants go with it, which
// revokes the tokens that carried it.
func (b *Builtin) deleteRole(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("id")
	var role *roleRec
	var ops []clientv3.Op
	b.mirror.read(func(st *mirrorState, _ int64) {
		role = st.roles[id]
		for projectID, byUser := range st.grants {
			for userID, roles := range byUser {
				if _, ok := roles[id]; ok {
					ops = append(ops, clientv3.OpDelete(b.keys.assignment(projectID, userID, id)))
				}
			}
		}
	})
	if role == nil {
		writeError(w, errNotFound(kindRole, id))
		return
	}
	k := b.keys.role(id)
	ops = append(ops, clientv3.OpDelete(k), clientv3.OpDelete(b.keys.name(kindRole, globalScope, role.Name)))
	ok, err := b.commit(r.Context(), "delete role",
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", role.modRev)}, ops...)
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

// grantTarget resolves the project, user and role of a grant URL, writing
// a 404 for the first one missing.
func (b *Builtin) grantTarget(w http.ResponseWriter, r *http.Request) (projectID, userID, roleID string, ok bool) {
	projectID, userID, roleID = r.PathValue("project"), r.PathValue("user"), r.PathValue("role")
	var err error
	b.mirror.read(func(st *mirrorState, _ int64) {
		switch {
		case st.projects[projectID] == nil:
			err = errNotFound(kindProject, projectID)
		case st.users[userID] == nil:
			err = errNotFound(kindUser, userID)
		case roleID != "" && st.roles[roleID] == nil:
			err = errNotFound(kindRole, roleID)
		}
	})
	if err != nil {
		writeError(w, err)
		return "", "", "", false
	}
	return projectID, userID, roleID, true
}

// putGrant is PUT /v3/projects/{p}/users/{u}/roles/{r}.
func (b *Builtin) putGrant(w http.ResponseWriter, r *http.Request, _ *session) {
	p, u, role, ok := b.grantTarget(w, r)
	if !ok {
		return
	}
	if _, err := b.grant(r.Context(), p, u, role); err != nil {
		b.serverError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkGrant is GET and HEAD /v3/projects/{p}/users/{u}/roles/{r}.
func (b *Builtin) checkGrant(w http.ResponseWriter, r *http.Request, _ *session) {
	p, u, role, ok := b.grantTarget(w, r)
	if !ok {
		return
	}
	var exists bool
	b.mirror.read(func(st *mirrorState, _ int64) { _, exists = st.grants[p][u][role] })
	if !exists {
		writeError(w, errGrantNotFound(role, u, p))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func errGrantNotFound(roleID, userID, projectID string) error {
	return &apiError{http.StatusNotFound,
		"Could not find role assignment with role: " + roleID + ", user or group: " + userID + ", project, domain, or system: " + projectID + "."}
}

// deleteGrant is DELETE /v3/projects/{p}/users/{u}/roles/{r}: the user's
// tokens on the project that carried the role stop validating.
func (b *Builtin) deleteGrant(w http.ResponseWriter, r *http.Request, _ *session) {
	p, u, role, ok := b.grantTarget(w, r)
	if !ok {
		return
	}
	k := b.keys.assignment(p, u, role)
	done, err := b.commit(r.Context(), "revoke grant",
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)}, clientv3.OpDelete(k))
	if err != nil {
		b.serverError(w, r, err)
		return
	}
	if !done {
		writeError(w, errGrantNotFound(role, u, p))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listGrants is GET /v3/projects/{p}/users/{u}/roles.
func (b *Builtin) listGrants(w http.ResponseWriter, r *http.Request, _ *session) {
	p, u, _, ok := b.grantTarget(w, r)
	if !ok {
		return
	}
	out := []any{}
	b.mirror.read(func(st *mirrorState, _ int64) {
		for _, g := range st.userRoles(p, u) {
			out = append(out, roleBody(r, g.role))
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"roles": out, "links": listLinks(r)})
}

// listAssignments is GET /v3/role_assignments with the user.id,
// scope.project.id and role.id filters and include_names. Only user grants
// on projects exist, so group, domain and system filters match nothing.
func (b *Builtin) listAssignments(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	out := []any{}
	if q.Get("group.id") != "" || q.Get("scope.domain.id") != "" || q.Has("scope.system") {
		writeJSON(w, http.StatusOK, map[string]any{"role_assignments": out, "links": listLinks(r)})
		return
	}
	names := truthy(q.Get("include_names"), q.Has("include_names"))
	userF, projectF, roleF := q.Get("user.id"), q.Get("scope.project.id"), q.Get("role.id")
	type row struct {
		p *projectRec
		u *userRec
		g grant
	}
	var rows []row
	b.mirror.read(func(st *mirrorState, _ int64) {
		for projectID, byUser := range st.grants {
			p := st.projects[projectID]
			if p == nil || !match(projectF, projectID) {
				continue
			}
			for userID := range byUser {
				u := st.users[userID]
				if u == nil || !match(userF, userID) {
					continue
				}
				for _, g := range st.userRoles(projectID, userID) {
					if match(roleF, g.role.ID) {
						rows = append(rows, row{p, u, g})
					}
				}
			}
		}
		slices.SortFunc(rows, func(a, b row) int {
			return cmp.Or(cmp.Compare(a.p.Name, b.p.Name), cmp.Compare(a.u.Name, b.u.Name), cmp.Compare(a.g.role.Name, b.g.role.Name))
		})
		for _, x := range rows {
			out = append(out, assignmentBody(r, st, x.p, x.u, x.g.role, names))
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"role_assignments": out, "links": listLinks(r)})
}

// assignmentBody renders one grant as Keystone's role assignment entity.
func assignmentBody(r *http.Request, st *mirrorState, p *projectRec, u *userRec, role *roleRec, names bool) map[string]any {
	project := map[string]any{"id": p.ID}
	user := map[string]any{"id": u.ID}
	roleOut := map[string]any{"id": role.ID}
	if names {
		project["name"] = p.Name
		project["domain"] = domainRef(st, p.DomainID)
		user["name"] = u.Name
		user["domain"] = domainRef(st, u.DomainID)
		roleOut["name"] = role.Name
	}
	return map[string]any{
		"scope": map[string]any{"project": project},
		"user":  user,
		"role":  roleOut,
		"links": map[string]any{"assignment": v3URL(r) + "/projects/" + p.ID + "/users/" + u.ID + "/roles/" + role.ID},
	}
}

func domainRef(st *mirrorState, id string) map[string]any {
	out := map[string]any{"id": id}
	if d := st.domains[id]; d != nil {
		out["name"] = d.Name
	}
	return out
}

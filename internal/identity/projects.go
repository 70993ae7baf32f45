package identity

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keystone's limits on name lengths (its database column sizes).
const (
	maxProjectName = 64
	maxNameLen     = 255
)

// checkName validates a name as Keystone's schema does.
func checkName(kind, name string) error {
	limit := maxNameLen
	if kind == kindProject {
		limit = maxProjectName
	}
	if strings.TrimSpace(name) == "" {
		return errBadRequest("Invalid input for field 'name': %s name must not be empty.", kind)
	}
	if utf8.RuneCountInString(name) > limit || !utf8.ValidString(name) {
		return errBadRequest("Invalid input for field 'name': %s name is too long or not valid UTF-8.", kind)
	}
	return nil
}

// projectBody renders a project as Keystone does.
func projectBody(r *http.Request, p *projectRec) map[string]any {
	tags := p.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{
		"id":          p.ID,
		"name":        p.Name,
		"domain_id":   p.DomainID,
		"description": p.Description,
		"enabled":     p.Enabled,
		"parent_id":   p.DomainID,
		"is_domain":   false,
		"tags":        tags,
		"options":     map[string]any{},
		"links":       selfLink(r, "projects", p.ID),
	}
}

// projectInput is the project object of a create or update body.
type projectInput struct {
	Name        *string   `json:"name"`
	DomainID    *string   `json:"domain_id"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
	ParentID    *string   `json:"parent_id"`
	IsDomain    *bool     `json:"is_domain"`
	Tags        *[]string `json:"tags"`
}

// apply copies the given fields onto p.
func (in *projectInput) apply(p *projectRec) error {
	if in.IsDomain != nil && *in.IsDomain {
		return errBadRequest("Projects acting as domains are not supported.")
	}
	if in.Name != nil {
		if err := checkName(kindProject, *in.Name); err != nil {
			return err
		}
		p.Name = *in.Name
	}
	if in.Description != nil {
		p.Description = *in.Description
	}
	if in.Enabled != nil {
		p.Enabled = *in.Enabled
	}
	if in.Tags != nil {
		p.Tags = *in.Tags
	}
	return nil
}

// createProject stores a new project; names are unique within a domain.
func (b *Builtin) createProject(ctx context.Context, p *projectRec) error {
	if err := checkName(kindProject, p.Name); err != nil {
		return err
	}
	var domainOK bool
	b.mirror.read(func(st *mirrorState, _ int64) { domainOK = st.domains[p.DomainID] != nil })
	if !domainOK {
		return errBadRequest("Could not find domain: %s.", p.DomainID)
	}
	return b.createNamed(ctx, kindProject, p.DomainID, p.Name, p.ID,
		[]string{b.keys.domain(p.DomainID)}, b.putOp(b.keys.project(p.ID), p))
}

// postProject is POST /v3/projects.
func (b *Builtin) postProject(w http.ResponseWriter, r *http.Request, s *session) {
	var body struct {
		Project *projectInput `json:"project"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	in := body.Project
	if in == nil || in.Name == nil {
		writeError(w, errBadRequest("Invalid input for field 'project': 'name' is a required property."))
		return
	}
	p := &projectRec{ID: newID(), DomainID: defaultDomainID, Enabled: true}
	if in.DomainID != nil && *in.DomainID != "" {
		p.DomainID = *in.DomainID
	}
	if in.ParentID != nil && *in.ParentID != "" && *in.ParentID != p.DomainID {
		writeError(w, errBadRequest("Hierarchical projects are not supported: parent_id must be the domain."))
		return
	}
	if err := in.apply(p); err != nil {
		writeError(w, err)
		return
	}
	if err := b.createProject(r.Context(), p); err != nil {
		b.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"project": projectBody(r, p)})
}

// listProjects is GET /v3/projects with Keystone's name, domain_id,
// enabled and parent_id filters.
func (b *Builtin) listProjects(w http.ResponseWriter, r *http.Request, _ *session) {
	q := r.URL.Query()
	out := []any{}
	if truthy(q.Get("is_domain"), q.Has("is_domain")) {
		writeJSON(w, http.StatusOK, map[string]any{"projects": out, "links": listLinks(r)})
		return
	}
	b.mirror.read(func(st *mirrorState, _ int64) {
		for _, p := range sortedValues(st.projects, func(p *projectRec) string { return p.Name }) {
			if match(q.Get("name"), p.Name) && match(q.Get("domain_id"), p.DomainID) &&
				match(q.Get("parent_id"), p.DomainID) && matchBool(q, "enabled", p.Enabled) {
				out = append(out, projectBody(r, p))
			}
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"projects": out, "links": listLinks(r)})
}

// match is an exact-match filter that passes when unset.
func match(filter, value string) bool { return filter == "" || filter == value }

// matchBool is a boolean filter that passes when unset.
func matchBool(q map[string][]string, name string, value bool) bool {
	v, ok := q[name]
	if !ok || len(v) == 0 {
		return true
	}
	return truthy(v[0], true) == value
}

// getProject is GET /v3/projects/{id}: admins see any project, others the
// project their token is scoped to.
func (b *Builtin) getProject(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if !s.isAdmin() && (s.project == nil || s.project.ID != id) {
		writeError(w, errForbidden("identity:get_project"))
		return
	}
	var p *projectRec
	b.mirror.read(func(st *mirrorState, _ int64) { p = st.projects[id] })
	if p == nil {
		writeError(w, errNotFound(kindProject, id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": projectBody(r, p)})
}

// patchProject is PATCH /v3/projects/{id}.
func (b *Builtin) patchProject(w http.ResponseWriter, r *http.Request, _ *session) {
	var body struct {
		Project *projectInput `json:"project"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	in := body.Project
	if in == nil {
		writeError(w, errBadRequest("Invalid input for field 'project': expecting an object."))
		return
	}
	id := r.PathValue("id")
	for range maxRetries {
		var cur *projectRec
		b.mirror.read(func(st *mirrorState, _ int64) { cur = st.projects[id] })
		if cur == nil {
			writeError(w, errNotFound(kindProject, id))
			return
		}
		if in.DomainID != nil && *in.DomainID != cur.DomainID {
			writeError(w, errBadRequest("Cannot change Domain ID."))
			return
		}
		next := *cur
		next.Tags = append([]string(nil), cur.Tags...)
		if err := in.apply(&next); err != nil {
			writeError(w, err)
			return
		}
		ok, err := b.update(r.Context(), kindProject, b.keys.project(id), cur.modRev, cur.key(), next.key(), id, &next)
		if err != nil {
			b.serverError(w, r, err)
			return
		}
		if ok {
			writeJSON(w, http.StatusOK, map[string]any{"project": projectBody(r, &next)})
			return
		}
	}
	writeError(w, errRaced)
}

// deleteProject is DELETE /v3/projects/{id}; the project's role
// assignments go with it in the same transaction.
func (b *Builtin) deleteProject(w http.ResponseWriter, r *http.Request, _ *session) {
	id := r.PathValue("id")
	if err := b.removeProject(r.Context(), id); err != nil {
		b.serverError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeProject deletes a project, its name and its grants.
func (b *Builtin) removeProject(ctx context.Context, id string) error {
	for range maxRetries {
		var cur *projectRec
		b.mirror.read(func(st *mirrorState, _ int64) { cur = st.projects[id] })
		if cur == nil {
			return errNotFound(kindProject, id)
		}
		k := b.keys.project(id)
		ok, err := b.commit(ctx, "delete project",
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", cur.modRev)},
			clientv3.OpDelete(k),
			clientv3.OpDelete(b.keys.name(kindProject, cur.DomainID, cur.Name)),
			clientv3.OpDelete(b.keys.projectAssignments(id), clientv3.WithPrefix()))
		if err != nil || ok {
			return err
		}
	}
	return errRaced
}

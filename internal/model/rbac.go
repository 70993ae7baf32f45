package model

import (
	"regexp"
	"strings"
)

// RBAC actions.
const (
	AccessAsShared   = "access_as_shared"
	AccessAsExternal = "access_as_external"
)

// RBACPolicy grants a project (or every project, "*") an access to an object.
type RBACPolicy struct {
	// Standard holds id, project_id and the quota slot; RBAC policies have
	// no name, description, tags or revisions in the API.
	Standard
	ObjectType    string `json:"object_type"`
	ObjectID      string `json:"object_id"`
	TargetProject string `json:"target_tenant"`
	Action        string `json:"action"`
}

// RBACSpec is the attribute map of RBAC policies.
var RBACSpec = &Spec{
	Singular: "rbac_policy",
	Plural:   "rbac_policies",
	Attrs: []*Attr{
		{Name: "id", Parse: ParseUUID},
		{Name: "object_type", Post: true, Required: true, Parse: parseObjectType},
		{Name: "object_id", Post: true, Required: true, Parse: ParseUUID},
		{Name: "target_tenant", Post: true, Put: true, Required: true, Parse: parseTargetProject},
		{Name: "target_project", Post: true, Put: true, Parse: parseTargetProject},
		{Name: "tenant_id", Post: true, Parse: ParseString(255)},
		{Name: "project_id", Post: true, Parse: ParseString(255)},
		{Name: "action", Post: true, Required: true, Parse: ParseString(255)},
	},
}

// RBACObjectTypes are the object types RBAC policies may name
// (rbac-subnetpool and rbac-address-scope add the last two).
var RBACObjectTypes = []string{"network", "subnetpool", "address_scope"}

func parseObjectType(v any) (any, error) {
	s, ok := v.(string)
	if ok {
		n := strings.ToLower(strings.TrimSpace(s))
		for _, t := range RBACObjectTypes {
			if n == t {
				return n, nil
			}
		}
	}
	return nil, reason("'%s' is not a valid RBAC object type", show(v))
}

var uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

func parseTargetProject(v any) (any, error) {
	s, ok := v.(string)
	if ok && (s == "*" || uuidLike.MatchString(s)) {
		return s, nil
	}
	return nil, reason("'%s' is not a valid target project ID; expected a UUID or '*'", show(v))
}

// View implements Object.
func (r *RBACPolicy) View() map[string]any {
	return map[string]any{
		"id": r.ID, "project_id": r.ProjectID, "tenant_id": r.ProjectID, "object_type": r.ObjectType,
		"object_id": r.ObjectID, "target_tenant": r.TargetProject, "target_project": r.TargetProject, "action": r.Action,
	}
}

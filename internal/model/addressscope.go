package model

// AddressScope groups subnet pools whose addresses may be routed to each
// other without NAT; pools in one scope never overlap.
type AddressScope struct {
	// Standard holds id, project_id and name; address scopes have no
	// description, tags, timestamps or revisions in the API.
	Standard
	IPVersion int  `json:"ip_version"`
	Shared    bool `json:"shared"` // a wildcard access_as_shared policy exists
}

// AddressScopeSpec is the attribute map of address scopes.
var AddressScopeSpec = &Spec{
	Singular: "address_scope",
	Plural:   "address_scopes",
	Attrs: []*Attr{
		{Name: "id", Parse: ParseUUID},
		{Name: "name", Post: true, Put: true, Parse: ParseString(255)},
		{Name: "project_id", Post: true, Parse: ParseString(255)},
		{Name: "tenant_id", Post: true, Parse: ParseString(255)},
		{Name: "shared", Post: true, Put: true, Parse: ParseBool},
		{Name: "ip_version", Post: true, Required: true, Parse: parseIPVersion},
	},
}

// View implements Object.
func (a *AddressScope) View() map[string]any {
	return map[string]any{
		"id": a.ID, "project_id": a.ProjectID, "tenant_id": a.ProjectID, "name": a.Name,
		"shared": a.Shared, "ip_version": a.IPVersion,
	}
}

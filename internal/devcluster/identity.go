package devcluster

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// cloudsFile is the clouds.yaml a cluster writes into its directory.
const cloudsFile = "clouds.yaml"

// createProjects creates the cluster's ordinary projects, each with a user
// of the same name holding the member role in it.
func (c *Cluster) createProjects(ctx context.Context) error {
	admin := c.Admin()
	var roles struct {
		Roles []struct {
			ID string `json:"id"`
		} `json:"roles"`
	}
	if err := admin.Do(ctx, http.MethodGet, "/identity/v3/roles?name=member", nil, &roles); err != nil {
		return fmt.Errorf("find the member role: %w", err)
	}
	if len(roles.Roles) != 1 {
		return fmt.Errorf("find the member role: %d roles named member", len(roles.Roles))
	}
	member := roles.Roles[0].ID
	for i := range c.st.Projects {
		p := &c.st.Projects[i]
		var proj struct {
			Project struct {
				ID string `json:"id"`
			} `json:"project"`
		}
		body := map[string]any{"project": map[string]any{"name": p.Project, "domain_id": "default",
			"description": "vland dev cluster " + c.st.Name}}
		if err := admin.Do(ctx, http.MethodPost, "/identity/v3/projects", body, &proj); err != nil {
			return fmt.Errorf("create project %s: %w", p.Project, err)
		}
		p.ID = proj.Project.ID
		var user struct {
			User struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		body = map[string]any{"user": map[string]any{"name": p.Username, "password": p.Password,
			"domain_id": "default", "default_project_id": p.ID}}
		if err := admin.Do(ctx, http.MethodPost, "/identity/v3/users", body, &user); err != nil {
			return fmt.Errorf("create user %s: %w", p.Username, err)
		}
		grant := "/identity/v3/projects/" + url.PathEscape(p.ID) + "/users/" + url.PathEscape(user.User.ID) + "/roles/" + url.PathEscape(member)
		if err := admin.Do(ctx, http.MethodPut, grant, nil, nil); err != nil {
			return fmt.Errorf("grant member on %s to %s: %w", p.Project, p.Username, err)
		}
	}
	return nil
}

// CloudsPath is the cluster's clouds.yaml.
func (c *Cluster) CloudsPath() string { return filepath.Join(c.Dir(), cloudsFile) }

// writeClouds writes clouds.yaml with the admin cloud and one per project.
func writeClouds(st *State) error {
	var b strings.Builder
	b.WriteString("# Written by `vland dev up` for cluster " + st.Name + "; removed by `vland dev down`.\nclouds:\n")
	entry := func(cloud string, cr Credentials) {
		fmt.Fprintf(&b, "  %s:\n", cloud)
		b.WriteString("    auth:\n")
		fmt.Fprintf(&b, "      auth_url: %s\n", strconv.Quote(st.ServerURL+"/identity/v3"))
		fmt.Fprintf(&b, "      username: %s\n", strconv.Quote(cr.Username))
		fmt.Fprintf(&b, "      password: %s\n", strconv.Quote(cr.Password))
		fmt.Fprintf(&b, "      project_name: %s\n", strconv.Quote(cr.Project))
		b.WriteString("      user_domain_name: Default\n      project_domain_name: Default\n")
		b.WriteString("    identity_api_version: 3\n    region_name: RegionOne\n    interface: public\n")
	}
	entry(st.Name+"-admin", Credentials{Username: "admin", Password: st.AdminPassword, Project: "admin"})
	for _, p := range st.Projects {
		entry(p.Cloud, p.Credentials)
	}
	return writeFileAtomic(filepath.Join(st.Dir, cloudsFile), []byte(b.String()), 0o600)
}

package model

// Quota is a project's quota overrides; unset resources use the defaults.
type Quota struct {
	ProjectID string         `json:"project_id"`
	Limits    map[string]int `json:"limits"`
}

// Std implements Object: quotas are keyed by project.
func (q *Quota) Std() *Standard { return &Standard{ID: q.ProjectID, ProjectID: q.ProjectID} }

// View implements Object.
func (q *Quota) View() map[string]any {
	m := map[string]any{"project_id": q.ProjectID}
	for k, v := range q.Limits {
		m[k] = v
	}
	return m
}

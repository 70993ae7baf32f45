package model

import (
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// Standard holds the attributes every Neutron resource has.
type Standard struct {
	ID             string   `json:"id"`
	ProjectID      string   `json:"project_id"`
	Name           string   `json:"name"`
	Description    string   `json:"description"`
	Tags           []string `json:"tags"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
	RevisionNumber int64    `json:"revision_number"`
	// QuotaSlot is the quota slot the object holds, plus one (0: none).
	// It is internal: views never show it.
	QuotaSlot int `json:"quota_slot,omitempty"`
}

// TimeFormat is how Neutron renders timestamps.
const TimeFormat = "2006-01-02T15:04:05Z"

// Now is the current time as Neutron renders it.
func Now() string { return time.Now().UTC().Format(TimeFormat) }

// view renders the standard attributes into m.
func (s *Standard) view(m map[string]any) {
	m["id"] = s.ID
	m["project_id"] = s.ProjectID
	m["tenant_id"] = s.ProjectID
	m["name"] = s.Name
	m["description"] = s.Description
	tags := s.Tags
	if tags == nil {
		tags = []string{}
	}
	m["tags"] = tags
	m["created_at"] = s.CreatedAt
	m["updated_at"] = s.UpdatedAt
	m["revision_number"] = s.RevisionNumber
}

// ApplyStandard sets the standard attributes a request may set.
func (s *Standard) ApplyStandard(f Fields) {
	if v, ok := f["name"]; ok {
		s.Name = v.(string)
	}
	if v, ok := f["description"]; ok {
		s.Description = v.(string)
	}
	if v, ok := f["tags"]; ok {
		s.Tags = v.([]string)
	}
}

// Touch marks an object changed: a new revision and update time.
func (s *Standard) Touch() {
	s.RevisionNumber++
	s.UpdatedAt = Now()
}

// standardAttrs are the attributes every spec shares.
func standardAttrs() []*Attr {
	return []*Attr{
		{Name: "id", Parse: ParseUUID},
		{Name: "name", Post: true, Put: true, Parse: ParseString(255)},
		{Name: "description", Post: true, Put: true, Parse: ParseString(255)},
		{Name: "project_id", Post: true, Parse: ParseString(255)},
		{Name: "tenant_id", Post: true, Parse: ParseString(255)},
		{Name: "tags", Post: true, Parse: ParseTags},
		{Name: "created_at"},
		{Name: "updated_at"},
		{Name: "revision_number"},
	}
}

// Object is a stored resource with its rendered view.
type Object interface {
	// Std returns the standard attributes.
	Std() *Standard
	// View renders every attribute as the API shows it to an admin.
	View() map[string]any
}

// Std implements Object.
func (s *Standard) Std() *Standard { return s }

// Cached is what the store's cache keeps of an object: the typed value and
// its view, rendered once per change rather than once per read.
type Cached struct {
	Obj  Object
	View map[string]any

	encOnce [2]sync.Once
	enc     [2][]byte
}

// JSON returns the view encoded once per change, in two variants: 0 is the
// whole view (admins), 1 the view without the hidden attributes (everyone
// else). Lists write these bytes as they are, instead of encoding 10,000
// maps per request.
func (c *Cached) JSON(variant int, hidden []string) []byte {
	c.encOnce[variant].Do(func() {
		v := c.View
		if variant == 1 && len(hidden) > 0 {
			v = make(map[string]any, len(c.View))
			for k, x := range c.View {
				if !slices.Contains(hidden, k) {
					v[k] = x
				}
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte("null")
		}
		c.enc[variant] = b
	})
	return c.enc[variant]
}

// DecodeAs returns a cache decoder for a kind whose objects are *T.
func DecodeAs[T any, PT interface {
	*T
	Object
}]() func([]byte) (any, error) {
	return func(data []byte) (any, error) {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		o := PT(&v)
		return &Cached{Obj: o, View: o.View()}, nil
	}
}

// Tag limits, as Neutron's tagging extension.
const (
	MaxTagLen  = 255
	MaxTagsPer = 50
)

// ParseTags accepts a list of unique strings of at most MaxTagLen
// characters, at most MaxTagsPer of them.
func ParseTags(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	out := make([]string, 0, len(list))
	seen := map[string]bool{}
	for _, it := range list {
		t, err := ParseString(MaxTagLen)(it)
		if err != nil {
			return nil, err
		}
		if seen[t.(string)] {
			return nil, reason("Duplicate items in the list: '%s'", t)
		}
		seen[t.(string)] = true
		out = append(out, t.(string))
	}
	if len(out) > MaxTagsPer {
		return nil, reason("The number of tags exceed the per-resource limit of %d", MaxTagsPer)
	}
	return out, nil
}

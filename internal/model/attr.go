// Package model defines vland's resources (networks, subnets, ports, ...),
// how API requests for them are decoded and validated, and how they are
// rendered. Each kind declares its attributes once in a Spec, as neutron-lib's
// attribute maps do; decoding, defaults and read-only checks come from it.
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vland/vland/internal/apierr"
)

// Op is the request an attribute map is applied to.
type Op int

// Operations a Spec decodes for.
const (
	Create Op = iota
	Update
)

// Attr is one attribute of a resource.
type Attr struct {
	Name     string
	Post     bool // may be given on create
	Put      bool // may be given on update
	Required bool // must be given on create
	// AdminOnly attributes may be set (and seen) by admins only.
	AdminOnly bool
	// Parse validates a decoded JSON value (json.Number for numbers) and
	// returns its typed form; the error is the "Reason" Neutron reports.
	Parse func(v any) (any, error)
}

// Spec is the attribute map of one kind of resource.
type Spec struct {
	Singular string // "network"
	Plural   string // "networks"
	Attrs    []*Attr
	once     sync.Once
	byName   map[string]*Attr
}

// Lookup returns the attribute named n.
func (s *Spec) Lookup(n string) (*Attr, bool) {
	s.once.Do(func() {
		s.byName = make(map[string]*Attr, len(s.Attrs))
		for _, a := range s.Attrs {
			s.byName[a.Name] = a
		}
	})
	a, ok := s.byName[n]
	return a, ok
}

// Fields is a decoded, validated request: attribute name to typed value.
type Fields map[string]any

// Has reports whether the request set attribute n.
func (f Fields) Has(n string) bool { _, ok := f[n]; return ok }

// MaxBody is the largest request body accepted (bulk creates included).
const MaxBody = 16 << 20

// DecodeJSON reads a JSON body into generic values, numbers as json.Number.
func DecodeJSON(r io.Reader) (map[string]any, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, apierr.BadRequest("Malformed request body: %v", err)
	}
	if len(data) > MaxBody {
		return nil, apierr.New(413, "HTTPRequestEntityTooLarge", "Request is too large.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var body any
	if err := dec.Decode(&body); err != nil {
		return nil, apierr.BadRequest("Malformed request body")
	}
	// Only whitespace may follow the value. (dec.More would miss a stray
	// '}' or ']', taking it for the end of an enclosing value.)
	if _, err := dec.Token(); err != io.EOF {
		return nil, apierr.BadRequest("Malformed request body")
	}
	m, ok := body.(map[string]any)
	if !ok {
		return nil, apierr.BadRequest("Malformed request body")
	}
	return m, nil
}

// DecodeBody extracts the items of a create (one or bulk) or an update
// request from a decoded body: {"network": {...}} or {"networks": [...]}.
func (s *Spec) DecodeBody(body map[string]any, op Op) (items []Fields, bulk bool, err error) {
	if raw, ok := body[s.Plural]; ok && op == Create {
		list, ok := raw.([]any)
		if !ok || len(list) == 0 {
			return nil, false, apierr.BadRequest("Resources required")
		}
		for _, it := range list {
			m, ok := it.(map[string]any)
			if !ok {
				return nil, false, apierr.BadRequest("Malformed request body")
			}
			inner, ok := m[s.Singular].(map[string]any)
			if !ok {
				// Neutron accepts both {"networks":[{...}]} and the wrapped form.
				inner = m
			}
			f, err := s.Decode(inner, op)
			if err != nil {
				return nil, false, err
			}
			items = append(items, f)
		}
		return items, true, nil
	}
	raw, ok := body[s.Singular]
	if !ok {
		return nil, false, apierr.BadRequest("Unable to find '%s' in request body", s.Singular)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, false, apierr.BadRequest("Body contains invalid data")
	}
	f, err := s.Decode(m, op)
	if err != nil {
		return nil, false, err
	}
	return []Fields{f}, false, nil
}

// Decode validates one resource's attributes for op.
func (s *Spec) Decode(m map[string]any, op Op) (Fields, error) {
	var unknown []string
	for k := range m {
		if _, ok := s.Lookup(k); !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, apierr.BadRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	out := Fields{}
	for _, a := range s.Attrs {
		v, given := m[a.Name]
		if !given {
			if op == Create && a.Required {
				return nil, apierr.BadRequest("Failed to parse request. Required attribute '%s' not specified", a.Name)
			}
			continue
		}
		if op == Create && !a.Post {
			return nil, apierr.BadRequest("Attribute '%s' not allowed in POST", a.Name)
		}
		if op == Update && !a.Put {
			return nil, apierr.BadRequest("Cannot update read-only attribute %s", a.Name)
		}
		if a.Parse == nil {
			out[a.Name] = v
			continue
		}
		pv, err := a.Parse(v)
		if err != nil {
			return nil, apierr.InvalidAttr(a.Name, err.Error())
		}
		out[a.Name] = pv
	}
	// tenant_id and project_id are aliases and must agree.
	if t, ok := out["tenant_id"]; ok {
		if p, ok := out["project_id"]; ok && p != t {
			return nil, apierr.BadRequest("'project_id' and 'tenant_id' do not match")
		}
		out["project_id"] = t
		delete(out, "tenant_id")
	}
	return out, nil
}

// AdminOnlyGiven returns the admin-only attributes a request sets, sorted.
func (s *Spec) AdminOnlyGiven(f Fields) []string {
	var out []string
	for k := range f {
		if a, ok := s.Lookup(k); ok && a.AdminOnly {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// reason formats a validation failure the way neutron-lib words them.
func reason(format string, args ...any) error { return fmt.Errorf(format, args...) }

package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// reserved query parameters that are not filters.
var reserved = []string{"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fieldsParam returns the fields= selection, validated against the spec.
func fieldsParam(q url.Values, spec *model.Spec) ([]string, error) {
	var out []string
	for _, v := range q["fields"] {
		for _, f := range strings.Split(v, ",") {
			if f == "" {
				continue
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// filter is one query condition on rendered views.
type filter func(view map[string]any) bool

func parseFilters(q url.Values, spec *model.Spec, tagged bool) ([]filter, error) {
	var out []filter
	for _, k := range sortedKeys(q) {
		vals := q[k]
		switch {
		case slices.Contains(reserved, k):
			continue
		case tagged && slices.Contains([]string{"tags", "tags-any", "not-tags", "not-tags-any"}, k):
			out = append(out, tagFilter(k, vals))
			continue
		case k == "changed_since" && tagged:
			f, err := changedSince(vals)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		if _, ok := spec.Lookup(k); !ok {
			return nil, apierr.BadRequest("%s is invalid attribute for filtering", k)
		}
		out = append(out, func(view map[string]any) bool {
			v := view[k]
			for _, want := range vals {
				if matchValue(k, v, want) {
					return true
				}
			}
			return false
		})
	}
	return out, nil
}

// tagFilter implements Neutron's tag filters; values are comma-separated
// and repeated keys add to the list.
func tagFilter(kind string, vals []string) filter {
	var want []string
	for _, v := range vals {
		for _, t := range strings.Split(v, ",") {
			if t != "" {
				want = append(want, t)
			}
		}
	}
	return func(view map[string]any) bool {
		have, _ := view["tags"].([]string)
		all, anyHit := true, false
		for _, t := range want {
			if slices.Contains(have, t) {
				anyHit = true
			} else {
				all = false
			}
		}
		switch kind {
		case "tags":
			return all
		case "tags-any":
			return anyHit
		case "not-tags":
			return !all
		default: // not-tags-any
			return !anyHit
		}
	}
}

// changedSince keeps objects updated at or after the given time.
func changedSince(vals []string) (filter, error) {
	t, err := time.Parse(time.RFC3339, vals[len(vals)-1])
	if err != nil {
		if t, err = time.Parse(model.TimeFormat, vals[len(vals)-1]); err != nil {
			return nil, apierr.BadRequest("Invalid input for changed_since. Reason: '%s' is not a valid time.", vals[len(vals)-1])
		}
	}
	return func(view map[string]any) bool {
		u, err := time.Parse(model.TimeFormat, fmt.Sprint(view["updated_at"]))
		return err == nil && !u.Before(t)
	}, nil
}

// matches reports whether a rendered view passes every filter.
func matches(view map[string]any, filters []filter) bool {
	for _, f := range filters {
		if !f(view) {
			return false
		}
	}
	return true
}

func matchValue(attr string, v any, want string) bool {
	switch t := v.(type) {
	case nil:
		return want == "" || want == "None" || want == "null"
	case string:
		return t == want
	case bool:
		b, err := strconv.ParseBool(strings.ToLower(want))
		return err == nil && b == t
	case int, int64, uint32:
		return fmt.Sprint(t) == want
	case []string:
		return slices.Contains(t, want)
	case []any:
		if attr == "fixed_ips" {
			return matchFixedIP(t, want)
		}
		for _, e := range t {
			if fmt.Sprint(e) == want {
				return true
			}
		}
	}
	return false
}

// matchFixedIP handles fixed_ips=ip_address=X, fixed_ips=subnet_id=Y and
// fixed_ips=ip_address_substr=Z (ip-substring-filtering).
func matchFixedIP(ips []any, want string) bool {
	k, val, ok := strings.Cut(want, "=")
	if !ok {
		return false
	}
	for _, e := range ips {
		m, _ := e.(map[string]any)
		if k == "ip_address_substr" {
			if strings.Contains(fmt.Sprint(m["ip_address"]), val) {
				return true
			}
			continue
		}
		if fmt.Sprint(m[k]) == val {
			return true
		}
	}
	return false
}

// sortKey is one sort_key with its direction.
type sortKey struct {
	attr string
	desc bool
}

func parseSort(q url.Values, spec *model.Spec) ([]sortKey, error) {
	keys, dirs := q["sort_key"], q["sort_dir"]
	if len(dirs) > len(keys) {
		return nil, apierr.BadRequest("The number of sort_keys and sort_dirs must be same")
	}
	var out []sortKey
	for i, k := range keys {
		if _, ok := spec.Lookup(k); !ok {
			return nil, apierr.BadRequest("%s is invalid attribute for sort_key", k)
		}
		desc := false
		if i < len(dirs) {
			switch dirs[i] {
			case "asc":
			case "desc":
				desc = true
			default:
				return nil, apierr.BadRequest("%s is invalid value for sort_dir, valid values are 'asc' and 'desc'", dirs[i])
			}
		}
		out = append(out, sortKey{k, desc})
	}
	// id last makes the order total, which marker pagination relies on.
	if !slices.ContainsFunc(out, func(s sortKey) bool { return s.attr == "id" }) {
		out = append(out, sortKey{"id", false})
	}
	return out, nil
}

func compareViews(a, b map[string]any, keys []sortKey) int {
	for _, k := range keys {
		c := compareValues(a[k.attr], b[k.attr])
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return cmp.Compare(x, y)
	case int:
		y, _ := b.(int)
		return cmp.Compare(x, y)
	case int64:
		y, _ := b.(int64)
		return cmp.Compare(x, y)
	case bool:
		y, _ := b.(bool)
		if x == y {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	case nil:
		if b == nil {
			return 0
		}
		return -1
	}
	return cmp.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// list serves GET on a collection: visibility, filters, sorting, marker
// pagination and field selection, all from the cache.
func (c *collection) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filters, err := parseFilters(q, c.spec, c.tagged)
	if err != nil {
		writeError(w, err)
		return
	}
	keys, err := parseSort(q, c.spec)
	if err != nil {
		writeError(w, err)
		return
	}
	fields, _ := fieldsParam(q, c.spec)
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, apierr.BadRequest("Limit must be an integer 0 or greater and not '%s'", l))
			return
		}
		limit = n
	}
	reverse := strings.EqualFold(q.Get("page_reverse"), "true")
	cr := policy.From(r.Context())
	type entry struct {
		view map[string]any
		cv   *model.Cached
	}
	var entries []entry
	for _, cv := range c.svc.Visible(r.Context(), c.name) {
		if v := c.viewOf(r.Context(), cv.View); matches(v, filters) {
			entries = append(entries, entry{v, cv})
		}
	}
	cmpEntries := func(a, b entry) int { return compareViews(a.view, b.view, keys) }
	if len(keys) == 1 && keys[0].attr == "id" && !keys[0].desc {
		cmpEntries = func(a, b entry) int { return strings.Compare(a.cv.Obj.Std().ID, b.cv.Obj.Std().ID) }
	}
	slices.SortFunc(entries, cmpEntries)
	if reverse {
		slices.Reverse(entries)
	}
	marker := q.Get("marker")
	if marker != "" {
		i := slices.IndexFunc(entries, func(e entry) bool { return e.view["id"] == marker })
		if i < 0 {
			// The marker may itself be filtered out: start after its place.
			if mv, ok := c.svc.CachedView(r.Context(), c.name, marker); ok {
				i, _ = slices.BinarySearchFunc(entries, mv, func(a entry, b map[string]any) int {
					c := compareViews(a.view, b, keys)
					if reverse {
						c = -c
					}
					return c
				})
				i--
			}
		}
		entries = entries[i+1:]
	}
	more := limit > 0 && len(entries) > limit
	if more {
		entries = entries[:limit]
	}
	if reverse {
		slices.Reverse(entries)
	}
	views := make([]map[string]any, len(entries))
	for i, e := range entries {
		views[i] = e.view
	}
	var links []any
	if limit > 0 {
		links = pageLinks(r, c.path, views, limit, more, marker != "", reverse)
	}
	if len(fields) == 0 && c.decorate == nil {
		// The common case: write each object's cached encoding.
		variant, hidden := 0, policy.HiddenAttributes(cr, c.name)
		if len(hidden) > 0 {
			variant = 1
		}
		items := make([][]byte, len(entries))
		for i, e := range entries {
			items[i] = e.cv.JSON(variant, hidden)
		}
		writeList(w, c.name, items, links, limit > 0)
		return
	}
	out := make([]any, len(views))
	for i, v := range views {
		out[i] = render(v, cr, c.name, fields)
	}
	body := map[string]any{c.name: out}
	if limit > 0 {
		body[c.name+"_links"] = links
	}
	writeJSON(w, http.StatusOK, body)
}

// writeList writes {"<name>": [items...], "<name>_links": links} from
// already encoded items.
func writeList(w http.ResponseWriter, name string, items [][]byte, links []any, withLinks bool) {
	size := len(name) + 32
	for _, it := range items {
		size += len(it) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"`...)
	buf = append(buf, name...)
	buf = append(buf, `":[`...)
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it...)
	}
	buf = append(buf, ']')
	if withLinks {
		lb, err := json.Marshal(links)
		if err != nil {
			lb = []byte("[]")
		}
		buf = append(buf, `,"`...)
		buf = append(buf, name...)
		buf = append(buf, `_links":`...)
		buf = append(buf, lb...)
	}
	buf = append(buf, '}')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

// pageLinks builds Neutron's next/previous links.
func pageLinks(r *http.Request, name string, views []map[string]any, limit int, more, hadMarker, reverse bool) []any {
	var links []any
	link := func(rel, marker string, rev bool) {
		q := r.URL.Query()
		q.Set("limit", strconv.Itoa(limit))
		q.Set("marker", marker)
		if rev {
			q.Set("page_reverse", "True")
		} else {
			q.Del("page_reverse")
		}
		links = append(links, map[string]any{"rel": rel, "href": baseURL(r) + "/v2.0/" + name + "?" + q.Encode()})
	}
	if len(views) == 0 {
		return []any{}
	}
	first, last := views[0]["id"].(string), views[len(views)-1]["id"].(string)
	if reverse {
		if more {
			link("previous", first, true)
		}
		if hadMarker {
			link("next", last, false)
		}
		return links
	}
	if more {
		link("next", last, false)
	}
	if hadMarker {
		link("previous", first, true)
	}
	if links == nil {
		return []any{}
	}
	return links
}

package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/service"
)

// serveTags handles /v2.0/{collection}/{id}/tags (standard-attr-tag).
func (c *collection) serveTags(w http.ResponseWriter, r *http.Request) {
	ctx, err := ifMatch(r)
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		tags, err := c.svc.Tags(ctx, c.name, id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"tags": tags})
	case http.MethodPut, http.MethodPost:
		body, err := model.DecodeJSON(r.Body)
		if err != nil {
			writeError(w, err)
			return
		}
		raw, ok := body["tags"]
		if !ok {
			writeError(w, apierr.InvalidInput("Invalid tags body"))
			return
		}
		v, err := model.ParseTags(raw)
		if err != nil {
			writeError(w, apierr.InvalidInput("%v", err))
			return
		}
		want := v.([]string)
		replace := r.Method == http.MethodPut
		tags, err := c.svc.ChangeTags(ctx, c.name, id, func(old []string) ([]string, error) {
			if replace {
				return want, nil
			}
			return appendNew(old, want...), nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		status := http.StatusOK
		if !replace {
			status, tags = http.StatusCreated, want
		}
		writeJSON(w, status, map[string]any{"tags": tags})
	case http.MethodDelete:
		if _, err := c.svc.ChangeTags(ctx, c.name, id, func([]string) ([]string, error) { return nil, nil }); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w)
	}
}

// serveTag handles /v2.0/{collection}/{id}/tags/{tag}.
func (c *collection) serveTag(w http.ResponseWriter, r *http.Request) {
	ctx, err := ifMatch(r)
	if err != nil {
		writeError(w, err)
		return
	}
	id, tag := r.PathValue("id"), r.PathValue("tag")
	if _, err := model.ParseString(model.MaxTagLen)(tag); err != nil {
		writeError(w, apierr.InvalidInput("%v", err))
		return
	}
	notFound := apierr.New(http.StatusNotFound, "TagNotFound", "Tag %s could not be found.", tag)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		tags, err := c.svc.Tags(ctx, c.name, id)
		if err != nil {
			writeError(w, err)
			return
		}
		if !slices.Contains(tags, tag) {
			writeError(w, notFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		_, err := c.svc.ChangeTags(ctx, c.name, id, func(old []string) ([]string, error) {
			out := appendNew(old, tag)
			if len(out) > model.MaxTagsPer {
				return nil, apierr.BadRequest("The number of tags exceed the per-resource limit of %d", model.MaxTagsPer)
			}
			return out, nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		_, err := c.svc.ChangeTags(ctx, c.name, id, func(old []string) ([]string, error) {
			i := slices.Index(old, tag)
			if i < 0 {
				return nil, notFound
			}
			return slices.Delete(old, i, i+1), nil
		})
		if err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w)
	}
}

func appendNew(list []string, add ...string) []string {
	for _, t := range add {
		if !slices.Contains(list, t) {
			list = append(list, t)
		}
	}
	return list
}

// ifMatch reads an "If-Match: revision_number=N" constraint into the
// request's context (revision-if-match).
func ifMatch(r *http.Request) (ctx contextT, err error) {
	ctx = r.Context()
	h := r.Header.Values("If-Match")
	for _, v := range h {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			num, ok := strings.CutPrefix(item, "revision_number=")
			n, perr := strconv.ParseInt(num, 10, 64)
			if !ok || perr != nil {
				return ctx, apierr.BadRequest("If-Match header only supports revision_number=<number>, not %q", item)
			}
			ctx = service.WithIfMatch(ctx, n)
		}
	}
	return ctx, nil
}

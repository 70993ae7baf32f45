package agentserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/identity"
	"github.com/vland/vland/internal/service"
	"github.com/vland/vland/internal/store"
)

// BookmarkInterval is the longest a watch stays silent.
const BookmarkInterval = 10 * time.Second

// Server serves /agent/v1.
type Server struct {
	hub    *Hub
	svc    *service.Service
	auth   identity.Authenticator
	secret []byte
	log    *slog.Logger
	mux    *http.ServeMux
}

// New loads (or creates, once per store) the deployment secret and returns
// the agent API; Run must be started for watches to follow changes.
func New(ctx context.Context, st *store.Store, svc *service.Service, auth identity.Authenticator, log *slog.Logger) (*Server, error) {
	secret, err := loadSecret(ctx, st)
	if err != nil {
		return nil, err
	}
	s := &Server{hub: NewHub(svc), svc: svc, auth: auth, secret: secret, log: log, mux: http.NewServeMux()}
	p := "/agent/" + agentapi.Version + "/hosts/{host}/"
	s.mux.HandleFunc("GET "+p+"token", s.token)
	s.mux.HandleFunc("GET "+p+"view", s.agentOnly(s.view))
	s.mux.HandleFunc("PUT "+p+"status", s.agentOnly(s.status))
	return s, nil
}

// Run keeps watched views current until ctx ends.
func (s *Server) Run(ctx context.Context) { s.hub.Run(ctx) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// loadSecret returns the store's agent secret, creating it on first use.
func loadSecret(ctx context.Context, st *store.Store) ([]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, err
	}
	k := st.Keys.AgentSecret()
	enc := base64.StdEncoding.EncodeToString(fresh[:])
	resp, err := st.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, enc)).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return nil, fmt.Errorf("agent secret: %w", err)
	}
	if !resp.Succeeded {
		enc = string(resp.Responses[0].GetResponseRange().Kvs[0].Value)
	}
	return base64.StdEncoding.DecodeString(enc)
}

// TokenFor returns the agent token of host (for vland dev and tests).
func (s *Server) TokenFor(host string) string { return agentapi.Token(s.secret, host) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg}})
}

// validHost keeps host names to what a hostname may hold.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// agentOnly admits only the bearer of the path host's token.
func (s *Server) agentOnly(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host := r.PathValue("host")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !validHost(host) || !ok || !agentapi.ValidToken(s.secret, host, tok) {
			fail(w, http.StatusUnauthorized, "a valid agent token for this host is required")
			return
		}
		h(w, r, host)
	}
}

// token hands an admin the token of a host.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	c, err := s.auth.Authenticate(r)
	if err != nil || c == nil {
		fail(w, http.StatusUnauthorized, "authentication required")
		return
	}
	if !c.IsAdmin() {
		fail(w, http.StatusForbidden, "only admins may obtain agent tokens")
		return
	}
	if !validHost(host) {
		fail(w, http.StatusBadRequest, "invalid host name")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": s.TokenFor(host)})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, host string) {
	var st agentapi.Status
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
	if err := dec.Decode(&st); err != nil {
		fail(w, http.StatusBadRequest, "malformed status: "+err.Error())
		return
	}
	if err := s.svc.ReportStatus(r.Context(), host, st); err != nil {
		s.log.Warn("status report failed", "host", host, "err", err)
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) view(w http.ResponseWriter, r *http.Request, host string) {
	q := r.URL.Query()
	if q.Get("watch") == "" || q.Get("watch") == "0" || q.Get("watch") == "false" {
		v, err := s.hub.View(host)
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
		return
	}
	since, err := strconv.ParseInt(q.Get("since"), 10, 64)
	if err != nil {
		fail(w, http.StatusBadRequest, "watch needs since=<revision>")
		return
	}
	s.watch(w, r, host, since)
}

// watch streams events after since until the client goes away.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, host string, since int64) {
	events, rev, more, ok := s.hub.since(host, since)
	if !ok {
		fail(w, http.StatusGone, "revision is too old or unknown to this server; list again")
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	tick := time.NewTicker(BookmarkInterval)
	defer tick.Stop()
	for {
		for _, e := range events {
			if err := enc.Encode(e); err != nil {
				return
			}
		}
		if err := enc.Encode(agentapi.Event{Type: agentapi.EventBookmark, Revision: rev}); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		since = rev
		select {
		case <-r.Context().Done():
			return
		case <-more:
		case <-tick.C:
		}
		events, rev, more, ok = s.hub.since(host, since)
		if !ok {
			// The log moved past us while we were blocked: the agent relists.
			_ = enc.Encode(agentapi.Event{Type: agentapi.EventResync, Revision: since})
			return
		}
	}
}

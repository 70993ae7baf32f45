// Package server assembles a vland API server: store, cache, identity and
// HTTP listener, from a typed configuration.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/vland/vland/internal/agentserver"
	"github.com/vland/vland/internal/api"
	"github.com/vland/vland/internal/identity"
	"github.com/vland/vland/internal/service"
	"github.com/vland/vland/internal/store"
)

// Auth modes.
const (
	AuthBuiltin  = "builtin"
	AuthKeystone = "keystone"
	AuthNoAuth   = "noauth"
)

// Config is a server's whole configuration.
type Config struct {
	Listen        string
	DataDir       string
	EtcdEndpoints []string
	EtcdPrefix    string
	Auth          string
	AdminPassword string
	TokenTTL      time.Duration
	Keystone      identity.KeystoneConfig
	Service       service.Config
	Logger        *slog.Logger
}

// Server is a running API server.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9696.
	URL      string
	Store    *store.Store
	Service  *service.Service
	Builtin  *identity.Builtin
	Agents   *agentserver.Server
	listener net.Listener
	http     *http.Server
	cancel   context.CancelFunc
	done     chan error
}

// Start opens the store and starts serving; Close stops everything.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Service.Segments.Validate(); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Config{DataDir: cfg.DataDir, Endpoints: cfg.EtcdEndpoints, Prefix: cfg.EtcdPrefix, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{Store: st, cancel: cancel, done: make(chan error, 1)}
	fail := func(err error) (*Server, error) {
		cancel()
		if s.Builtin != nil {
			s.Builtin.Close()
		}
		st.Close()
		return nil, err
	}
	s.Service = service.New(st, cfg.Service, cfg.Logger)
	if err := s.Service.Start(runCtx); err != nil {
		return fail(fmt.Errorf("start cache: %w", err))
	}
	var auth identity.Authenticator
	var idHandler http.Handler
	switch cfg.Auth {
	case AuthBuiltin, "":
		b, err := identity.NewBuiltin(ctx, identity.BuiltinConfig{
			Store: st, AdminPassword: cfg.AdminPassword, DataDir: cfg.DataDir, TokenTTL: cfg.TokenTTL, Logger: cfg.Logger,
		})
		if err != nil {
			return fail(fmt.Errorf("start identity: %w", err))
		}
		s.Builtin, auth, idHandler = b, b, b.Handler()
	case AuthKeystone:
		if cfg.Keystone.URL == "" {
			return fail(errors.New("--auth keystone needs --keystone-url"))
		}
		auth = identity.NewKeystone(cfg.Keystone)
	case AuthNoAuth:
		auth = identity.NoAuth{DefaultProject: "admin"}
	default:
		return fail(fmt.Errorf("unknown auth mode %q (builtin, keystone, noauth)", cfg.Auth))
	}
	agents, err := agentserver.New(ctx, st, s.Service, auth, cfg.Logger)
	if err != nil {
		return fail(fmt.Errorf("start agent API: %w", err))
	}
	s.Agents = agents
	go agents.Run(runCtx)
	handler := http.NewServeMux()
	handler.Handle("/agent/", agents)
	handler.Handle("/", api.New(api.Config{Service: s.Service, Auth: auth, Identity: idHandler, Logger: cfg.Logger}))
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", cfg.Listen, err))
	}
	s.listener = l
	s.URL = "http://" + l.Addr().String()
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { s.done <- s.http.Serve(l) }()
	go runControllers(runCtx, s, cfg.Logger)
	cfg.Logger.Info("vland server listening", "url", s.URL, "auth", cfg.Auth)
	return s, nil
}

// Wait blocks until the server stops serving.
func (s *Server) Wait() error {
	err := <-s.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving and closes the store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	s.cancel()
	if s.Builtin != nil {
		s.Builtin.Close()
	}
	if cerr := s.Store.Close(); err == nil {
		err = cerr
	}
	return err
}

package server

import (
	"context"
	"log/slog"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/vland/vland/internal/service"
)

// runControllers keeps the server's controllers (the DHCP and L3 schedulers)
// running on exactly one server of those sharing the store: they campaign
// in an etcd election and the leader runs them until its lease is lost.
// Their writes are transactions with compares and deterministic ids, so
// even two leaders for a moment would not duplicate anything.
func runControllers(ctx context.Context, srv *Server, log *slog.Logger) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(srv.Store.Client, concurrency.WithTTL(10), concurrency.WithContext(ctx))
		if err != nil {
			log.Warn("controller election session failed", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		el := concurrency.NewElection(sess, srv.Store.Keys.Root()+"leader/controllers")
		if err := el.Campaign(ctx, srv.URL); err != nil {
			sess.Close()
			sleepCtx(ctx, time.Second)
			continue
		}
		log.Info("leading the controllers")
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done():
			case <-lctx.Done():
			}
			cancel()
		}()
		scheduleLoop(lctx, srv.Service, log)
		cancel()
		sess.Close()
	}
}

// scheduleLoop runs a scheduling pass whenever the store changes (at most
// every 100 ms) and every few seconds regardless, so an agent that died
// without any write is noticed.
func scheduleLoop(ctx context.Context, svc *service.Service, log *slog.Logger) {
	for ctx.Err() == nil {
		_, changed := svc.Cache().Changed()
		if err := svc.ScheduleDHCP(ctx); err != nil && ctx.Err() == nil {
			log.Warn("DHCP scheduling pass incomplete", "err", err)
		}
		if err := svc.ScheduleL3(ctx); err != nil && ctx.Err() == nil {
			log.Warn("L3 scheduling pass incomplete", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			sleepCtx(ctx, 100*time.Millisecond)
		case <-time.After(3 * time.Second):
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

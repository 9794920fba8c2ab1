package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// service is one long-running part of `vigil serve`. Start returns once the part runs (or has
// failed to start); Stop blocks until it has stopped, and is safe to call twice or without Start.
type service interface {
	Name() string
	Start(ctx context.Context) error
	Stop()
}

// lifecycle starts services in order and stops the started ones in reverse. The order of
// `vigil serve` (wiring.go) is
//
//	store → store maintenance → keys → health watch → [HA elector] → [VC failover controller] → listeners
//
// so that stopping runs: listeners (not ready: no new connection; in-flight signatures drain for
// --shutdown-grace) → [controller] → [elector resigns] → health → keys → maintenance → store
// closed. Nothing that can sign outlives the store, and the store outlives every signer.
type lifecycle struct {
	log     *slog.Logger
	started []service
}

// start starts svcs in order; on the first failure it stops those already started (in reverse)
// and returns the error.
func (l *lifecycle) start(ctx context.Context, svcs ...service) error {
	for _, s := range svcs {
		if err := s.Start(ctx); err != nil {
			l.stop()
			return err // services name themselves in their errors
		}
		l.log.Debug("service started", "service", s.Name())
		l.started = append(l.started, s)
	}
	return nil
}

// stop stops every started service, last started first.
func (l *lifecycle) stop() {
	for i := len(l.started) - 1; i >= 0; i-- {
		s := l.started[i]
		s.Stop()
		l.log.Debug("service stopped", "service", s.Name())
	}
	l.started = nil
}

// loop is a background loop as a service: run is called in a goroutine with a context that ends
// at Stop, which waits for run to return. The loop's context does not end with Start's: the
// lifecycle decides when it stops, in order.
type loop struct {
	name string
	run  func(ctx context.Context)

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (l *loop) Name() string { return l.name }

func (l *loop) Start(ctx context.Context) error {
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		l.run(ctx)
	}()
	return nil
}

func (l *loop) Stop() {
	l.once.Do(func() {
		if l.cancel != nil {
			l.cancel()
			<-l.done
		}
	})
}

// httpService binds one listener at Start and serves it. Stop closes the listener at once (a
// load balancer's next probe fails: not ready), lets in-flight requests finish for the grace
// period (their slashing records are durable before any signature is written), then closes what
// is left.
type httpService struct {
	name   string
	listen func() (net.Listener, error)
	srv    *http.Server
	grace  time.Duration
	log    *slog.Logger
	failed chan<- error // a Serve that ended by itself

	ln   net.Listener
	done chan struct{}
	once sync.Once
}

func (h *httpService) Name() string { return h.name }

// port is the bound port (after Start).
func (h *httpService) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

func (h *httpService) Start(context.Context) error {
	ln, err := h.listen()
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	h.ln, h.done = ln, make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			h.failed <- fmt.Errorf("%s: %w", h.name, err)
		}
	}()
	return nil
}

func (h *httpService) Stop() {
	h.once.Do(func() {
		if h.done == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.grace)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			h.log.Warn("requests still running after the shutdown grace; closing them", "listener", h.name, "grace", h.grace)
			_ = h.srv.Close()
		}
		<-h.done
	})
}

// closer is a service whose only work is at Stop (closing the store last).
type closer struct {
	name  string
	close func()
	once  sync.Once
}

func (c *closer) Name() string                { return c.name }
func (c *closer) Start(context.Context) error { return nil }
func (c *closer) Stop()                       { c.once.Do(c.close) }

// starter is a service whose only work is at Start (a one-off step in order, such as syncing
// shared keystores before the keys load).
type starter struct {
	name  string
	start func(ctx context.Context)
}

func (s *starter) Name() string                    { return s.name }
func (s *starter) Start(ctx context.Context) error { s.start(ctx); return nil }
func (s *starter) Stop()                           {}

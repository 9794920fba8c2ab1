package signer

import (
	"context"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

// SourceReport is the outcome of loading one key source: how many keys it gave and which items
// failed (by name, never with secret material).
type SourceReport struct {
	Name   string
	Loaded int
	Errors []keystore.LoadError
}

// Health is a point-in-time view used by /healthcheck and /readyz.
type Health struct {
	Store   error // nil when the slashing store answered a ping
	Keys    int
	Sources []SourceReport
}

// OK reports whether everything is up: the store answers and no key failed to load.
func (h Health) OK() bool {
	if h.Store != nil {
		return false
	}
	for _, s := range h.Sources {
		if len(s.Errors) > 0 {
			return false
		}
	}
	return true
}

// SetSourceReports records the latest key-loading outcome.
func (s *Signer) SetSourceReports(r []SourceReport) { s.reports.Store(&r) }

// Health pings the store (bounded by timeout) and returns the current health.
func (s *Signer) Health(ctx context.Context, timeout time.Duration) Health {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := Health{Store: s.cfg.Store.Ping(ctx), Keys: s.cfg.Keys.Len()}
	if r := s.reports.Load(); r != nil {
		h.Sources = *r
	}
	return h
}

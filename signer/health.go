package signer

import (
	"context"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing"
)

// Health is a point-in-time view used by /healthcheck and /readyz.
type Health struct {
	Store   error // nil when the slashing store answered a ping
	Keys    int
	Sources []SourceReport
	// Disabled lists the loaded keys the slashing database refuses (deleted through the
	// keymanager API, still present in an operator's key source): they are served in
	// publicKeys but never signed for.
	Disabled []PublicKey
	// Importing lists the loaded keys refused because a chunked slashing-protection import of
	// theirs is in progress or was interrupted (slashing's "Chunked imports"): an interrupted
	// one never signs again until its import is run again to completion.
	Importing []ImportingKey
	// Leader describes the HA pair when the Leadership reports it (LeaderReporter); nil for a
	// single instance.
	Leader *LeaderStatus
}

// LeaderStatus is what an instance of the HA pair knows of it, for the health endpoints.
type LeaderStatus struct {
	Role       string // "leader", "standby" or "stopped"
	Instance   string // this instance
	Leader     string // the lease holder as last seen ("" none)
	LeaderURL  string
	Term       int64
	LeaseAge   time.Duration // since the lease was last renewed (database clock)
	LeaseValid bool
}

// LeaderReporter is implemented by a Leadership that can describe the pair (failover.Elector).
type LeaderReporter interface {
	LeaderStatus() LeaderStatus
}

// ImportingKey is a loaded key held by a chunked import (Health.Importing).
type ImportingKey struct {
	Key         PublicKey
	Interrupted bool // its import's last chunk is older than the store's import idle timeout
}

// importMarkerLister is the part of a store that lists import markers (both stores have it).
type importMarkerLister interface {
	ImportMarkers(ctx context.Context) ([]slashing.ImportMarker, error)
}

// disabledLister is the part of a store that lists disabled keys (both stores have it).
type disabledLister interface {
	DisabledKeys(ctx context.Context) ([]phase0.BLSPubKey, error)
}

// OK reports whether everything is up: the store answers and no key failed to load.
func (h Health) OK() bool {
	if h.Store != nil {
		return false
	}
	for _, s := range h.Sources {
		if !s.OK() {
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
	if dl, ok := s.cfg.Store.(disabledLister); ok && h.Store == nil {
		if keys, err := dl.DisabledKeys(ctx); err == nil {
			for _, pk := range keys {
				if _, loaded := s.cfg.Keys.Get(keystore.PublicKey(pk)); loaded {
					h.Disabled = append(h.Disabled, keystore.PublicKey(pk))
				}
			}
		}
	}
	if ml, ok := s.cfg.Store.(importMarkerLister); ok && h.Store == nil {
		if ms, err := ml.ImportMarkers(ctx); err == nil {
			for _, m := range ms {
				if _, loaded := s.cfg.Keys.Get(keystore.PublicKey(m.Pubkey)); loaded {
					h.Importing = append(h.Importing, ImportingKey{Key: keystore.PublicKey(m.Pubkey), Interrupted: m.Interrupted})
				}
			}
		}
	}
	if r := s.reports.Load(); r != nil {
		h.Sources = *r
	}
	if lr, ok := s.cfg.Leadership.(LeaderReporter); ok {
		st := lr.LeaderStatus()
		h.Leader = &st
	}
	return h
}

// CheckLeader asks the Leadership seam whether this instance may write now (the keymanager's
// imports and deletes are refused on a standby with the same error as signing).
func (s *Signer) CheckLeader(ctx context.Context) error { return s.cfg.Leadership.CheckLeader(ctx) }

// Package assignment decides which validator client may sign with a key: the fence that
// validator-client failover moves. It implements signer.Authorizer over the key → client
// assignments of the slashing database (slashing.Assigner), cached in memory and refreshed
// from the database, so that every Vigil instance on one database agrees.
//
// Rules, for a request by a named client C for key K (anonymous requests, which the api lets
// through only with --allow-unidentified-clients, are not fenced):
//   - K assigned to C: allowed;
//   - K assigned to another client: refused (signer.ErrForbidden, 403), naming neither the
//     other client nor any address;
//   - K unassigned and C active: C adopts K (one atomic write; whoever gets there first owns
//     it, and the loser is refused), so an existing deployment adopts assignments by
//     observation. Only the HA leader adopts: on a standby the request is let through to the
//     leadership check, which refuses it;
//   - K unassigned and C a standby: refused (a standby never adopts; it signs only keys moved
//     to it);
//   - except: a standby C gets the selection proofs of any key (AGGREGATION_SLOT and
//     SYNC_COMMITTEE_SELECTION_PROOF). A validator client signs them while it downloads its
//     duties (Lodestar 1.5.1 drops an epoch's whole attester duties when one proof is refused),
//     so a hot standby refused them would hold no duties when the keys are flipped to it and
//     miss the rest of that epoch. They are not slashable, are the same whoever asks, and are
//     never published alone (what they lead to, an aggregate, is still refused);
//   - C no longer in the clients file: refused.
//
// Why this can never release a slashable signature: it only ever refuses. Every request it
// allows still goes through leadership and slashing protection in the one database, which
// refuses a conflicting message whichever client asks; a stale cache (a move made by another
// instance not yet seen) can at worst let the previous owner sign a non-conflicting message, or
// refuse the new owner until the next refresh.
package assignment

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// Refusal reasons (metrics label values).
const (
	ReasonOtherClient = "assigned_to_other_client"
	ReasonStandby     = "standby_never_adopts"
	ReasonUnknown     = "client_not_configured"
)

// Config configures an Authorizer.
type Config struct {
	Store    slashing.Assigner
	Clients  func() *clients.Set // the clients file in force
	IsLeader func() bool         // nil: always (a single instance)
	// OnRefuse counts refusals by reason (nil: none).
	OnRefuse func(reason string)
	// OnAdopt sees every adoption (logging; nil: none).
	OnAdopt func(key signer.PublicKey, client string)
	// OnChange sees a refresh that found assignments changed by someone else (a move by
	// another instance or `vigil failover assign`): how many keys changed (nil: none).
	OnChange func(changed int)
}

// Authorizer implements signer.Authorizer.
type Authorizer struct {
	cfg Config

	mu     sync.RWMutex
	owners map[phase0.BLSPubKey]string
}

var _ signer.Authorizer = (*Authorizer)(nil)

// New returns an authorizer with nothing loaded; call Refresh before serving.
func New(cfg Config) *Authorizer {
	if cfg.IsLeader == nil {
		cfg.IsLeader = func() bool { return true }
	}
	return &Authorizer{cfg: cfg, owners: map[phase0.BLSPubKey]string{}}
}

// Refresh reloads the assignments from the database.
func (a *Authorizer) Refresh(ctx context.Context) error {
	m, err := a.cfg.Store.KeyAssignments(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	changed := 0
	for k, c := range m {
		if a.owners[k] != c {
			changed++
		}
	}
	for k := range a.owners {
		if _, ok := m[k]; !ok {
			changed++
		}
	}
	a.owners = m
	a.mu.Unlock()
	if changed > 0 && a.cfg.OnChange != nil {
		a.cfg.OnChange(changed)
	}
	return nil
}

// Owner is the client key is assigned to ("" none), as cached.
func (a *Authorizer) Owner(key signer.PublicKey) string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.owners[phase0.BLSPubKey(key)]
}

// Owners is a copy of the cached assignments.
func (a *Authorizer) Owners() map[phase0.BLSPubKey]string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make(map[phase0.BLSPubKey]string, len(a.owners))
	for k, v := range a.owners {
		out[k] = v
	}
	return out
}

// Visible reports whether a client's key listing shows key: its own keys and unassigned ones.
func (a *Authorizer) Visible(caller signer.Caller, key signer.PublicKey) bool {
	if caller == signer.Anonymous {
		return true
	}
	o := a.Owner(key)
	return o == "" || o == caller.Name
}

// Moved records a move this instance made (the database already has it).
func (a *Authorizer) Moved(keys []signer.PublicKey, client string) {
	a.mu.Lock()
	for _, k := range keys {
		a.owners[phase0.BLSPubKey(k)] = client
	}
	a.mu.Unlock()
}

func (a *Authorizer) refuse(reason, msg string) error {
	if a.cfg.OnRefuse != nil {
		a.cfg.OnRefuse(reason)
	}
	return fmt.Errorf("%w: %s", signer.ErrForbidden, msg)
}

// Authorize implements signer.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, caller signer.Caller, key signer.PublicKey, t signer.Type) error {
	if caller == signer.Anonymous {
		return nil
	}
	cl, ok := a.cfg.Clients().Get(caller.Name)
	if !ok {
		return a.refuse(ReasonUnknown, "this validator client is not configured")
	}
	if cl.Role == clients.Standby && dutyPreparation(t) {
		return nil
	}
	switch owner := a.Owner(key); {
	case owner == caller.Name:
		return nil
	case owner != "":
		return a.refuse(ReasonOtherClient, "the key is assigned to another validator client")
	case cl.Role == clients.Standby:
		return a.refuse(ReasonStandby, "the key is not assigned to this standby validator client (a standby signs only keys moved to it)")
	case !a.cfg.IsLeader():
		return nil // not the HA leader: the leadership check refuses, and only the leader adopts
	}
	owner, err := a.cfg.Store.AdoptKey(ctx, phase0.BLSPubKey(key), caller.Name)
	if err != nil {
		return fmt.Errorf("%w: recording the key's validator client: %v", signer.ErrUnavailable, err)
	}
	a.mu.Lock()
	a.owners[phase0.BLSPubKey(key)] = owner
	a.mu.Unlock()
	if owner != caller.Name {
		return a.refuse(ReasonOtherClient, "the key is assigned to another validator client")
	}
	if a.cfg.OnAdopt != nil {
		a.cfg.OnAdopt(key, owner)
	}
	return nil
}

// dutyPreparation: the signing types a standby may use for any key (see the package doc).
func dutyPreparation(t signer.Type) bool {
	return t == signer.TypeAggregationSlot || t == signer.TypeSyncCommitteeSelection
}

// RefreshLoop refreshes the assignments every interval until ctx ends (moves made by another
// instance or by `vigil failover assign`). Errors are reported to onErr and retried.
func (a *Authorizer) RefreshLoop(ctx context.Context, every time.Duration, onErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.Refresh(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}

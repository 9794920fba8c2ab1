package signer

// The seams of the sign pipeline: who asks (Caller), whether they may use the key (Authorizer),
// whether this instance signs at all (Leadership), and who watches every request (Observer).
// Each has a do-nothing default, so a single instance runs as before (everyone anonymous,
// everything allowed, always the leader, nobody watching); HA leader election and validator-
// client failover plug in through Config without touching Sign.
//
// Order in Sign: identifier, genesis root, signing root (all ErrInvalidRequest), key lookup
// (ErrUnknownKey), Authorizer (ErrForbidden), Leadership (ErrNotLeader), far-future guard and
// slashing protection (ErrSlashable), BLS. A refusal by the Authorizer or by Leadership happens
// before slashing protection: nothing is recorded, nothing is signed.

import (
	"context"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Caller is the identity of whoever sent a request: a named validator client, resolved by the
// HTTP layer (its listener, mTLS client certificate or bearer token) and carried in the request's
// context (WithCaller). The signer decides what it may do (Authorizer).
type Caller struct {
	Name string
}

// Anonymous is the caller of a request that carries no identity (every request, until named
// clients are configured).
var Anonymous = Caller{Name: "anonymous"}

type callerKey struct{}

// WithCaller returns ctx carrying c as the request's caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries (WithCaller), Anonymous when none.
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c
	}
	return Anonymous
}

// Authorizer decides whether caller may sign with key. It is consulted for every request whose
// key is loaded, before leadership and slashing protection. A refusal must wrap ErrForbidden
// (403); not being able to decide (assignment database down) must wrap ErrUnavailable (503).
// Any error refuses: nothing is recorded or signed. Safe for concurrent use; it must be fast (it
// runs on every request).
type Authorizer interface {
	Authorize(ctx context.Context, caller Caller, key PublicKey, t Type) error
}

// Leadership says whether this instance may sign now (the HA leader). It is consulted for
// every request, after the Authorizer and before slashing protection. A refusal must wrap
// ErrNotLeader (503, outcome not_leader). Safe for concurrent use; it must be fast (a local
// check of the leader's trust window, never a database round trip).
type Leadership interface {
	CheckLeader(ctx context.Context) error
}

// Event describes one Sign call for an Observer: what was asked, by whom, and how it ended.
// Fields the pipeline had not worked out when it stopped are zero (an invalid request may have no
// Key; Slot and Epoch are known once the signing root is computed).
type Event struct {
	Caller Caller
	Key    PublicKey // zero when the identifier did not parse
	Type   Type      // "" when there was no request
	// Slot is the message's slot (block proposals, attestations); zero for types without one.
	Slot phase0.Slot
	// Epoch is the message's epoch (an attestation's target epoch; for the other types the epoch
	// whose fork version signs the message); zero for fork-less types.
	Epoch    phase0.Epoch
	Outcome  Outcome
	Err      error // nil when signed
	Duration time.Duration
}

// Observer sees every Sign call once it has ended (metrics, miss detection, audit). It must be
// cheap and safe for concurrent use: it runs on the request's goroutine.
type Observer interface {
	ObserveRequest(e Event)
}

// Observers fans one event out to several observers, in order.
type Observers []Observer

// ObserveRequest implements Observer.
func (os Observers) ObserveRequest(e Event) {
	for _, o := range os {
		o.ObserveRequest(e)
	}
}

// The defaults: everyone may use every key, this instance always leads, nobody watches.
type (
	allowAll     struct{}
	alwaysLeader struct{}
	noObserver   struct{}
)

func (allowAll) Authorize(context.Context, Caller, PublicKey, Type) error { return nil }
func (alwaysLeader) CheckLeader(context.Context) error                    { return nil }
func (noObserver) ObserveRequest(Event)                                   {}

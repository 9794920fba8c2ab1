// Package signer is Vigil's domain core: the request types of the remote-signing API, the network
// configuration (fork schedule, preset), signing-root computation and the sign pipeline.
//
// Invariants of Sign:
//   - The signing root is always recomputed from the typed payload, the fork info and the network;
//     a caller-supplied root that differs is refused (ErrInvalidRequest). A caller's root is never
//     signed.
//   - For block proposals and attestations, the slashing-protection store has durably recorded the
//     message (or recognised an identical repeat) before the BLS signature is computed; a refusal
//     or an unavailable store means nothing is signed.
//   - A message whose epoch lies beyond wall-clock now + FarFutureEpochs is refused before it
//     reaches the store, so a bad clock or a bad client cannot raise the watermarks into the future.
//   - On a network whose genesis validators root is known, a request carrying another root is
//     refused before anything else (ErrInvalidRequest): it never reaches, hence never pins, the
//     slashing database.
//   - Authorization (Authorizer) and leadership (Leadership) are decided before slashing
//     protection: a refused caller or a standby instance gets nothing recorded and nothing
//     signed. A slashing write refused by the store's leader-term fence (slashing.ErrFenced)
//     reaches the caller as ErrNotLeader.
//   - The Observer sees every call exactly once, after it ended (seams.go).
//   - Every error wraps one element of the vocabulary in errors.go.
//
// The package never imports net/http, a metrics library or a database driver: its metrics are
// signer/signermetrics (an Observer), the keymanager service is signer/keymanager, the key set
// and its loader are keystore/keyset.
package signer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/slashing"
)

// Outcome classifies a Sign result for metrics and logs.
type Outcome string

// Outcomes.
const (
	OutcomeSigned      Outcome = "signed"
	OutcomeRefused     Outcome = "refused" // slashing protection said no: a safety outcome
	OutcomeInvalid     Outcome = "invalid"
	OutcomeUnknownKey  Outcome = "unknown_key"
	OutcomeForbidden   Outcome = "forbidden"
	OutcomeNotLeader   Outcome = "not_leader"
	OutcomeOverloaded  Outcome = "overloaded"
	OutcomeUnavailable Outcome = "unavailable"
	OutcomeError       Outcome = "error"
)

// OutcomeOf classifies an error returned by Sign (nil → signed).
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeSigned
	case errors.Is(err, ErrSlashable):
		return OutcomeRefused
	case errors.Is(err, ErrInvalidRequest):
		return OutcomeInvalid
	case errors.Is(err, ErrUnknownKey):
		return OutcomeUnknownKey
	case errors.Is(err, ErrForbidden):
		return OutcomeForbidden
	case errors.Is(err, ErrNotLeader):
		return OutcomeNotLeader
	case errors.Is(err, ErrOverloaded):
		return OutcomeOverloaded
	case errors.Is(err, ErrUnavailable):
		return OutcomeUnavailable
	default:
		return OutcomeError
	}
}

// Config assembles a Signer.
type Config struct {
	Network *Network
	Keys    *keyset.Set
	Store   slashing.Store
	// FarFutureEpochs is how far past the wall-clock epoch a block or attestation may be
	// (enforced when the network's genesis time is known; zero turns the guard off).
	FarFutureEpochs uint64
	// Concurrency is how many requests do their expensive part (slashing-protection write and
	// BLS signature) at once; more wait in arrival order (admission.go). Zero means 64.
	Concurrency int
	// MaxInFlight bounds the requests running and queued; beyond it Sign fails fast with
	// ErrOverloaded. Zero means 4096.
	MaxInFlight int
	// MaxQueueDelay is the longest a request may wait for a slot: one expected to wait longer is
	// refused at once with ErrOverloaded, one that did wait that long is refused then. Zero
	// means 1 s.
	MaxQueueDelay time.Duration
	// StoreTimeout bounds each slashing-protection call (zero: 5 s). A store that does not
	// answer in time fails the request closed with ErrUnavailable; nothing is signed.
	StoreTimeout time.Duration
	Now          func() time.Time

	// Seams (seams.go); nil means the do-nothing default.
	Authorizer Authorizer // nil: every caller may use every key
	Leadership Leadership // nil: this instance always leads
	Observer   Observer   // nil: nobody watches
}

// Admitting is nil when a sign request arriving now would get a signing slot or a place in the
// queue, and the ErrOverloaded it would get otherwise: callers check it before reading and
// decoding a request, so that the excess under overload costs next to nothing.
func (s *Signer) Admitting() error { return s.admit.refusing() }

// Load reports the sign requests doing their expensive part now and those queued for a slot.
func (s *Signer) Load() (running, queued int) { return s.admit.load() }

// Signer runs the sign pipeline.
type Signer struct {
	cfg     Config
	admit   *admission
	reports atomic.Pointer[[]SourceReport]
}

// New checks cfg and returns a Signer.
func New(cfg Config) (*Signer, error) {
	if cfg.Network == nil || cfg.Keys == nil || cfg.Store == nil {
		return nil, errors.New("signer: Network, Keys and Store are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4096
	}
	if cfg.MaxInFlight < cfg.Concurrency {
		return nil, fmt.Errorf("signer: MaxInFlight (%d) is below Concurrency (%d)", cfg.MaxInFlight, cfg.Concurrency)
	}
	if cfg.MaxQueueDelay <= 0 {
		cfg.MaxQueueDelay = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 5 * time.Second
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = allowAll{}
	}
	if cfg.Leadership == nil {
		cfg.Leadership = alwaysLeader{}
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	return &Signer{cfg: cfg, admit: newAdmission(cfg.Concurrency, cfg.MaxInFlight, cfg.MaxQueueDelay)}, nil
}

// Network returns the signer's network.
func (s *Signer) Network() *Network { return s.cfg.Network }

// Keys returns the loaded key set.
func (s *Signer) Keys() *KeySet { return s.cfg.Keys }

// ParseIdentifier reads the {identifier} of a sign URL: a BLS public key, 0x prefix optional,
// any case.
func ParseIdentifier(id string) (PublicKey, error) {
	s := strings.ToLower(strings.TrimSpace(id))
	if !strings.HasPrefix(s, "0x") {
		s = "0x" + s
	}
	b, err := decodeHex(s, 48)
	if err != nil {
		return PublicKey{}, invalid("identifier is not a BLS public key: %v", err)
	}
	var pk PublicKey
	copy(pk[:], b)
	return pk, nil
}

// Sign runs the pipeline for one request and returns the signature. The caller is the one ctx
// carries (WithCaller; Anonymous when none).
func (s *Signer) Sign(ctx context.Context, identifier string, r *Request) (sig Signature, err error) {
	start := time.Now()
	ev := Event{Caller: CallerFrom(ctx)}
	if r != nil {
		ev.Type = r.Type
	}
	defer func() {
		ev.Outcome, ev.Err, ev.Duration = OutcomeOf(err), err, time.Since(start)
		s.cfg.Observer.ObserveRequest(ev)
	}()
	if r == nil {
		return sig, invalid("no request")
	}
	pub, err := ParseIdentifier(identifier)
	if err != nil {
		return sig, err
	}
	ev.Key = pub
	if r.ForkInfo != nil {
		if err := s.cfg.Network.CheckGenesisValidatorsRoot(r.ForkInfo.GenesisValidatorsRoot); err != nil {
			return sig, err
		}
	}
	msg, err := s.cfg.Network.Compute(r)
	if err != nil {
		return sig, err
	}
	ev.Slot, ev.Epoch = msg.Slot, msg.Epoch
	if r.Type == TypeAttestation && r.Attestation != nil {
		ev.Slot = r.Attestation.Slot
	}
	if r.SigningRoot != nil && *r.SigningRoot != msg.Root {
		return sig, invalid("signing root %#x does not match the root computed from the request (%#x)", r.SigningRoot[:], msg.Root[:])
	}
	key, ok := s.cfg.Keys.Get(pub)
	if !ok {
		return sig, fmt.Errorf("%w: no key loaded for %s", ErrUnknownKey, pub)
	}
	if err := s.cfg.Authorizer.Authorize(ctx, ev.Caller, pub, r.Type); err != nil {
		return sig, err
	}
	if err := s.cfg.Leadership.CheckLeader(ctx); err != nil {
		return sig, err
	}
	held, err := s.admit.acquire(ctx)
	if err != nil {
		return sig, err
	}
	defer s.admit.release(held)
	if msg.Slashable {
		if err := s.protect(ctx, pub, r, msg); err != nil {
			return sig, err
		}
	}
	sig, err = key.Sign(ctx, msg.Root)
	if err != nil {
		return sig, fmt.Errorf("sign with %s: %w", pub, err)
	}
	return sig, nil
}

// protect applies the far-future guard and records the message in the slashing store.
func (s *Signer) protect(ctx context.Context, pub PublicKey, r *Request, msg Message) error {
	epoch := msg.Target
	if r.Type != TypeAttestation {
		epoch = s.cfg.Network.EpochOf(msg.Slot)
	}
	now, ok := s.cfg.Network.CurrentEpoch(s.cfg.Now())
	if !ok && !s.cfg.Network.GenesisTime.IsZero() {
		now, ok = 0, true // before genesis (a future or mistyped genesis time): measure from epoch 0
	}
	if ok && s.cfg.FarFutureEpochs > 0 && uint64(epoch) > uint64(now)+s.cfg.FarFutureEpochs {
		return slashing.Refuse(slashing.FarFuture, "epoch %d is more than %d epochs after the current epoch %d", epoch, s.cfg.FarFutureEpochs, now)
	}
	pk := phase0.BLSPubKey(pub)
	gvr := r.ForkInfo.GenesisValidatorsRoot
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	var err error
	if r.Type == TypeAttestation {
		err = s.cfg.Store.SignAttestation(sctx, slashing.Attestation{
			Pubkey: pk, SourceEpoch: msg.Source, TargetEpoch: msg.Target, SigningRoot: msg.Root, GenesisValidatorsRoot: gvr,
		})
	} else {
		err = s.cfg.Store.SignBlock(sctx, slashing.Block{Pubkey: pk, Slot: msg.Slot, SigningRoot: msg.Root, GenesisValidatorsRoot: gvr})
	}
	switch {
	case errors.Is(err, slashing.ErrFenced):
		// A newer leader's term is in the database: this instance is no longer the leader,
		// whatever it believes. Not an outage of the store.
		return fmt.Errorf("%w: the slashing-protection database refused the write: %v", ErrNotLeader, err)
	case err == nil || errors.Is(err, ErrSlashable) || errors.Is(err, ErrUnavailable):
		return err
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("%w: no answer within %s", ErrUnavailable, s.cfg.StoreTimeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: request ended before slashing protection answered: %v", ErrUnavailable, ctx.Err())
	default:
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
}

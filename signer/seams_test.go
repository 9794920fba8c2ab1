package signer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// refusingAuthorizer refuses every caller but allowed and records what it was asked.
type refusingAuthorizer struct {
	allowed string
	mu      sync.Mutex
	asked   []signer.Caller
}

func (a *refusingAuthorizer) Authorize(_ context.Context, c signer.Caller, key signer.PublicKey, t signer.Type) error {
	a.mu.Lock()
	a.asked = append(a.asked, c)
	a.mu.Unlock()
	if c.Name == a.allowed {
		return nil
	}
	return fmt.Errorf("%w: %s is assigned to another validator client, not %s", signer.ErrForbidden, key, c.Name)
}

// standby is a Leadership that says this instance is not the leader.
type standby struct{ leader string }

func (s standby) CheckLeader(context.Context) error {
	return fmt.Errorf("%w: the active instance is %s", signer.ErrNotLeader, s.leader)
}

func TestSignDefaultsAreAnonymousAllowedLeader(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	r := attestation(nowEpoch-1, nowEpoch, 0xaa)
	sig, err := f.s.Sign(t.Context(), f.pub(0), r)
	f.wantSigned(t, 0, r, sig, err)
	wantEq(t, "caller", f.obs.lastEvent().Caller, signer.Anonymous)
	wantEq(t, "anonymous name", signer.Anonymous.Name, "anonymous")
}

func TestSignAuthorizerRefusesBeforeSlashing(t *testing.T) {
	t.Parallel()
	auth := &refusingAuthorizer{allowed: "vc-a"}
	f := setup(t, func(c *signer.Config) { c.Authorizer = auth })
	for _, r := range []*signer.Request{attestation(nowEpoch-1, nowEpoch, 0xaa), blockHeader(nowEpoch * 32), randao(nowEpoch)} {
		ctx := signer.WithCaller(t.Context(), signer.Caller{Name: "vc-b"})
		sig, err := f.s.Sign(ctx, f.pub(1), r)
		if !errors.Is(err, signer.ErrForbidden) {
			t.Fatalf("%s: Sign error = %v, want ErrForbidden", r.Type, err)
		}
		wantEq(t, "outcome", signer.OutcomeOf(err), signer.OutcomeForbidden)
		wantEq(t, "observation", f.obs.last(), observation{r.Type, signer.OutcomeForbidden})
		if sig != (keystore.Signature{}) {
			t.Errorf("%s: a signature came back with a refusal", r.Type)
		}
	}
	if f.store.calls() != 0 || f.signs() != 0 {
		t.Fatalf("refused caller: %d store records, %d signatures; want none", f.store.calls(), f.signs())
	}
	// The assigned client signs.
	r := attestation(nowEpoch-1, nowEpoch, 0xaa)
	sig, err := f.s.Sign(signer.WithCaller(t.Context(), signer.Caller{Name: "vc-a"}), f.pub(1), r)
	f.wantSigned(t, 1, r, sig, err)
	wantEq(t, "caller seen by the authorizer", auth.asked[len(auth.asked)-1], signer.Caller{Name: "vc-a"})
}

func TestSignUnknownKeyBeforeAuthorizer(t *testing.T) {
	t.Parallel()
	auth := &refusingAuthorizer{}
	f := setup(t, func(c *signer.Config) { c.Authorizer = auth })
	_, err := f.s.Sign(t.Context(), "0x"+fmt.Sprintf("%096x", 1), randao(nowEpoch))
	wantEq(t, "outcome", signer.OutcomeOf(err), signer.OutcomeUnknownKey)
	if len(auth.asked) != 0 {
		t.Error("the authorizer was asked about a key that is not loaded")
	}
}

func TestSignStandbyRefusesBeforeSlashing(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *signer.Config) { c.Leadership = standby{leader: "vigil-0"} })
	for _, r := range []*signer.Request{attestation(nowEpoch-1, nowEpoch, 0xaa), blockHeader(nowEpoch * 32), randao(nowEpoch)} {
		_, err := f.s.Sign(t.Context(), f.pub(0), r)
		if !errors.Is(err, signer.ErrNotLeader) {
			t.Fatalf("%s: Sign error = %v, want ErrNotLeader", r.Type, err)
		}
		wantEq(t, "outcome", signer.OutcomeOf(err), signer.OutcomeNotLeader)
		wantEq(t, "observation", f.obs.last(), observation{r.Type, signer.OutcomeNotLeader})
	}
	if f.store.calls() != 0 || f.signs() != 0 {
		t.Fatalf("standby: %d store records, %d signatures; want none", f.store.calls(), f.signs())
	}
}

func TestSignFencedWriteIsNotLeader(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	// What a fencing store returns: it wraps slashing.ErrFenced (and, for the Postgres store,
	// matches ErrUnavailable too).
	f.store.err = fmt.Errorf("%w: %w: sign attestation with term 3, the database's term is 4", slashing.ErrUnavailable, slashing.ErrFenced)
	sig, err := f.s.Sign(t.Context(), f.pub(0), attestation(nowEpoch-1, nowEpoch, 0xaa))
	if !errors.Is(err, signer.ErrNotLeader) {
		t.Fatalf("Sign error = %v, want ErrNotLeader", err)
	}
	if errors.Is(err, signer.ErrUnavailable) {
		t.Error("a fenced write is reported as an outage")
	}
	wantEq(t, "outcome", signer.OutcomeOf(err), signer.OutcomeNotLeader)
	wantEq(t, "observation", f.obs.last(), observation{signer.TypeAttestation, signer.OutcomeNotLeader})
	if sig != (keystore.Signature{}) || f.signs() != 0 {
		t.Error("signed although the write was fenced")
	}
}

func TestSignObserverSeesEveryRequest(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	ctx := signer.WithCaller(t.Context(), signer.Caller{Name: "vc-a"})
	tests := []struct {
		name    string
		r       *signer.Request
		id      string
		slot    phase0.Slot
		epoch   phase0.Epoch
		outcome signer.Outcome
	}{
		{"attestation", attestation(nowEpoch-1, nowEpoch, 0xaa), f.pub(2), nowEpoch * 32, nowEpoch, signer.OutcomeSigned},
		{"block", blockHeader(nowEpoch*32 + 5), f.pub(2), nowEpoch*32 + 5, nowEpoch, signer.OutcomeSigned},
		{"randao", randao(nowEpoch + 1), f.pub(2), 0, nowEpoch + 1, signer.OutcomeSigned},
		{"next attestation", attestation(nowEpoch, nowEpoch+1, 0xab), f.pub(2), (nowEpoch + 1) * 32, nowEpoch + 1, signer.OutcomeSigned},
		{"bad identifier", randao(nowEpoch), "0x12", 0, 0, signer.OutcomeInvalid},
	}
	for _, tc := range tests {
		_, err := f.s.Sign(ctx, tc.id, tc.r)
		e := f.obs.lastEvent()
		wantEq(t, tc.name+": outcome", e.Outcome, signer.OutcomeOf(err))
		wantEq(t, tc.name+": outcome", e.Outcome, tc.outcome)
		wantEq(t, tc.name+": caller", e.Caller, signer.Caller{Name: "vc-a"})
		wantEq(t, tc.name+": type", e.Type, tc.r.Type)
		wantEq(t, tc.name+": slot", e.Slot, tc.slot)
		wantEq(t, tc.name+": epoch", e.Epoch, tc.epoch)
		wantEq(t, tc.name+": err", e.Err, err)
		if tc.outcome == signer.OutcomeSigned {
			wantEq(t, tc.name+": key", e.Key.String(), tc.id)
		} else {
			wantEq(t, tc.name+": key", e.Key, signer.PublicKey{})
		}
	}
	if n := len(f.obs.events); n != len(tests) {
		t.Errorf("observer saw %d events for %d requests", n, len(tests))
	}
}

func TestObserversFanOut(t *testing.T) {
	t.Parallel()
	a, b := &recordingObserver{}, &recordingObserver{}
	signer.Observers{a, b}.ObserveRequest(signer.Event{Type: signer.TypeRandaoReveal, Outcome: signer.OutcomeSigned})
	wantEq(t, "first", a.last(), observation{signer.TypeRandaoReveal, signer.OutcomeSigned})
	wantEq(t, "second", b.last(), observation{signer.TypeRandaoReveal, signer.OutcomeSigned})
}

func TestCallerFromEmptyContext(t *testing.T) {
	t.Parallel()
	wantEq(t, "caller", signer.CallerFrom(context.Background()), signer.Anonymous)
}

package assignment

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/signer"
)

// memAssigner is a hand-written slashing.Assigner.
type memAssigner struct {
	mu     sync.Mutex
	owners map[phase0.BLSPubKey]string
	adopts int
	err    error
}

func (m *memAssigner) KeyAssignments(context.Context) (map[phase0.BLSPubKey]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[phase0.BLSPubKey]string{}
	for k, v := range m.owners {
		out[k] = v
	}
	return out, m.err
}

func (m *memAssigner) AdoptKey(_ context.Context, k phase0.BLSPubKey, c string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return "", m.err
	}
	m.adopts++
	if o, ok := m.owners[k]; ok {
		return o, nil
	}
	m.owners[k] = c
	return c, nil
}

func (m *memAssigner) AssignKeys(_ context.Context, ks []phase0.BLSPubKey, c string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range ks {
		m.owners[k] = c
	}
	return nil
}

func key(b byte) signer.PublicKey { var k signer.PublicKey; k[0] = b; return k }

func TestAuthorize(t *testing.T) {
	set, err := clients.Parse([]byte("clients:\n  - name: vc1\n  - name: vc2\n  - name: sb\n    role: standby\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &memAssigner{owners: map[phase0.BLSPubKey]string{phase0.BLSPubKey(key(9)): "vc2"}}
	leader := true
	var refusals []string
	a := New(Config{Store: store, Clients: func() *clients.Set { return set }, IsLeader: func() bool { return leader },
		OnRefuse: func(r string) { refusals = append(refusals, r) }})
	ctx := context.Background()
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	vc1, vc2, sb := signer.Caller{Name: "vc1"}, signer.Caller{Name: "vc2"}, signer.Caller{Name: "sb"}
	forbidden := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, signer.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", what, err)
		}
	}
	// Adoption by observation: the first active client that signs owns the key.
	if err := a.Authorize(ctx, vc1, key(1), signer.TypeAttestation); err != nil {
		t.Fatalf("first signer of an unassigned key: %v", err)
	}
	forbidden("another client, adopted key", a.Authorize(ctx, vc2, key(1), signer.TypeAttestation))
	forbidden("a key assigned to vc2", a.Authorize(ctx, vc1, key(9), signer.TypeBlockV2))
	if err := a.Authorize(ctx, vc2, key(9), signer.TypeRandaoReveal); err != nil {
		t.Errorf("the owner: %v", err)
	}
	forbidden("a standby never adopts", a.Authorize(ctx, sb, key(2), signer.TypeAttestation))
	// A hot standby downloads its duties: the selection proofs of keys it does not own are
	// signed (not slashable, never published alone); everything else stays refused.
	for _, typ := range []signer.Type{signer.TypeAggregationSlot, signer.TypeSyncCommitteeSelection} {
		if err := a.Authorize(ctx, sb, key(9), typ); err != nil {
			t.Errorf("standby, %s of another client's key: %v", typ, err)
		}
	}
	forbidden("standby, an aggregate of another client's key", a.Authorize(ctx, sb, key(9), signer.TypeAggregateAndProofV2))
	forbidden("an active client, a selection proof of another client's key", a.Authorize(ctx, vc1, key(9), signer.TypeAggregationSlot))
	forbidden("a removed client", a.Authorize(ctx, signer.Caller{Name: "gone"}, key(3), signer.TypeAttestation))
	if err := a.Authorize(ctx, signer.Anonymous, key(9), signer.TypeAttestation); err != nil {
		t.Errorf("anonymous (unidentified allowed): %v", err)
	}
	// Not the HA leader: no adoption, the leadership check refuses next.
	leader = false
	if err := a.Authorize(ctx, vc1, key(4), signer.TypeAttestation); err != nil || a.Owner(key(4)) != "" {
		t.Errorf("standby Vigil: %v, owner %q (must not adopt)", err, a.Owner(key(4)))
	}
	leader = true
	// A move made elsewhere is seen after a refresh; the old owner is refused.
	_ = store.AssignKeys(ctx, []phase0.BLSPubKey{phase0.BLSPubKey(key(1))}, "sb")
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	forbidden("the previous owner after a move", a.Authorize(ctx, vc1, key(1), signer.TypeAttestation))
	if err := a.Authorize(ctx, sb, key(1), signer.TypeAttestation); err != nil {
		t.Errorf("the standby the key moved to: %v", err)
	}
	if !a.Visible(vc1, key(5)) || a.Visible(vc1, key(1)) || !a.Visible(sb, key(1)) {
		t.Error("Visible: want unassigned and own keys only")
	}
	// The database down while adopting: unavailable, nothing allowed.
	store.err = errors.New("connection refused")
	if err := a.Authorize(ctx, vc1, key(6), signer.TypeAttestation); !errors.Is(err, signer.ErrUnavailable) {
		t.Errorf("adoption with the database down: %v, want ErrUnavailable", err)
	}
	want := []string{ReasonOtherClient, ReasonOtherClient, ReasonStandby, ReasonOtherClient, ReasonOtherClient, ReasonUnknown, ReasonOtherClient}
	if len(refusals) != len(want) {
		t.Errorf("refusals %v, want %v", refusals, want)
	}
}

package slashingtest

import (
	"context"
	"sync"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// RunAssignments runs the conformance suite of slashing.Assigner: adoption is first-come and
// atomic under concurrency, a move reassigns in one call, and the assignments survive reopening
// nothing else (they are rows of the store, listed by KeyAssignments).
func RunAssignments(t *testing.T, open func(t *testing.T) slashing.Store) {
	ctx := context.Background()
	s := fresh(t, open)
	a, ok := s.(slashing.Assigner)
	if !ok {
		t.Fatalf("%T does not implement slashing.Assigner", s)
	}
	if m, err := a.KeyAssignments(ctx); err != nil || len(m) != 0 {
		t.Fatalf("a new store's assignments: %v, %v", m, err)
	}
	// Concurrent adoption of one key by two clients: one owner, both told the same.
	var wg sync.WaitGroup
	owners := make([]string, 16)
	for i := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := "vc1"
			if i%2 == 1 {
				client = "vc2"
			}
			o, err := a.AdoptKey(ctx, Key(1), client)
			if err != nil {
				t.Errorf("AdoptKey: %v", err)
			}
			owners[i] = o
		}()
	}
	wg.Wait()
	for _, o := range owners {
		if o != owners[0] || (o != "vc1" && o != "vc2") {
			t.Fatalf("concurrent adoption gave owners %v", owners)
		}
	}
	first := owners[0]
	if o, err := a.AdoptKey(ctx, Key(1), "vc3"); err != nil || o != first {
		t.Fatalf("adopting an owned key: %q, %v; want the owner %q", o, err, first)
	}
	if err := a.AssignKeys(ctx, []phase0.BLSPubKey{Key(1), Key(2)}, "vc9"); err != nil {
		t.Fatal(err)
	}
	m, err := a.KeyAssignments(ctx)
	if err != nil || len(m) != 2 || m[Key(1)] != "vc9" || m[Key(2)] != "vc9" {
		t.Fatalf("after a move: %v, %v", m, err)
	}
	if o, err := a.AdoptKey(ctx, Key(2), "vc1"); err != nil || o != "vc9" {
		t.Fatalf("adopting a moved key: %q, %v", o, err)
	}
}

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

// RunFailoverLedger runs the conformance suite of slashing.FailoverLedger.
func RunFailoverLedger(t *testing.T, open func(t *testing.T) slashing.Store) {
	ctx := context.Background()
	s := fresh(t, open)
	l, ok := s.(slashing.FailoverLedger)
	if !ok {
		t.Fatalf("%T does not implement slashing.FailoverLedger", s)
	}
	a := s.(slashing.Assigner)
	if st, err := l.ClientStates(ctx); err != nil || len(st) != 0 {
		t.Fatalf("a new store's client states: %v, %v", st, err)
	}
	if err := l.SetMissed(ctx, "vc1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AdoptKey(ctx, Key(1), "vc1"); err != nil {
		t.Fatal(err)
	}
	if err := l.MoveKeys(ctx, []phase0.BLSPubKey{Key(1)}, "vc1", "vc2", "missed 2 epochs"); err != nil {
		t.Fatal(err)
	}
	st, err := l.ClientStates(ctx)
	if err != nil || !st["vc1"].Fenced || st["vc1"].Missed != 0 || st["vc1"].Reason != "missed 2 epochs" || st["vc1"].Since.IsZero() {
		t.Fatalf("after a move: %+v, %v", st, err)
	}
	if m, _ := a.KeyAssignments(ctx); m[Key(1)] != "vc2" {
		t.Fatalf("the move did not reassign: %v", m)
	}
	if err := l.SetFenced(ctx, "vc1", false, "operator"); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.ClientStates(ctx); st["vc1"].Fenced {
		t.Fatal("still fenced after unfence")
	}
	if err := l.Audit(ctx, slashing.AuditRecord{Action: "stage", To: "vc2", Keys: 3}); err != nil {
		t.Fatal(err)
	}
	log, err := l.AuditLog(ctx, 10)
	if err != nil || len(log) != 3 || log[0].Action != "stage" || log[1].Action != "unfence" || log[2].Action != "move" ||
		log[2].From != "vc1" || log[2].To != "vc2" || log[2].Keys != 1 || log[2].At.IsZero() {
		t.Fatalf("audit log %+v, %v", log, err)
	}
	if log, _ := l.AuditLog(ctx, 1); len(log) != 1 {
		t.Fatalf("limit: %d records", len(log))
	}
}

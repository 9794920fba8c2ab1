package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

var _ slashing.Maintainer = (*postgres.Store)(nil)

func TestMaintenance(t *testing.T) {
	slashingtest.RunMaintenance(t, func(t *testing.T) slashing.Store {
		s, _ := fresh(t, postgres.Options{Create: true})
		return s
	})
}

// dump is every row a maintenance write could change, as text.
func dump(t testing.TB, url string) string {
	t.Helper()
	rows, err := sql(t, url).Query(context.Background(), `
		SELECT 'v ' || encode(pubkey, 'hex') || ' ' || enabled || ' ' || coalesce(lw_slot::text, '-') || ' ' ||
			coalesce(lw_source::text, '-') || ' ' || coalesce(lw_target::text, '-') FROM validators
		UNION ALL SELECT 'b ' || validator_id || ' ' || slot FROM signed_blocks
		UNION ALL SELECT 'a ' || validator_id || ' ' || source_epoch || ' ' || target_epoch FROM signed_attestations
		UNION ALL SELECT 'f ' || term || ' ' || coalesce(hw_slot::text, '-') || ' ' || coalesce(hw_epoch::text, '-') FROM fence
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestMaintenanceFenced: every maintenance write of a store whose term is
// stale fails with ErrFenced (also ErrUnavailable) and changes nothing, on a
// database with history and on an empty one; the leader's succeed.
func TestMaintenanceFenced(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	old := open(t, url, postgres.Options{Create: true, Term: 1})
	leader := open(t, url, postgres.Options{Create: true, Term: 1})
	emptyURL := pgtest.NewDatabase(t)
	oldEmpty := open(t, emptyURL, postgres.Options{Create: true, Term: 1})
	leaderEmpty := open(t, emptyURL, postgres.Options{Create: true, Term: 1})

	for e := uint64(0); e < 40; e++ {
		if err := old.SignBlock(ctx, block(1, 8*e, 1)); err != nil {
			t.Fatal(err)
		}
		if err := old.SignAttestation(ctx, att(1, e, e+1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 1000, Epoch: 100}); err != nil {
		t.Fatal(err)
	}
	if err := leader.SetTerm(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := leaderEmpty.SetTerm(ctx, 2); err != nil {
		t.Fatal(err)
	}

	writes := map[string]func(s *postgres.Store) error{
		"Prune": func(s *postgres.Store) error {
			_, err := s.Prune(ctx, slashing.PruneOptions{KeepEpochs: 2, SlotsPerEpoch: 8})
			return err
		},
		"RaiseLowWatermarks(every key)": func(s *postgres.Store) error {
			_, err := s.RaiseLowWatermarks(ctx, nil, 100, 10)
			return err
		},
		"RaiseLowWatermarks(named, new key)": func(s *postgres.Store) error {
			_, err := s.RaiseLowWatermarks(ctx, []phase0.BLSPubKey{slashingtest.Key(1), slashingtest.Key(2)}, 100, 10)
			return err
		},
		"SetHighWatermark": func(s *postgres.Store) error {
			return s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 5, Epoch: 5})
		},
		"SetHighWatermark(nil)": func(s *postgres.Store) error { return s.SetHighWatermark(ctx, nil) },
	}
	for _, db := range []struct {
		name string
		url  string
		old  *postgres.Store
	}{{"history", url, old}, {"empty", emptyURL, oldEmpty}} {
		before := dump(t, db.url)
		fencedBefore := db.old.Stats().Fenced
		for name, w := range writes {
			err := w(db.old)
			if !errors.Is(err, postgres.ErrFenced) || !errors.Is(err, slashing.ErrUnavailable) {
				t.Fatalf("%s: %s at a stale term = %v, want ErrFenced", db.name, name, err)
			}
			if after := dump(t, db.url); after != before {
				t.Fatalf("%s: %s at a stale term changed the database:\nbefore:\n%s\nafter:\n%s", db.name, name, before, after)
			}
		}
		if n := db.old.Stats().Fenced - fencedBefore; n != uint64(len(writes)) {
			t.Fatalf("%s: Stats.Fenced counted %d fenced maintenance writes, want %d", db.name, n, len(writes))
		}
		// Reads still work for the fenced instance.
		if _, err := db.old.HighWatermark(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if hw, err := old.HighWatermark(ctx); err != nil || hw == nil || *hw != (slashing.HighWatermark{Slot: 1000, Epoch: 100}) {
		t.Fatalf("HighWatermark = %v, %v", hw, err)
	}

	// The leader's maintenance goes through.
	if res, err := leader.Prune(ctx, slashing.PruneOptions{KeepEpochs: 10, SlotsPerEpoch: 8}); err != nil || res.Validators != 1 {
		t.Fatalf("the leader's Prune = %+v, %v", res, err)
	}
	if n, err := leader.RaiseLowWatermarks(ctx, []phase0.BLSPubKey{slashingtest.Key(2)}, 1, 1); err != nil || n != 1 {
		t.Fatalf("the leader's RaiseLowWatermarks = %d, %v", n, err)
	}
	if err := leader.SetHighWatermark(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := leaderEmpty.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 1, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := leaderEmpty.Prune(ctx, slashing.PruneOptions{KeepEpochs: 1, SlotsPerEpoch: 1}); err != nil {
		t.Fatal(err)
	}
}

// lockKey holds both advisory locks of key k (blocks first) in a
// transaction of its own connection until release is called.
func lockKey(t testing.TB, url string, k int) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn := sql(t, url)
	var id int64
	pk := slashingtest.Key(k)
	if err := conn.QueryRow(ctx, "SELECT id FROM validators WHERE pubkey = $1", pk[:]).Scan(&id); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []int{postgres.LockNamespaceBlock, postgres.LockNamespaceAtt} {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2::int)", ns, id); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaintenanceTakesKeyLocks: Prune and RaiseLowWatermarks wait for a
// key's advisory locks (held here as a signature of that key would hold
// one), so they are serialised with the key's signing; they finish once the
// lock is released.
func TestMaintenanceTakesKeyLocks(t *testing.T) {
	ctx := context.Background()
	for _, op := range []struct {
		fn string
		do func(s *postgres.Store) error
	}{
		{"vigil_prune", func(s *postgres.Store) error {
			res, err := s.Prune(ctx, slashing.PruneOptions{KeepEpochs: 1, SlotsPerEpoch: 1})
			if err == nil && res != (slashing.PruneResult{Validators: 2, Blocks: 4, Attestations: 4}) {
				err = fmt.Errorf("result %+v", res)
			}
			return err
		}},
		{"vigil_raise_low_watermarks", func(s *postgres.Store) error {
			n, err := s.RaiseLowWatermarks(ctx, nil, 50, 50)
			if err == nil && n != 2 {
				err = fmt.Errorf("%d keys changed, want 2", n)
			}
			return err
		}},
	} {
		t.Run(op.fn, func(t *testing.T) {
			s, url := fresh(t, postgres.Options{Create: true})
			for k := 1; k <= 2; k++ {
				for i := uint64(0); i < 3; i++ {
					if err := s.SignBlock(ctx, block(k, i, 1)); err != nil {
						t.Fatal(err)
					}
					if err := s.SignAttestation(ctx, att(k, i, i+1, 1)); err != nil {
						t.Fatal(err)
					}
				}
			}
			release := lockKey(t, url, 2)
			done := make(chan error, 1)
			go func() { done <- op.do(s) }()
			waitForLockWaiter(t, url, op.fn)
			// While it waits for key 2, key 1 (locked and handled first, same
			// transaction) cannot sign either: a signature waits for the
			// maintenance transaction to commit.
			signed := make(chan error, 1)
			go func() { signed <- s.SignAttestation(ctx, att(1, 60, 61, 1)) }()
			waitForLockWaiter(t, url, "vigil_sign_attestation")
			select {
			case err := <-done:
				t.Fatalf("%s returned while a key lock was held: %v", op.fn, err)
			case err := <-signed:
				t.Fatalf("key 1 signed while the maintenance transaction held its lock: %v", err)
			default:
			}
			release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := <-signed; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAssignmentsConformance(t *testing.T) {
	slashingtest.RunAssignments(t, func(t *testing.T) slashing.Store {
		s, _ := fresh(t, postgres.Options{Create: true})
		return s
	})
}

// A deposed leader moves no key: assignment writes are fenced like every other write.
func TestAssignmentsFenced(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	old, err := postgres.Open(ctx, url, postgres.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	leader, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	if err := leader.SetTerm(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := old.AssignKeys(ctx, []phase0.BLSPubKey{slashingtest.Key(1)}, "vc1"); !errors.Is(err, slashing.ErrFenced) {
		t.Fatalf("a deposed leader's AssignKeys = %v, want ErrFenced", err)
	}
	if _, err := old.AdoptKey(ctx, slashingtest.Key(1), "vc1"); !errors.Is(err, slashing.ErrFenced) {
		t.Fatalf("a deposed leader's AdoptKey = %v, want ErrFenced", err)
	}
	if o, err := leader.AdoptKey(ctx, slashingtest.Key(1), "vc2"); err != nil || o != "vc2" {
		t.Fatalf("the leader's AdoptKey = %q, %v", o, err)
	}
}

func TestFailoverLedgerConformance(t *testing.T) {
	slashingtest.RunFailoverLedger(t, func(t *testing.T) slashing.Store {
		s, _ := fresh(t, postgres.Options{Create: true})
		return s
	})
}

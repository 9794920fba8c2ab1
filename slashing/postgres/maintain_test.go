package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
			time.Sleep(100 * time.Millisecond)
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

// TestSetHighWatermarkWaitsForWritesInFlight: a signature that read the
// fence (and no high watermark) and is still running holds SetHighWatermark
// back and commits; a signature that starts while SetHighWatermark waits
// queues behind it and is checked against the new high watermark.
func TestSetHighWatermarkWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	s, url := fresh(t, postgres.Options{Create: true})
	if err := s.SignAttestation(ctx, att(1, 1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SignBlock(ctx, block(2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	release := lockKey(t, url, 1)
	inFlight := make(chan error, 1)
	go func() { inFlight <- s.SignAttestation(ctx, att(1, 10, 20, 1)) }()
	waitForLockWaiter(t, url, "vigil_sign_attestation")
	set := make(chan error, 1)
	go func() { set <- s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 5, Epoch: 5}) }()
	waitForLockWaiter(t, url, "vigil_set_high_watermark")
	late := make(chan error, 1)
	go func() { late <- s.SignBlock(ctx, block(2, 10, 1)) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-set:
		t.Fatalf("SetHighWatermark returned while a write was in flight: %v", err)
	case err := <-late:
		t.Fatalf("a signature overtook the waiting SetHighWatermark: %v", err)
	default:
	}
	release()
	if err := <-inFlight; err != nil {
		t.Fatalf("the signature in flight (checked before the high watermark was set) = %v", err)
	}
	if err := <-set; err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, <-late, slashing.AboveHighWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 20, 21, 1)), slashing.AboveHighWatermark)
}

// TestHighWatermarkOrder: the high watermark is checked where
// slashing.CheckBlock / CheckAttestation check it: after the enabled flag
// (and, for votes, source after target), before the low watermark; the
// refusal names the high watermark.
func TestHighWatermarkOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnabled(ctx, slashingtest.Key(2), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RaiseLowWatermarks(ctx, []phase0.BLSPubKey{slashingtest.Key(3)}, 500, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 100, Epoch: 10}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(2, 200, 1)), slashing.ValidatorDisabled)
	mustRefuse(t, s.SignAttestation(ctx, att(2, 20, 30, 1)), slashing.ValidatorDisabled)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 30, 20, 1)), slashing.SourceAfterTarget)
	mustRefuse(t, s.SignBlock(ctx, block(3, 200, 1)), slashing.AboveHighWatermark) // also below the LW 500
	mustRefuse(t, s.SignAttestation(ctx, att(3, 20, 30, 1)), slashing.AboveHighWatermark)
	mustRefuse(t, s.SignBlock(ctx, block(3, 99, 1)), slashing.BelowLowWatermark)
	err := s.SignBlock(ctx, block(1, 100, 1))
	mustRefuse(t, err, slashing.AboveHighWatermark)
	if !strings.Contains(err.Error(), "high watermark slot 100") {
		t.Fatalf("refusal %q does not name the high watermark", err)
	}
	err = s.SignAttestation(ctx, att(1, 9, 12, 1))
	mustRefuse(t, err, slashing.AboveHighWatermark)
	if !strings.Contains(err.Error(), "high watermark epoch 10") {
		t.Fatalf("refusal %q does not name the high watermark", err)
	}
	// u64 extremes survive the stored mapping.
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: math.MaxUint64, Epoch: 1 << 63}); err != nil {
		t.Fatal(err)
	}
	if hw, err := s.HighWatermark(ctx); err != nil || *hw != (slashing.HighWatermark{Slot: math.MaxUint64, Epoch: 1 << 63}) {
		t.Fatalf("HighWatermark = %v, %v", hw, err)
	}
	if err := s.SignBlock(ctx, block(1, math.MaxUint64-1, 1)); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(1, math.MaxUint64, 1)), slashing.AboveHighWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 1<<63, 1<<63, 1)), slashing.AboveHighWatermark)
}

// TestOneRoundTripWithHighWatermark: the high watermark costs no round trip:
// signatures accepted under it and refused by it are one request each.
func TestOneRoundTripWithHighWatermark(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 100, Epoch: 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil { // warm-up
		t.Fatal(err)
	}
	for i, call := range []func() error{
		func() error { return s.SignBlock(ctx, block(1, 2, 1)) },
		func() error { return ignoreRefusal(s.SignBlock(ctx, block(1, 100, 1))) },
		func() error { return s.SignAttestation(ctx, att(1, 1, 2, 1)) },
		func() error { return ignoreRefusal(s.SignAttestation(ctx, att(1, 2, 10, 1))) },
	} {
		before := s.Stats().RoundTrips
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := s.Stats().RoundTrips - before; got != 1 {
			t.Fatalf("call %d: %d round trips, want 1", i, got)
		}
	}
}

// TestMaintenanceModel drives the store and the reference model
// (slashingtest.Memory) with one random sequence of signatures, imports,
// enable/disable, low-watermark raises, prunes and high-watermark changes,
// and requires the same outcome of every operation and the same export
// along the way. Prune options include KeepEpochs·SlotsPerEpoch beyond u64
// and histories near the top of the u64 range.
func TestMaintenanceModel(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	m := slashingtest.NewMemory()
	rng := rand.New(rand.NewPCG(3076, 2026))
	outcome := func(err error) string {
		var r *slashing.Refusal
		switch {
		case err == nil:
			return "ok"
		case errors.As(err, &r):
			return "refused " + string(r.Reason)
		default:
			return "error " + err.Error()
		}
	}
	export := func(st slashing.Store) []slashing.ValidatorHistory {
		var out []slashing.ValidatorHistory
		if err := st.ExportValidators(ctx, nil, func(h slashing.ValidatorHistory) error {
			out = append(out, h)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	const keys = 5
	// Each key's history moves forward from a base: key 5 lives near the top
	// of the u64 range.
	base := func(k int) uint64 {
		if k == keys {
			return math.MaxUint64 - 4000
		}
		return 0
	}
	pos := make([]uint64, keys+1) // each key's current epoch offset
	pick := func(k int, spread int) uint64 {
		p := int(pos[k]) + rng.IntN(spread) - spread/2
		return base(k) + uint64(max(p, 0))
	}
	var prunes, pruned, raises, hws int
	for i := range 2500 {
		k := 1 + rng.IntN(keys)
		if rng.IntN(4) == 0 {
			pos[k] += uint64(1 + rng.IntN(3))
		}
		var desc string
		var do func(st slashing.Store) (string, error)
		maint := func(st slashing.Store) slashing.Maintainer { return st.(slashing.Maintainer) }
		switch op := rng.IntN(100); {
		case op < 35:
			b := block(k, base(k)+2*(pick(k, 12)-base(k)), byte(1+rng.IntN(2)))
			desc = fmt.Sprintf("block key%d slot %d", k, b.Slot)
			do = func(st slashing.Store) (string, error) { return "", st.SignBlock(ctx, b) }
		case op < 75:
			tgt := pick(k, 10)
			src := tgt - min(tgt-base(k), uint64(rng.IntN(4)))
			if rng.IntN(15) == 0 && src > base(k) {
				src, tgt = tgt, src-1 // source after target
			}
			a := att(k, src, tgt, byte(1+rng.IntN(2)))
			desc = fmt.Sprintf("vote key%d %d→%d", k, src, tgt)
			do = func(st slashing.Store) (string, error) { return "", st.SignAttestation(ctx, a) }
		case op < 80:
			var bs []slashing.SignedBlock
			var as []slashing.SignedAttestation
			for range rng.IntN(4) {
				bs = append(bs, slashingtest.B(base(k)+2*(pick(k, 20)-base(k)), byte(rng.IntN(3))))
			}
			for range rng.IntN(4) {
				tgt := pick(k, 20)
				as = append(as, slashingtest.A(tgt-min(tgt-base(k), uint64(rng.IntN(5))), tgt, byte(rng.IntN(3))))
			}
			h := slashingtest.H(k, bs, as)
			desc = fmt.Sprintf("import key%d %d blocks %d votes", k, len(bs), len(as))
			do = func(st slashing.Store) (string, error) { return "", st.ImportValidator(ctx, slashingtest.GVR, h) }
		case op < 83:
			en := rng.IntN(4) != 0
			desc = fmt.Sprintf("set key%d enabled %v", k, en)
			do = func(st slashing.Store) (string, error) { return "", st.SetEnabled(ctx, slashingtest.Key(k), en) }
		case op < 89:
			var pks []phase0.BLSPubKey
			if rng.IntN(3) != 0 {
				pks = []phase0.BLSPubKey{}
				for range 1 + rng.IntN(3) {
					pks = append(pks, slashingtest.Key(1+rng.IntN(keys+2))) // may name unknown keys, twice
				}
			}
			kk := 1 + rng.IntN(keys-1)
			slot, epoch := pick(kk, 8)*2, pick(kk, 8)
			desc = fmt.Sprintf("raise %d keys to slot %d epoch %d", len(pks), slot, epoch)
			raises++
			do = func(st slashing.Store) (string, error) {
				n, err := maint(st).RaiseLowWatermarks(ctx, pks, phase0.Slot(slot), phase0.Epoch(epoch))
				return fmt.Sprint(n), err
			}
		case op < 97:
			opts := slashing.PruneOptions{KeepEpochs: uint64(1 + rng.IntN(6)), SlotsPerEpoch: uint64(1 + rng.IntN(4))}
			switch rng.IntN(10) {
			case 0:
				opts.KeepEpochs = 1<<63 + 5 // KeepEpochs·SlotsPerEpoch overflows u64 (unless 1)
			case 1:
				opts.KeepEpochs, opts.SlotsPerEpoch = math.MaxUint64, 1
			}
			desc = fmt.Sprintf("prune %+v", opts)
			prunes++
			do = func(st slashing.Store) (string, error) {
				res, err := maint(st).Prune(ctx, opts)
				if st == slashing.Store(s) {
					pruned += res.Blocks + res.Attestations
				}
				return fmt.Sprintf("%+v", res), err
			}
		default:
			var hw *slashing.HighWatermark
			if rng.IntN(2) == 0 { // around the keys' current positions, mostly above
				kk := 1 + rng.IntN(keys-1)
				hw = &slashing.HighWatermark{Slot: phase0.Slot(2 * (pos[kk] + uint64(rng.IntN(30)))), Epoch: phase0.Epoch(pos[kk] + uint64(rng.IntN(20)))}
			}
			desc = fmt.Sprintf("set high watermark %v", hw)
			hws++
			do = func(st slashing.Store) (string, error) {
				err := maint(st).SetHighWatermark(ctx, hw)
				got, rerr := maint(st).HighWatermark(ctx)
				if rerr != nil {
					return "", rerr
				}
				return fmt.Sprint(got), err
			}
		}
		wantV, wantErr := do(m)
		gotV, gotErr := do(s)
		if want, got := wantV+" "+outcome(wantErr), gotV+" "+outcome(gotErr); got != want {
			t.Fatalf("op %d %s: store says %q, reference model says %q", i, desc, got, want)
		}
		if i%100 == 99 {
			if a, b := export(s), export(m); !reflect.DeepEqual(a, b) {
				t.Fatalf("after op %d: exports differ:\nstore: %+v\nmodel: %+v", i, a, b)
			}
		}
	}
	if a, b := export(s), export(m); !reflect.DeepEqual(a, b) {
		t.Fatalf("exports differ:\nstore: %+v\nmodel: %+v", a, b)
	}
	t.Logf("%d prunes (%d records deleted), %d raises, %d high-watermark changes", prunes, pruned, raises, hws)
	if pruned == 0 {
		t.Fatal("nothing was pruned: the test does not exercise pruning")
	}
}

// TestPruneManyKeys: a prune whose deletions exceed one call's budget is
// split into several calls (each key whole), with the same result as the
// reference model; pruning again deletes nothing.
func TestPruneManyKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	m := slashingtest.NewMemory()
	const keys, votes = 150, 300 // 45,000 votes, 44,700 of them pruned: several calls
	for k := 1; k <= keys; k++ {
		var as []slashing.SignedAttestation
		var bs []slashing.SignedBlock
		for e := uint64(0); e < votes; e++ {
			as = append(as, slashingtest.A(e, e+1, 1))
			if e%10 == 0 {
				bs = append(bs, slashingtest.B(32*e+uint64(k%32), 1))
			}
		}
		h := slashingtest.H(k, bs, as)
		for _, st := range []slashing.Store{s, m} {
			if err := st.ImportValidator(ctx, slashingtest.GVR, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	opts := slashing.PruneOptions{KeepEpochs: 2, SlotsPerEpoch: 32}
	want, err := m.Prune(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := s.Prune(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned %+v in %v", got, time.Since(start))
	if got != want {
		t.Fatalf("Prune = %+v, reference model %+v", got, want)
	}
	if got, err := s.Prune(ctx, opts); err != nil || got != (slashing.PruneResult{}) {
		t.Fatalf("second Prune = %+v, %v", got, err)
	}
	for k := 1; k <= keys; k += 37 {
		mustRefuse(t, s.SignAttestation(ctx, att(k, 297, 298, 2)), slashing.BelowLowWatermark)
		mustRefuse(t, s.SignAttestation(ctx, att(k, 298, 299, 2)), slashing.DoubleVote)
		if err := s.SignAttestation(ctx, att(k, 300, 301, 2)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUpgradeFromVersion1: a database created and written by schema version
// 1 is migrated by Open; history, watermarks, term and genesis root are
// kept, and the high watermark starts unset.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	v1, err := os.ReadFile("migrations/0001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn := sql(t, url)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_version (
			id          smallint PRIMARY KEY CHECK (id = 1),
			application text     NOT NULL,
			version     integer  NOT NULL
		)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(v1), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO schema_version VALUES (1, 'vigil-slashing-protection', 1)"); err != nil {
		t.Fatal(err)
	}
	pk, root, gvr := slashingtest.Key(1), slashingtest.Root(1), slashingtest.GVR
	var code int16
	if err := conn.QueryRow(ctx, "SELECT verdict FROM vigil_sign_block(1, $1, $2, $3, $4)", pk[:], encU64(10), root[:], gvr[:]).Scan(&code); err != nil || code != 0 {
		t.Fatalf("v1 sign block: %d, %v", code, err)
	}
	if err := conn.QueryRow(ctx, "SELECT verdict FROM vigil_sign_attestation(1, $1, $2, $3, $4, $5)", pk[:], encU64(3), encU64(4), root[:], gvr[:]).Scan(&code); err != nil || code != 0 {
		t.Fatalf("v1 sign attestation: %d, %v", code, err)
	}
	if _, err := conn.Exec(ctx, "SELECT vigil_set_term(7)"); err != nil {
		t.Fatal(err)
	}

	s := open(t, url, postgres.Options{Create: true, Term: 7})
	if hw, err := s.HighWatermark(ctx); err != nil || hw != nil {
		t.Fatalf("HighWatermark after the upgrade = %v, %v", hw, err)
	}
	if r, ok, err := s.GenesisValidatorsRoot(ctx); err != nil || !ok || r != gvr {
		t.Fatalf("genesis root after the upgrade: %x %v %v", r, ok, err)
	}
	if err := s.SignBlock(ctx, block(1, 10, 1)); err != nil {
		t.Fatalf("repeat after the upgrade: %v", err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(1, 9, 1)), slashing.BelowLowWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 2, 5, 1)), slashing.BelowLowWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 3, 4, 2)), slashing.DoubleVote)
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 20, Epoch: 6}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(1, 20, 1)), slashing.AboveHighWatermark)
	if err := s.SignAttestation(ctx, att(1, 4, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if term, err := s.DatabaseTerm(ctx); err != nil || term != 7 {
		t.Fatalf("term after the upgrade = %d, %v", term, err)
	}
}

// TestPruneEdges compares Prune with the reference model on histories at the
// ends of the u64 range and options whose KeepEpochs·SlotsPerEpoch does not
// fit in a u64.
func TestPruneEdges(t *testing.T) {
	ctx := context.Background()
	const top = math.MaxUint64
	histories := map[string]slashing.ValidatorHistory{
		"top": slashingtest.H(1,
			[]slashing.SignedBlock{slashingtest.B(top, 1), slashingtest.B(top-1, 1), slashingtest.B(0, 1)},
			[]slashing.SignedAttestation{slashingtest.A(top, top, 1), slashingtest.A(top-3, top-1, 1), slashingtest.A(5, 6, 1)}),
		"below top": slashingtest.H(2,
			[]slashing.SignedBlock{slashingtest.B(top-1, 1), slashingtest.B(top-100, 1), slashingtest.B(0, 1)},
			[]slashing.SignedAttestation{slashingtest.A(top-2, top-1, 1), slashingtest.A(top-50, top-40, 1), slashingtest.A(0, 1, 1)}),
		"middle": slashingtest.H(3,
			[]slashing.SignedBlock{slashingtest.B(1<<63, 1), slashingtest.B(1<<63-1, 1), slashingtest.B(1<<62, 1)},
			[]slashing.SignedAttestation{slashingtest.A(1<<63-1, 1<<63, 1), slashingtest.A(1<<63-2, 1<<63-1, 1), slashingtest.A(7, 8, 1)}),
		"small": slashingtest.H(4,
			[]slashing.SignedBlock{slashingtest.B(0, 1), slashingtest.B(3, 1)},
			[]slashing.SignedAttestation{slashingtest.A(0, 0, 1), slashingtest.A(0, 2, 1)}),
	}
	for _, opts := range []slashing.PruneOptions{
		{KeepEpochs: 1, SlotsPerEpoch: 1},
		{KeepEpochs: 2, SlotsPerEpoch: 1},
		{KeepEpochs: 3, SlotsPerEpoch: 32},
		{KeepEpochs: 1 << 62, SlotsPerEpoch: 2},
		{KeepEpochs: 1 << 62, SlotsPerEpoch: 4}, // product 2^64: no slot cut
		{KeepEpochs: 1<<63 + 1, SlotsPerEpoch: 3},
		{KeepEpochs: math.MaxUint64, SlotsPerEpoch: 1},
		{KeepEpochs: math.MaxUint64, SlotsPerEpoch: math.MaxUint64},
	} {
		t.Run(fmt.Sprintf("keep=%d,spe=%d", opts.KeepEpochs, opts.SlotsPerEpoch), func(t *testing.T) {
			s, _ := fresh(t, postgres.Options{Create: true})
			m := slashingtest.NewMemory()
			for _, h := range histories {
				for _, st := range []slashing.Store{s, m} {
					if err := st.ImportValidator(ctx, slashingtest.GVR, h); err != nil {
						t.Fatal(err)
					}
				}
			}
			for round := range 2 {
				want, err := m.Prune(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Prune(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("round %d: Prune = %+v, reference model %+v", round, got, want)
				}
			}
			var a, b []slashing.ValidatorHistory
			collect := func(out *[]slashing.ValidatorHistory) func(slashing.ValidatorHistory) error {
				return func(h slashing.ValidatorHistory) error { *out = append(*out, h); return nil }
			}
			if err := s.ExportValidators(ctx, nil, collect(&a)); err != nil {
				t.Fatal(err)
			}
			if err := m.ExportValidators(ctx, nil, collect(&b)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("exports differ:\nstore: %+v\nmodel: %+v", a, b)
			}
		})
	}
}

// TestMaintenanceConcurrent: two instances sign (conflicting requests for
// shared keys, forward-moving ones for keys of their own) while both prune,
// raise low watermarks of overlapping sets of known and new keys, import and
// move the high watermark, all at once. Nothing but refusals may fail (no
// deadlock, no lock timeout); no two accepted signatures conflict (pruning
// never lets a double or surround vote through); and afterwards every
// accepted message is still protected: a conflicting request is refused.
func TestMaintenanceConcurrent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	stores := []*postgres.Store{open(t, url, postgres.Options{Create: true}), open(t, url, postgres.Options{Create: true})}
	const (
		signers = 12
		shared  = 4
		run     = 1500 * time.Millisecond
	)
	var (
		clock    atomic.Uint64 // the "current epoch", moving forward
		stop     atomic.Bool
		mu       sync.Mutex
		accepted []slashing.Attestation
		blocks   []slashing.Block
		refused  = map[slashing.Reason]int{}
		pruned   slashing.PruneResult
		raised   int
		wg       sync.WaitGroup
		errs     = make(chan error, 64)
	)
	clock.Store(10)
	fail := func(what string, err error) {
		select {
		case errs <- fmt.Errorf("%s: %w", what, err):
		default:
		}
	}
	record := func(err error, ok func()) bool {
		var r *slashing.Refusal
		switch {
		case err == nil:
			mu.Lock()
			ok()
			mu.Unlock()
		case errors.As(err, &r):
			mu.Lock()
			refused[r.Reason]++
			mu.Unlock()
		default:
			return false
		}
		return true
	}
	loop := func(name string, fn func(rng *rand.Rand, s *postgres.Store) error) {
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(i)))
				for !stop.Load() {
					if err := fn(rng, stores[i]); err != nil {
						fail(name, err)
						return
					}
				}
			}()
		}
	}
	for w := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			s := stores[w%2]
			for !stop.Load() {
				now := clock.Load()
				k := 1 + rng.IntN(shared)
				if rng.IntN(3) == 0 {
					k = 100 + w
				}
				root := slashingtest.Root(byte(1 + rng.IntN(2)))
				if rng.IntN(3) == 0 {
					b := block(k, 4*now+uint64(rng.IntN(8)), 1)
					b.SigningRoot = root
					if !record(s.SignBlock(ctx, b), func() { blocks = append(blocks, b) }) {
						fail("sign block", errors.New("unexpected"))
						return
					}
					continue
				}
				tgt := now + uint64(rng.IntN(3))
				a := att(k, tgt-uint64(rng.IntN(4)), tgt, 1)
				a.SigningRoot = root
				if err := s.SignAttestation(ctx, a); !record(err, func() { accepted = append(accepted, a) }) {
					fail("sign attestation", err)
					return
				}
			}
		}()
	}
	loop("prune", func(rng *rand.Rand, s *postgres.Store) error {
		res, err := s.Prune(ctx, slashing.PruneOptions{KeepEpochs: uint64(2 + rng.IntN(3)), SlotsPerEpoch: 4})
		mu.Lock()
		pruned.Validators += res.Validators
		pruned.Blocks += res.Blocks
		pruned.Attestations += res.Attestations
		mu.Unlock()
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		return err
	})
	loop("raise", func(rng *rand.Rand, s *postgres.Store) error {
		var pks []phase0.BLSPubKey
		if rng.IntN(4) != 0 {
			pks = []phase0.BLSPubKey{}
			for range 1 + rng.IntN(8) {
				switch rng.IntN(3) {
				case 0:
					pks = append(pks, slashingtest.Key(1+rng.IntN(shared)))
				case 1:
					pks = append(pks, slashingtest.Key(100+rng.IntN(signers)))
				default:
					pks = append(pks, slashingtest.Key(500+rng.IntN(40))) // new keys, raced by the other instance
				}
			}
		}
		e := clock.Load() - 6
		n, err := s.RaiseLowWatermarks(ctx, pks, phase0.Slot(4*e), phase0.Epoch(e))
		mu.Lock()
		raised += n
		mu.Unlock()
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
		return err
	})
	loop("import", func(rng *rand.Rand, s *postgres.Store) error {
		// Blocks into the signed keys; votes only into keys of their own:
		// an imported vote merged with a signed one at the same target keeps
		// one vote per target (slashing.MergeAttestation), which by design
		// does not keep the surround information of both.
		e := clock.Load()
		h := slashingtest.H(1+rng.IntN(shared), []slashing.SignedBlock{slashingtest.B(4*e+uint64(rng.IntN(8)), 3)}, nil)
		if rng.IntN(2) == 0 {
			h = slashingtest.H(300+rng.IntN(4), nil, []slashing.SignedAttestation{slashingtest.A(e-1, e+uint64(rng.IntN(3)), 3)})
		}
		err := s.ImportValidator(ctx, slashingtest.GVR, h)
		time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
		return err
	})
	loop("high watermark", func(rng *rand.Rand, s *postgres.Store) error {
		var hw *slashing.HighWatermark
		if rng.IntN(4) == 0 {
			e := clock.Load() + uint64(rng.IntN(4))
			hw = &slashing.HighWatermark{Slot: phase0.Slot(4 * e), Epoch: phase0.Epoch(e)}
		}
		err := s.SetHighWatermark(ctx, hw)
		time.Sleep(time.Duration(20+rng.IntN(20)) * time.Millisecond)
		return err
	})
	deadline := time.Now().Add(run)
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		clock.Add(1)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected error: %v", err)
	}
	t.Logf("%d votes and %d blocks accepted, refused %v; pruned %+v; %d watermark raises", len(accepted), len(blocks), refused, pruned, raised)
	if len(accepted) == 0 || pruned.Attestations == 0 || raised == 0 || refused[slashing.AboveHighWatermark] == 0 {
		t.Fatal("the test did not exercise signing, pruning, raising and the high watermark together")
	}

	// No two accepted signatures conflict.
	type kt struct {
		key    phase0.BLSPubKey
		target phase0.Epoch
	}
	byTarget := map[kt]slashing.Attestation{}
	for _, a := range accepted {
		if x, seen := byTarget[kt{a.Pubkey, a.TargetEpoch}]; seen && x != a {
			t.Fatalf("double vote accepted: %+v and %+v", x, a)
		}
		byTarget[kt{a.Pubkey, a.TargetEpoch}] = a
	}
	for _, x := range byTarget {
		for _, y := range byTarget {
			if x.Pubkey == y.Pubkey && x.SourceEpoch < y.SourceEpoch && x.TargetEpoch > y.TargetEpoch {
				t.Fatalf("surround accepted: %d→%d surrounds %d→%d", x.SourceEpoch, x.TargetEpoch, y.SourceEpoch, y.TargetEpoch)
			}
		}
	}
	type ks struct {
		key  phase0.BLSPubKey
		slot phase0.Slot
	}
	bySlot := map[ks]slashing.Block{}
	for _, b := range blocks {
		if x, seen := bySlot[ks{b.Pubkey, b.Slot}]; seen && x != b {
			t.Fatalf("double proposal accepted: %+v and %+v", x, b)
		}
		bySlot[ks{b.Pubkey, b.Slot}] = b
	}
	// Every accepted message still refuses a conflicting one.
	s := stores[0]
	if err := s.SetHighWatermark(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range byTarget {
		a.SigningRoot = slashingtest.Root(9)
		var r *slashing.Refusal
		if err := s.SignAttestation(ctx, a); !errors.As(err, &r) || (r.Reason != slashing.DoubleVote && r.Reason != slashing.BelowLowWatermark) {
			t.Fatalf("a vote conflicting with an accepted one: %v", err)
		}
	}
	for _, b := range bySlot {
		b.SigningRoot = slashingtest.Root(9)
		var r *slashing.Refusal
		if err := s.SignBlock(ctx, b); !errors.As(err, &r) || (r.Reason != slashing.DoubleProposal && r.Reason != slashing.BelowLowWatermark) {
			t.Fatalf("a block conflicting with an accepted one: %v", err)
		}
	}
}

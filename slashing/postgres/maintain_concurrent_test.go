package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

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
	// No clock and no pacing by time: each signer makes a fixed number of requests, the
	// "current epoch" moves forward every opsPerEpoch requests of all signers, and each
	// maintenance goroutine waits for a random number (from its seeded RNG) of further
	// requests between two of its operations. Everything begins at once (start).
	const (
		signers     = 12
		shared      = 4
		opsPerSign  = 150 // requests per signer
		opsPerEpoch = 12  // requests of all signers per epoch
	)
	var (
		clock    atomic.Uint64 // the "current epoch", moving forward
		start    = make(chan struct{})
		pmu      sync.Mutex // guards ops and signing, and is progress's lock
		progress = sync.NewCond(&pmu)
		ops      int // requests the signers completed
		signing  = signers
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
	// signed counts a completed request: it moves the clock and wakes the maintenance goroutines.
	signed := func() {
		pmu.Lock()
		ops++
		if ops%opsPerEpoch == 0 {
			clock.Add(1)
		}
		pmu.Unlock()
		progress.Broadcast()
	}
	// awaitOps waits until the signers completed n more requests; false when they are done.
	awaitOps := func(n int) bool {
		pmu.Lock()
		defer pmu.Unlock()
		for target := ops + n; ops < target && signing > 0; {
			progress.Wait()
		}
		return signing > 0
	}
	// loop runs fn on each store, waiting for gap(rng) requests of the signers after each
	// call, until the signers are done.
	loop := func(name string, gap func(rng *rand.Rand) int, fn func(rng *rand.Rand, s *postgres.Store) error) {
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(i)))
				<-start
				for {
					if err := fn(rng, stores[i]); err != nil {
						fail(name, err)
						return
					}
					if !awaitOps(gap(rng)) {
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
			defer func() { // done (or failed): the maintenance goroutines stop after the last signer
				pmu.Lock()
				signing--
				pmu.Unlock()
				progress.Broadcast()
			}()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			s := stores[w%2]
			<-start
			for range opsPerSign {
				now := clock.Load()
				k := 1 + rng.IntN(shared)
				if rng.IntN(3) == 0 {
					k = 100 + w
				}
				root := slashingtest.Root(byte(1 + rng.IntN(2)))
				if rng.IntN(3) == 0 {
					b := block(k, 4*now+uint64(rng.IntN(8)), 1)
					b.SigningRoot = root
					if err := s.SignBlock(ctx, b); !record(err, func() { blocks = append(blocks, b) }) {
						fail("sign block", err)
						return
					}
					signed()
					continue
				}
				tgt := now + uint64(rng.IntN(3))
				a := att(k, tgt-uint64(rng.IntN(4)), tgt, 1)
				a.SigningRoot = root
				if err := s.SignAttestation(ctx, a); !record(err, func() { accepted = append(accepted, a) }) {
					fail("sign attestation", err)
					return
				}
				signed()
			}
		}()
	}
	loop("prune", func(rng *rand.Rand) int { return rng.IntN(24) }, func(rng *rand.Rand, s *postgres.Store) error {
		res, err := s.Prune(ctx, slashing.PruneOptions{KeepEpochs: uint64(2 + rng.IntN(3)), SlotsPerEpoch: 4})
		mu.Lock()
		pruned.Validators += res.Validators
		pruned.Blocks += res.Blocks
		pruned.Attestations += res.Attestations
		mu.Unlock()
		return err
	})
	loop("raise", func(rng *rand.Rand) int { return rng.IntN(12) }, func(rng *rand.Rand, s *postgres.Store) error {
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
		return err
	})
	loop("import", func(rng *rand.Rand) int { return 6 + rng.IntN(12) }, func(rng *rand.Rand, s *postgres.Store) error {
		// Blocks into the signed keys; votes only into keys of their own:
		// an imported vote merged with a signed one at the same target keeps
		// one vote per target (slashing.MergeAttestation), which by design
		// does not keep the surround information of both.
		e := clock.Load()
		h := slashingtest.H(1+rng.IntN(shared), []slashing.SignedBlock{slashingtest.B(4*e+uint64(rng.IntN(8)), 3)}, nil)
		if rng.IntN(2) == 0 {
			h = slashingtest.H(300+rng.IntN(4), nil, []slashing.SignedAttestation{slashingtest.A(e-1, e+uint64(rng.IntN(3)), 3)})
		}
		return s.ImportValidator(ctx, slashingtest.GVR, h)
	})
	loop("high watermark", func(rng *rand.Rand) int { return 24 + rng.IntN(24) }, func(rng *rand.Rand, s *postgres.Store) error {
		var hw *slashing.HighWatermark
		if rng.IntN(4) == 0 {
			e := clock.Load() + uint64(rng.IntN(4))
			hw = &slashing.HighWatermark{Slot: phase0.Slot(4 * e), Epoch: phase0.Epoch(e)}
		}
		return s.SetHighWatermark(ctx, hw)
	})
	close(start)
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

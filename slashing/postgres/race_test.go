package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// TestRaceTwoInstances: two stores (two pools, as two processes would have)
// on one database, 64 goroutines sending conflicting requests for a few
// shared keys and non-conflicting ones for keys of their own, blocks and
// attestations mixed. Afterwards, from the export: at most one signing root
// per (key, slot) and per (key, target) was accepted, no accepted vote
// surrounds another, and the database holds exactly the accepted requests
// (every nil is recorded, nothing else is).
func TestRaceTwoInstances(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	stores := []*postgres.Store{
		open(t, url, postgres.Options{Create: true, MaxConns: 16}),
		open(t, url, postgres.Options{Create: true, MaxConns: 16}),
	}
	const (
		workers = 64
		perW    = 50
		shared  = 3 // keys 1..3 are shared by every worker
	)
	type req struct {
		key          int
		block        bool
		slot         uint64
		source       uint64
		target       uint64
		root         byte
		storeIndex   int
		refusal      slashing.Reason
		acceptedCall bool
	}
	var (
		mu       sync.Mutex
		accepted []req
		refused  = map[slashing.Reason]int{}
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3076))
			s := stores[w%2]
			own := 100 + w
			ownEpoch := uint64(0)
			<-start
			for range perW {
				var r req
				r.storeIndex = w % 2
				if rng.IntN(4) == 0 { // non-conflicting: the worker's own key, moving forward
					ownEpoch++
					r.key, r.source, r.target, r.root = own, ownEpoch-1, ownEpoch, 1
					if rng.IntN(2) == 0 {
						r.block, r.slot = true, ownEpoch
					}
				} else {
					r.key = 1 + rng.IntN(shared)
					r.root = byte(1 + rng.IntN(3))
					if rng.IntN(2) == 0 {
						r.block, r.slot = true, uint64(rng.IntN(24))
					} else {
						r.source = uint64(rng.IntN(16))
						r.target = r.source + uint64(rng.IntN(7))
					}
				}
				var err error
				if r.block {
					err = s.SignBlock(ctx, slashing.Block{Pubkey: slashingtest.Key(r.key), Slot: phase0.Slot(r.slot),
						SigningRoot: slashingtest.Root(r.root), GenesisValidatorsRoot: slashingtest.GVR})
				} else {
					err = s.SignAttestation(ctx, slashing.Attestation{Pubkey: slashingtest.Key(r.key), SourceEpoch: phase0.Epoch(r.source),
						TargetEpoch: phase0.Epoch(r.target), SigningRoot: slashingtest.Root(r.root), GenesisValidatorsRoot: slashingtest.GVR})
				}
				var ref *slashing.Refusal
				switch {
				case err == nil:
					mu.Lock()
					accepted = append(accepted, r)
					mu.Unlock()
				case errors.As(err, &ref):
					mu.Lock()
					refused[ref.Reason]++
					mu.Unlock()
				default:
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected error: %v", err)
	}

	// The accepted requests are consistent.
	blockRoot := map[[2]uint64]byte{}
	voteOf := map[[2]uint64]req{}
	for _, a := range accepted {
		if a.block {
			k := [2]uint64{uint64(a.key), a.slot}
			if r, seen := blockRoot[k]; seen && r != a.root {
				t.Fatalf("double proposal accepted: key%d slot %d roots %#x and %#x", a.key, a.slot, r, a.root)
			}
			blockRoot[k] = a.root
			continue
		}
		k := [2]uint64{uint64(a.key), a.target}
		if v, seen := voteOf[k]; seen && (v.root != a.root || v.source != a.source) {
			t.Fatalf("double vote accepted: %+v and %+v", v, a)
		}
		voteOf[k] = a
	}
	for _, x := range voteOf {
		for _, y := range voteOf {
			if x.key == y.key && x.source < y.source && x.target > y.target {
				t.Fatalf("surround accepted: %+v surrounds %+v", x, y)
			}
		}
	}
	// The database holds exactly the accepted requests.
	want := map[string]bool{}
	for k, r := range blockRoot {
		want[fmt.Sprintf("key%d block %d %#x", k[0], k[1], r)] = true
	}
	for _, v := range voteOf {
		want[fmt.Sprintf("key%d vote %d→%d %#x", v.key, v.source, v.target, v.root)] = true
	}
	got := map[string]bool{}
	keyOf := map[phase0.BLSPubKey]int{}
	for k := 1; k <= shared; k++ {
		keyOf[slashingtest.Key(k)] = k
	}
	for w := range workers {
		keyOf[slashingtest.Key(100+w)] = 100 + w
	}
	if err := stores[0].ExportValidators(ctx, nil, func(h slashing.ValidatorHistory) error {
		k, ok := keyOf[h.Pubkey]
		if !ok {
			return fmt.Errorf("unknown key %#x in the export", h.Pubkey[:4])
		}
		for _, b := range h.SignedBlocks {
			if b.SigningRoot == nil {
				return fmt.Errorf("key%d: a block without root at %d", k, b.Slot)
			}
			got[fmt.Sprintf("key%d block %d %#x", k, b.Slot, b.SigningRoot[0])] = true
		}
		for _, a := range h.SignedAttestations {
			if a.SigningRoot == nil {
				return fmt.Errorf("key%d: a vote without root at %d", k, a.TargetEpoch)
			}
			got[fmt.Sprintf("key%d vote %d→%d %#x", k, a.SourceEpoch, a.TargetEpoch, a.SigningRoot[0])] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("accepted but not in the database: %s", id)
		}
	}
	for id := range got {
		if !want[id] {
			t.Fatalf("in the database but never accepted: %s", id)
		}
	}
	st0, st1 := stores[0].Stats(), stores[1].Stats()
	t.Logf("%d of %d requests accepted (%d distinct records), refused: %v; instance signs %d/%d",
		len(accepted), workers*perW, len(want), refused, st0.Signs, st1.Signs)
	if len(refused) == 0 || st0.Signs == 0 || st1.Signs == 0 {
		t.Fatal("no conflicts happened, or one instance did nothing")
	}
}

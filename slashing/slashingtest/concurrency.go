package slashingtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// testConcurrency: many goroutines send conflicting requests for the same
// keys at once. Afterwards: at most one root per (key, slot) and per (key,
// target) was accepted, no two accepted votes surround each other, no
// accepted vote has source > target, and every accepted request is in the
// export.
func testConcurrency(t *testing.T, s slashing.Store) {
	const (
		workers = 16
		perW    = 40
		keys    = 2
	)
	type accepted struct {
		key          int
		block        bool
		slot, source uint64
		target       uint64
		root         byte
	}
	var (
		mu  sync.Mutex
		got []accepted
		wg  sync.WaitGroup
	)
	start := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			<-start
			ctx := context.Background()
			for range perW {
				k := 1 + rng.IntN(keys)
				root := byte(1 + rng.IntN(3))
				var err error
				var a accepted
				if rng.IntN(2) == 0 {
					slot := uint64(rng.IntN(12))
					err = s.SignBlock(ctx, slashing.Block{Pubkey: Key(k), Slot: phase0.Slot(slot), SigningRoot: Root(root), GenesisValidatorsRoot: GVR})
					a = accepted{key: k, block: true, slot: slot, root: root}
				} else {
					src := uint64(rng.IntN(8))
					tgt := src + uint64(rng.IntN(6))
					err = s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(k), SourceEpoch: phase0.Epoch(src), TargetEpoch: phase0.Epoch(tgt), SigningRoot: Root(root), GenesisValidatorsRoot: GVR})
					a = accepted{key: k, source: src, target: tgt, root: root}
				}
				switch {
				case err == nil:
					mu.Lock()
					got = append(got, a)
					mu.Unlock()
				case !errors.Is(err, slashing.ErrSlashable):
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
	if len(got) == 0 {
		t.Fatal("nothing was accepted")
	}
	blockRoot := map[[2]uint64]byte{}
	voteOf := map[[2]uint64]accepted{}
	var votes []accepted
	for _, a := range got {
		if a.block {
			k := [2]uint64{uint64(a.key), a.slot}
			if r, seen := blockRoot[k]; seen && r != a.root {
				t.Fatalf("double proposal accepted: key%d slot %d roots %#x and %#x", a.key, a.slot, r, a.root)
			}
			blockRoot[k] = a.root
			continue
		}
		if a.source > a.target {
			t.Fatalf("source after target accepted: %+v", a)
		}
		k := [2]uint64{uint64(a.key), a.target}
		if v, seen := voteOf[k]; seen && (v.root != a.root || v.source != a.source) {
			t.Fatalf("double vote accepted: %+v and %+v", v, a)
		}
		voteOf[k] = a
		votes = append(votes, a)
	}
	for _, x := range votes {
		for _, y := range votes {
			if x.key == y.key && x.source < y.source && x.target > y.target {
				t.Fatalf("surround accepted: %+v surrounds %+v", x, y)
			}
		}
	}
	exported := map[string]bool{}
	for _, h := range exportAll(t, s, nil) {
		for _, b := range h.SignedBlocks {
			if b.SigningRoot != nil {
				exported[fmt.Sprintf("%x b %d %x", h.Pubkey[:2], b.Slot, b.SigningRoot[0])] = true
			}
		}
		for _, a := range h.SignedAttestations {
			if a.SigningRoot != nil {
				exported[fmt.Sprintf("%x a %d %d %x", h.Pubkey[:2], a.SourceEpoch, a.TargetEpoch, a.SigningRoot[0])] = true
			}
		}
	}
	for _, a := range got {
		pk := Key(a.key)
		var id string
		if a.block {
			id = fmt.Sprintf("%x b %d %x", pk[:2], a.slot, a.root)
		} else {
			id = fmt.Sprintf("%x a %d %d %x", pk[:2], a.source, a.target, a.root)
		}
		if !exported[id] {
			t.Fatalf("accepted request missing from the export: %+v", a)
		}
	}
	t.Logf("%d of %d requests accepted", len(got), workers*perW)
}

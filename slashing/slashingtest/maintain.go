package slashingtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// maint is an action on a store's Maintainer side.
func maint(desc string, do func(ctx context.Context, m slashing.Maintainer) error) action {
	return action{desc: desc, do: func(ctx context.Context, s slashing.Store) error {
		m, ok := s.(slashing.Maintainer)
		if !ok {
			return fmt.Errorf("store %T does not implement slashing.Maintainer", s)
		}
		return do(ctx, m)
	}}
}

func setHigh(slot, epoch uint64) action {
	return maint(fmt.Sprintf("set high watermark slot %d epoch %d", slot, epoch), func(ctx context.Context, m slashing.Maintainer) error {
		return m.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: phase0.Slot(slot), Epoch: phase0.Epoch(epoch)})
	})
}

func raise(keys []int, slot, epoch uint64, wantChanged int) action {
	return maint(fmt.Sprintf("raise low watermarks of %v to slot %d epoch %d", keys, slot, epoch), func(ctx context.Context, m slashing.Maintainer) error {
		var pks []phase0.BLSPubKey
		for _, k := range keys {
			pks = append(pks, Key(k))
		}
		n, err := m.RaiseLowWatermarks(ctx, pks, phase0.Slot(slot), phase0.Epoch(epoch))
		if err == nil && n != wantChanged {
			return fmt.Errorf("%d keys changed, want %d", n, wantChanged)
		}
		return err
	})
}

func prune(keep, spe uint64, want slashing.PruneResult) action {
	return maint(fmt.Sprintf("prune keeping %d epochs", keep), func(ctx context.Context, m slashing.Maintainer) error {
		got, err := m.Prune(ctx, slashing.PruneOptions{KeepEpochs: keep, SlotsPerEpoch: spe})
		if err == nil && got != want {
			return fmt.Errorf("prune result %+v, want %+v", got, want)
		}
		return err
	})
}

// history signs, for key, blocks at slots 0, 8, …, 8·n and votes e→e+1 for e in 0..n-1.
func history(key int, n uint64) action {
	return action{desc: fmt.Sprintf("sign a history of %d epochs for key%d", n, key), do: func(ctx context.Context, s slashing.Store) error {
		for e := uint64(0); e <= n; e++ {
			if err := s.SignBlock(ctx, slashing.Block{Pubkey: Key(key), Slot: phase0.Slot(8 * e), SigningRoot: Root(1), GenesisValidatorsRoot: GVR}); err != nil {
				return err
			}
			if e < n {
				if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(key), SourceEpoch: phase0.Epoch(e), TargetEpoch: phase0.Epoch(e + 1), SigningRoot: Root(2), GenesisValidatorsRoot: GVR}); err != nil {
					return err
				}
			}
		}
		return nil
	}}
}

var highWatermarkRules = []step{
	{"a high watermark can be set", setHigh(100, 10), ok},
	{"a block below the high watermark slot is accepted", block(1, 99, 1), ok},
	{"a block at the high watermark slot is refused", block(1, 100, 1), refused(slashing.AboveHighWatermark)},
	{"a block above it is refused", block(1, 500, 1), refused(slashing.AboveHighWatermark)},
	{"a vote below the high watermark epoch is accepted", att(1, 5, 9, 1), ok},
	{"a vote whose target is at the high watermark epoch is refused", att(1, 5, 10, 1), refused(slashing.AboveHighWatermark)},
	{"a vote whose source is at the high watermark epoch is refused", att(1, 10, 11, 1), refused(slashing.AboveHighWatermark)},
	{"the high watermark can be removed", maint("remove high watermark", func(ctx context.Context, m slashing.Maintainer) error {
		return m.SetHighWatermark(ctx, nil)
	}), ok},
	{"…then the block at the old high watermark is accepted", block(1, 100, 1), ok},
	{"…and the vote", att(1, 9, 10, 1), ok},
}

var lowWatermarkRepairRules = []step{
	{"key1 signs a block at slot 10", block(1, 10, 1), ok},
	{"key1 signs a vote 1→2", att(1, 1, 2, 1), ok},
	{"raising every key's watermarks changes key1", raise(nil, 20, 5, 1), ok},
	{"a block below the raised slot watermark is refused", block(1, 15, 1), refused(slashing.BelowLowWatermark)},
	{"a block at the raised watermark is accepted", block(1, 20, 1), ok},
	{"a vote with a source below the raised epoch watermark is refused", att(1, 4, 6, 1), refused(slashing.BelowLowWatermark)},
	{"a vote at the raised watermark is accepted", att(1, 5, 6, 1), ok},
	{"raising to lower values changes nothing (watermarks never go down)", raise(nil, 10, 3, 0), ok},
	{"…so slot 15 is still refused", block(1, 15, 2), refused(slashing.BelowLowWatermark)},
	{"naming an unknown key registers it with the watermarks", raise([]int{2}, 50, 7, 1), ok},
	{"…and its first block below them is refused", block(2, 49, 1), refused(slashing.BelowLowWatermark)},
	{"…and its first vote below them is refused", att(2, 6, 8, 1), refused(slashing.BelowLowWatermark)},
	{"…at the watermark it signs", att(2, 7, 8, 1), ok},
}

// With 8 slots per epoch, a 40-epoch history (blocks 0..320, votes e→e+1 for e < 40), pruned
// to 10 epochs: blocks below 320−80+1 = 241 go (slots 0..240: 31 blocks), votes with a target
// below 40−10+1 = 31 go (targets 1..30: 30 votes), and the source watermark becomes 29, the
// largest deleted source.
var pruneRules = []step{
	{"a key signs 40 epochs of history", history(1, 40), ok},
	{"pruning to 10 epochs removes exactly what lies below the cuts", prune(10, 8, slashing.PruneResult{Validators: 1, Blocks: 31, Attestations: 30}), ok},
	{"pruning again changes nothing", prune(10, 8, slashing.PruneResult{}), ok},
	{"a block at a pruned slot is refused (below the raised watermark)", block(1, 240, 1), refused(slashing.BelowLowWatermark)},
	{"a kept block still repeats", block(1, 248, 1), ok},
	{"a kept block at another root is still a double proposal", block(1, 248, 3), refused(slashing.DoubleProposal)},
	{"a vote at a pruned target is refused", att(1, 29, 30, 2), refused(slashing.BelowLowWatermark)},
	{"a vote with a source below the largest pruned source is refused", att(1, 28, 50, 2), refused(slashing.BelowLowWatermark)},
	{"a vote surrounding a kept vote is still refused", att(1, 29, 45, 2), refused(slashing.SurroundingVote)},
	{"the next vote is accepted", att(1, 40, 41, 2), ok},
}

// RunMaintenance runs the conformance suite of slashing.Maintainer. open must return a new,
// empty store that implements it.
func RunMaintenance(t *testing.T, open func(t *testing.T) slashing.Store) {
	t.Run("HighWatermark", func(t *testing.T) {
		s := fresh(t, open)
		m, ok := s.(slashing.Maintainer)
		if !ok {
			t.Fatalf("%T does not implement slashing.Maintainer", s)
		}
		if hw, err := m.HighWatermark(context.Background()); err != nil || hw != nil {
			t.Fatalf("a new store's high watermark: %v, %v; want none", hw, err)
		}
		runSteps(t, s, highWatermarkRules[:1])
		hw, err := m.HighWatermark(context.Background())
		if err != nil || hw == nil || *hw != (slashing.HighWatermark{Slot: 100, Epoch: 10}) {
			t.Fatalf("high watermark after setting it: %v, %v", hw, err)
		}
		runSteps(t, s, highWatermarkRules[1:])
	})
	t.Run("RaiseLowWatermarks", func(t *testing.T) { runSteps(t, fresh(t, open), lowWatermarkRepairRules) })
	t.Run("Prune", func(t *testing.T) {
		s := fresh(t, open)
		runSteps(t, s, pruneRules)
		h := exportAll(t, s, []phase0.BLSPubKey{Key(1)})
		if len(h) != 1 || len(h[0].SignedBlocks) == 0 || len(h[0].SignedAttestations) == 0 {
			t.Fatalf("export after prune: %+v", h)
		}
		if first := h[0].SignedBlocks[0].Slot; first != 241 {
			t.Errorf("export after prune starts at slot %d, want the watermark 241", first)
		}
		if first := h[0].SignedAttestations[0]; first.TargetEpoch != 31 {
			t.Errorf("export after prune starts at target %d, want the watermark 31", first.TargetEpoch)
		}
	})
	t.Run("PruneOptions", func(t *testing.T) {
		s := fresh(t, open)
		m, ok := s.(slashing.Maintainer)
		if !ok {
			t.Fatalf("%T does not implement slashing.Maintainer", s)
		}
		if _, err := m.Prune(context.Background(), slashing.PruneOptions{KeepEpochs: 0, SlotsPerEpoch: 32}); err == nil {
			t.Fatal("KeepEpochs 0 was accepted")
		}
	})
}

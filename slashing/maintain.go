package slashing

import (
	"context"
	"errors"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Maintainer is the lifecycle side of a store: pruning, watermark repair and the high
// watermark. Every store implements it; it is separate from Store so that the signing path
// depends only on what it uses.
//
// Invariants: low watermarks are only ever raised, never lowered; pruning deletes only what
// the raised low watermarks already refuse, so no request that was refused before a prune is
// accepted after it; each key is pruned or repaired in its own transaction, serialised with
// that key's signing.
type Maintainer interface {
	// Prune keeps, per key, the newest KeepEpochs epochs of history (measured from the key's
	// newest block and newest vote), raising the key's low watermarks to the cut and deleting
	// the records below them.
	Prune(ctx context.Context, opts PruneOptions) (PruneResult, error)
	// RaiseLowWatermarks raises the low watermarks of the given keys (nil: every key in the
	// database) to at least slot (blocks) and epoch (attestation source and target). Lower
	// existing values are raised, higher ones kept. Named keys that the database does not know
	// yet are registered, so watermarks can be set before a migrated key first signs here. It
	// returns the number of keys changed.
	RaiseLowWatermarks(ctx context.Context, pubkeys []phase0.BLSPubKey, slot phase0.Slot, epoch phase0.Epoch) (int, error)
	// SetHighWatermark sets the database-wide high watermark (nil removes it): blocks at or
	// above its slot and votes with a source or target at or above its epoch are refused
	// (AboveHighWatermark). Used while migrating keys between signers.
	SetHighWatermark(ctx context.Context, hw *HighWatermark) error
	// HighWatermark returns the high watermark, nil if none.
	HighWatermark(ctx context.Context) (*HighWatermark, error)
}

// HighWatermark is the database-wide ceiling set by watermark repair.
type HighWatermark struct {
	Slot  phase0.Slot
	Epoch phase0.Epoch
}

// PruneOptions configure Prune.
type PruneOptions struct {
	KeepEpochs    uint64 // history to keep per key, in epochs (Web3Signer's default: 250)
	SlotsPerEpoch uint64 // to turn KeepEpochs into slots for blocks
}

// ErrPruneOptions reports unusable PruneOptions.
var ErrPruneOptions = errors.New("prune: KeepEpochs and SlotsPerEpoch must be positive")

// Validate checks the options.
func (o PruneOptions) Validate() error {
	if o.KeepEpochs == 0 || o.SlotsPerEpoch == 0 {
		return ErrPruneOptions
	}
	return nil
}

// PruneResult counts what a prune removed.
type PruneResult struct {
	Validators   int // keys whose watermarks were raised
	Blocks       int // block records deleted
	Attestations int // attestation records deleted
}

// PruneCuts returns where pruning cuts one key's history, from its newest block slot and newest
// vote target (nil: none recorded): blocks below slotCut and votes with a target below
// targetCut go. A nil cut means that kind keeps everything.
//
//   - Blocks: cut = newest slot − KeepEpochs·SlotsPerEpoch + 1.
//   - Votes: cut = newest target − KeepEpochs + 1.
func PruneCuts(newestSlot *phase0.Slot, newestTarget *phase0.Epoch, opts PruneOptions) (slotCut *phase0.Slot, targetCut *phase0.Epoch) {
	if newestSlot != nil {
		keep := opts.KeepEpochs * opts.SlotsPerEpoch
		if keep/opts.SlotsPerEpoch == opts.KeepEpochs && uint64(*newestSlot)+1 > keep {
			c := *newestSlot - phase0.Slot(keep) + 1
			slotCut = &c
		}
	}
	if newestTarget != nil && uint64(*newestTarget)+1 > opts.KeepEpochs {
		c := *newestTarget - phase0.Epoch(opts.KeepEpochs) + 1
		targetCut = &c
	}
	return slotCut, targetCut
}

// PrunedWatermarks raises lw to the cuts. maxSourceBelow is the largest source epoch among the
// votes with a target below the new target watermark (nil if none); the source watermark is
// raised to it, which keeps the surround check sound without the deleted votes: a new vote
// (s, t) has t ≥ the target watermark, so no deleted vote (s', t') can surround it (t' < t),
// and s ≥ every deleted s', so it cannot surround a deleted vote either.
// Records below the returned watermarks (blocks with slot < Slot, votes with target < Target)
// may then be deleted. changed is false when nothing moves.
func PrunedWatermarks(lw LowWatermarks, slotCut *phase0.Slot, targetCut *phase0.Epoch, maxSourceBelow func(target phase0.Epoch) *phase0.Epoch) (next LowWatermarks, changed bool) {
	next = lw
	if slotCut != nil && (lw.Slot == nil || *lw.Slot < *slotCut) {
		c := *slotCut
		next.Slot, changed = &c, true
	}
	if targetCut != nil {
		w := AttestationWatermark{Target: *targetCut}
		if lw.Attestation != nil {
			w = AttestationWatermark{Source: lw.Attestation.Source, Target: max(lw.Attestation.Target, *targetCut)}
		}
		if s := maxSourceBelow(w.Target); s != nil {
			w.Source = max(w.Source, *s)
		}
		if lw.Attestation == nil || w != *lw.Attestation {
			next.Attestation, changed = &w, true
		}
	}
	return next, changed
}

// PrunePlan is PruneCuts and PrunedWatermarks over one key's records held in memory.
func PrunePlan(lw LowWatermarks, blocks []SignedBlock, atts []SignedAttestation, opts PruneOptions) (LowWatermarks, bool) {
	var newestSlot *phase0.Slot
	for _, b := range blocks {
		if newestSlot == nil || b.Slot > *newestSlot {
			s := b.Slot
			newestSlot = &s
		}
	}
	var newestTarget *phase0.Epoch
	for _, a := range atts {
		if newestTarget == nil || a.TargetEpoch > *newestTarget {
			t := a.TargetEpoch
			newestTarget = &t
		}
	}
	slotCut, targetCut := PruneCuts(newestSlot, newestTarget, opts)
	return PrunedWatermarks(lw, slotCut, targetCut, func(target phase0.Epoch) *phase0.Epoch {
		var best *phase0.Epoch
		for _, a := range atts {
			if a.TargetEpoch < target && (best == nil || a.SourceEpoch > *best) {
				s := a.SourceEpoch
				best = &s
			}
		}
		return best
	})
}

// RaisedWatermarks returns lw with every watermark raised to at least slot/epoch (the source
// and target watermarks both to epoch), and whether anything changed.
func RaisedWatermarks(lw LowWatermarks, slot phase0.Slot, epoch phase0.Epoch) (LowWatermarks, bool) {
	next, changed := lw, false
	if lw.Slot == nil || *lw.Slot < slot {
		s := slot
		next.Slot, changed = &s, true
	}
	w := AttestationWatermark{Source: epoch, Target: epoch}
	if lw.Attestation != nil {
		w = AttestationWatermark{Source: max(lw.Attestation.Source, epoch), Target: max(lw.Attestation.Target, epoch)}
	}
	if lw.Attestation == nil || w != *lw.Attestation {
		next.Attestation, changed = &w, true
	}
	return next, changed
}

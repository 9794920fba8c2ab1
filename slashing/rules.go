package slashing

import (
	"bytes"
	"slices"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// This file holds the EIP-3076 "complete" rules as pure functions over
// values. A store gathers the facts about one key inside the transaction that
// holds that key's write lock, calls CheckBlock/CheckAttestation, and records
// the request in the same transaction when the verdict is Record. Keeping the
// decision here means every store (and the reference model in slashingtest)
// applies exactly the same rules; the stores only differ in how they fetch
// facts and write rows.
//
// The far-future guard (a slot or epoch beyond wall-clock now plus a margin)
// is not a history rule and lives in the signer, which knows the clock; no
// function here refuses a request for being too far ahead.

// Verdict is the outcome of a rule check that did not refuse the request.
type Verdict int

const (
	// Record: the message is new; it must be recorded (durably) before the
	// signature may be released.
	Record Verdict = iota + 1
	// Repeat: the message is identical to a recorded one (same key, same
	// slot/target, same signing root); it may be signed again and nothing new
	// is recorded.
	Repeat
)

func (v Verdict) String() string {
	switch v {
	case Record:
		return "record"
	case Repeat:
		return "repeat"
	default:
		return "invalid"
	}
}

// AttestationWatermark is the attestation low watermark of one key: sources
// below Source and targets below Target are refused. EIP-3076 sets both or
// neither.
type AttestationWatermark struct {
	Source phase0.Epoch
	Target phase0.Epoch
}

// LowWatermarks are one key's low watermarks; a nil field is not set yet.
type LowWatermarks struct {
	Slot        *phase0.Slot
	Attestation *AttestationWatermark
}

// BlockFacts is what the block rule needs to know about one key's history.
type BlockFacts struct {
	// Enabled is the key's enabled flag (an unknown key that is being
	// auto-registered is enabled). The zero value refuses, on purpose.
	Enabled bool
	// LowWatermark is the key's block low watermark, nil if none yet.
	LowWatermark *phase0.Slot
	// High is the database's high-watermark slot, nil if none: slots at or above it are refused.
	High *phase0.Slot
	// Existing is the block recorded at the requested slot, nil if none.
	Existing *SignedBlock
}

// CheckBlock applies the block rules (see the package doc) to b. It returns
// Record or Repeat, or a *Refusal (errors.Is(err, ErrSlashable)).
// The genesis validators root is checked separately (CheckGenesisValidatorsRoot).
func CheckBlock(b Block, f BlockFacts) (Verdict, error) {
	if !f.Enabled {
		return 0, Refuse(ValidatorDisabled, "key %#x is disabled", b.Pubkey[:])
	}
	if f.High != nil && b.Slot >= *f.High {
		return 0, Refuse(AboveHighWatermark, "slot %d is at or above the high watermark slot %d", b.Slot, *f.High)
	}
	if f.LowWatermark != nil && b.Slot < *f.LowWatermark {
		return 0, Refuse(BelowLowWatermark, "slot %d is below the low watermark slot %d", b.Slot, *f.LowWatermark)
	}
	if e := f.Existing; e != nil {
		if e.SigningRoot != nil && *e.SigningRoot == b.SigningRoot {
			return Repeat, nil
		}
		return 0, Refuse(DoubleProposal, "a block at slot %d was already signed with %s", b.Slot, rootString(e.SigningRoot))
	}
	return Record, nil
}

// AttestationFacts is what the attestation rule needs to know about one key's
// history for one request (source s, target t).
type AttestationFacts struct {
	// Enabled is the key's enabled flag; the zero value refuses, on purpose.
	Enabled bool
	// LowWatermark is the key's attestation low watermark, nil if none yet.
	LowWatermark *AttestationWatermark
	// High is the database's high-watermark epoch, nil if none: a source or target at or above
	// it is refused.
	High *phase0.Epoch
	// SameTarget is the vote recorded at target t, nil if none.
	SameTarget *SignedAttestation
	// Surrounding is any recorded vote with Source < s and Target > t, nil if none.
	Surrounding *SignedAttestation
	// Surrounded is any recorded vote with Source > s and Target < t, nil if none.
	Surrounded *SignedAttestation
}

// CheckAttestation applies the attestation rules (see the package doc) to a.
// It returns Record or Repeat, or a *Refusal.
func CheckAttestation(a Attestation, f AttestationFacts) (Verdict, error) {
	if !f.Enabled {
		return 0, Refuse(ValidatorDisabled, "key %#x is disabled", a.Pubkey[:])
	}
	if a.SourceEpoch > a.TargetEpoch {
		return 0, Refuse(SourceAfterTarget, "source epoch %d is after target epoch %d", a.SourceEpoch, a.TargetEpoch)
	}
	if f.High != nil && (a.SourceEpoch >= *f.High || a.TargetEpoch >= *f.High) {
		return 0, Refuse(AboveHighWatermark, "vote %d→%d is at or above the high watermark epoch %d", a.SourceEpoch, a.TargetEpoch, *f.High)
	}
	if lw := f.LowWatermark; lw != nil {
		if a.SourceEpoch < lw.Source {
			return 0, Refuse(BelowLowWatermark, "source epoch %d is below the low watermark source epoch %d", a.SourceEpoch, lw.Source)
		}
		if a.TargetEpoch < lw.Target {
			return 0, Refuse(BelowLowWatermark, "target epoch %d is below the low watermark target epoch %d", a.TargetEpoch, lw.Target)
		}
	}
	if e := f.SameTarget; e != nil {
		if e.SigningRoot != nil && *e.SigningRoot == a.SigningRoot && e.SourceEpoch == a.SourceEpoch {
			return Repeat, nil
		}
		return 0, Refuse(DoubleVote, "a vote %d→%d was already signed with %s", e.SourceEpoch, e.TargetEpoch, rootString(e.SigningRoot))
	}
	if e := f.Surrounding; e != nil {
		return 0, Refuse(SurroundedVote, "vote %d→%d is surrounded by the recorded vote %d→%d", a.SourceEpoch, a.TargetEpoch, e.SourceEpoch, e.TargetEpoch)
	}
	if e := f.Surrounded; e != nil {
		return 0, Refuse(SurroundingVote, "vote %d→%d surrounds the recorded vote %d→%d", a.SourceEpoch, a.TargetEpoch, e.SourceEpoch, e.TargetEpoch)
	}
	return Record, nil
}

// CheckGenesisValidatorsRoot refuses a request whose genesis validators root
// differs from the pinned one. pinned == nil means none is pinned yet: the
// request's root will be pinned by the store, in the same transaction as its
// record.
func CheckGenesisValidatorsRoot(pinned *phase0.Root, requested phase0.Root) error {
	if pinned != nil && *pinned != requested {
		return Refuse(GenesisRootMismatch, "request is for genesis validators root %#x, the database is pinned to %#x", requested[:], pinned[:])
	}
	return nil
}

// Surrounds reports whether vote a surrounds vote b (a.Source < b.Source and
// a.Target > b.Target).
func Surrounds(a, b SignedAttestation) bool {
	return a.SourceEpoch < b.SourceEpoch && a.TargetEpoch > b.TargetEpoch
}

// MergeBlock is the import rule for two blocks of one key at the same slot:
// identical roots are kept; anything else (a different root, or either root
// unknown) becomes an unknown root, the strictest form, which refuses every
// future signature at that slot.
func MergeBlock(recorded, imported SignedBlock) SignedBlock {
	if sameRoot(recorded.SigningRoot, imported.SigningRoot) {
		return recorded
	}
	return SignedBlock{Slot: recorded.Slot}
}

// MergeAttestation is the import rule for two votes of one key at the same
// target (a database keeps one row per target): identical votes are kept;
// otherwise the root becomes unknown (every future vote at that target is a
// double vote) and the larger source is kept, which is the stricter one for
// every future target above it (more new votes surround it).
func MergeAttestation(recorded, imported SignedAttestation) SignedAttestation {
	if recorded.SourceEpoch == imported.SourceEpoch && sameRoot(recorded.SigningRoot, imported.SigningRoot) {
		return recorded
	}
	return SignedAttestation{
		SourceEpoch: max(recorded.SourceEpoch, imported.SourceEpoch),
		TargetEpoch: recorded.TargetEpoch,
	}
}

// ImportWatermarks returns the low watermarks an import of h sets on a key
// that has none yet (each kind separately): the minimum imported slot, and
// the minimum imported source and target epochs (EIP-3076 conditions for
// importers). A kind without messages in h gives nil.
// Existing watermarks are never changed by an import: complete semantics keep
// the full imported history instead, so a later import can fill gaps above
// the watermark without raising it.
func ImportWatermarks(h ValidatorHistory) LowWatermarks {
	var lw LowWatermarks
	for i, b := range h.SignedBlocks {
		if i == 0 || b.Slot < *lw.Slot {
			s := b.Slot
			lw.Slot = &s
		}
	}
	for i, a := range h.SignedAttestations {
		if i == 0 {
			lw.Attestation = &AttestationWatermark{Source: a.SourceEpoch, Target: a.TargetEpoch}
			continue
		}
		lw.Attestation.Source = min(lw.Attestation.Source, a.SourceEpoch)
		lw.Attestation.Target = min(lw.Attestation.Target, a.TargetEpoch)
	}
	return lw
}

// ExportHistory builds the interchange entry of one key from its low
// watermarks and its recorded messages (any order). It is shared by the
// stores so that every export carries the same information:
//
//   - Messages below the low watermark are left out (blocks with slot < LW;
//     votes with source < LW source or target < LW target): an importer takes
//     the minima of the exported messages as its watermark (EIP-3076), and
//     exporting messages below ours would lower it.
//   - When no exported message sits at a watermark (the watermark was set
//     above the recorded minimum, e.g. by pruning or repair), a message with
//     an unknown signing root is added at the watermark, so an importer's
//     watermark is never lower than ours. A synthetic vote is not added when a
//     vote is already exported at the watermark target (the importer's target
//     watermark then matches and its source watermark can only be higher).
//
// The result is sorted by slot and by target epoch.
func ExportHistory(pubkey phase0.BLSPubKey, lw LowWatermarks, blocks []SignedBlock, atts []SignedAttestation) ValidatorHistory {
	h := ValidatorHistory{Pubkey: pubkey, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
	atLW := false
	for _, b := range blocks {
		if lw.Slot != nil && b.Slot < *lw.Slot {
			continue
		}
		if lw.Slot != nil && b.Slot == *lw.Slot {
			atLW = true
		}
		h.SignedBlocks = append(h.SignedBlocks, b)
	}
	if lw.Slot != nil && !atLW {
		h.SignedBlocks = append(h.SignedBlocks, SignedBlock{Slot: *lw.Slot})
	}
	targetAtLW := false
	for _, a := range atts {
		if w := lw.Attestation; w != nil && (a.SourceEpoch < w.Source || a.TargetEpoch < w.Target) {
			continue
		}
		if w := lw.Attestation; w != nil && a.TargetEpoch == w.Target {
			targetAtLW = true
		}
		h.SignedAttestations = append(h.SignedAttestations, a)
	}
	if w := lw.Attestation; w != nil && !targetAtLW {
		h.SignedAttestations = append(h.SignedAttestations, SignedAttestation{SourceEpoch: w.Source, TargetEpoch: w.Target})
	}
	slices.SortFunc(h.SignedBlocks, func(a, b SignedBlock) int { return cmpU64(uint64(a.Slot), uint64(b.Slot)) })
	slices.SortFunc(h.SignedAttestations, func(a, b SignedAttestation) int {
		if c := cmpU64(uint64(a.TargetEpoch), uint64(b.TargetEpoch)); c != 0 {
			return c
		}
		return cmpU64(uint64(a.SourceEpoch), uint64(b.SourceEpoch))
	})
	return h
}

// ComparePubkeys orders public keys bytewise (the export order).
func ComparePubkeys(a, b phase0.BLSPubKey) int { return bytes.Compare(a[:], b[:]) }

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sameRoot(a, b *phase0.Root) bool {
	return a != nil && b != nil && *a == *b
}

func rootString(r *phase0.Root) string {
	if r == nil {
		return "an unknown signing root"
	}
	return "signing root " + "0x" + hexString(r[:])
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i] = digits[c>>4]
		out[2*i+1] = digits[c&0xf]
	}
	return string(out)
}

// Package slashing is Vigil's slashing protection: the EIP-3076 rules, the
// interchange format (v5), and the Store contract that every database backend
// implements and proves with the conformance suite in slashing/slashingtest.
//
// Semantics are EIP-3076 "complete": the full signing history above a per-key
// low watermark is kept and checked.
//
// Blocks (per key): refuse if slot < low-watermark slot; refuse if a block at
// the same slot was recorded with a different (or unknown) signing root; accept
// an identical (slot, signing root) repeat without a new record; otherwise record.
//
// Attestations (per key): refuse if source > target; refuse if source < LW
// source or target < LW target; refuse a different (or unknown) root at the
// same target (double vote); refuse if it surrounds a recorded vote or is
// surrounded by one; accept an identical (target, signing root) repeat;
// otherwise record.
//
// Every database has exactly one genesis validators root, pinned by the first
// signature or import; requests with another root are refused. A key can be
// disabled (keymanager DELETE) and is then refused by every instance sharing
// the database.
//
// Invariants for every Store:
//
//   - Durability: when SignBlock/SignAttestation returns nil the record is
//     durable (committed and synced), so the caller may release the
//     signature; any error means nothing may be released. A request whose
//     context is already done is refused with an error and records nothing.
//   - Atomicity: each check-and-record (read the key's history, decide,
//     record, set a missing low watermark, pin a missing genesis root) is one
//     transaction; an import merges each validator entry in one transaction,
//     or, for an entry larger than one chunk, in several with the key refused
//     from the first to the last (see "Chunked imports" in import_chunked.go).
//   - Per-key serialisation: check-and-records of one key are serialised
//     (across goroutines and, for shared databases, across processes), so of
//     two conflicting requests at most one is accepted, and every request
//     sees every record accepted before it.
//
// The rules themselves are pure functions in rules.go (CheckBlock,
// CheckAttestation, the import merges and watermarks, the export view) so
// that every store decides identically; slashingtest.Memory is the
// reference model built from them. The far-future guard (FarFuture) is the
// signer's: no store refuses a request for being too far ahead.
//
// Interchange: the format and its errors (interchange.go), a streaming
// EIP-3076 v5 Decoder (decoder.go; one entry in chunks: decoder_entry.go;
// member values: decoder_values.go) and Encoder (encoder.go), and Import
// (import.go, import_parallel.go, import_chunked.go) and Export (export.go)
// over any Store. An import records the full imported history
// and sets low watermarks only where a key has none (complete semantics; a
// later import fills gaps above the watermark instead of raising it). An
// export leaves out messages below a key's low watermarks and carries the
// watermarks themselves (see ExportHistory).
package slashing

import (
	"context"
	"errors"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Block is a request to sign a block proposal.
type Block struct {
	Pubkey                phase0.BLSPubKey
	Slot                  phase0.Slot
	SigningRoot           phase0.Root
	GenesisValidatorsRoot phase0.Root
}

// Attestation is a request to sign an attestation.
type Attestation struct {
	Pubkey                phase0.BLSPubKey
	SourceEpoch           phase0.Epoch
	TargetEpoch           phase0.Epoch
	SigningRoot           phase0.Root
	GenesisValidatorsRoot phase0.Root
}

// Reason says why a signature was refused.
type Reason string

// Refusal reasons (stable strings, usable as metric labels).
const (
	DoubleProposal      Reason = "double_proposal"
	DoubleVote          Reason = "double_vote"
	SurroundingVote     Reason = "surrounding_vote"
	SurroundedVote      Reason = "surrounded_vote"
	SourceAfterTarget   Reason = "source_after_target"
	BelowLowWatermark   Reason = "below_low_watermark"
	AboveHighWatermark  Reason = "above_high_watermark"
	GenesisRootMismatch Reason = "genesis_validators_root_mismatch"
	ValidatorDisabled   Reason = "validator_disabled"
	FarFuture           Reason = "far_future"
)

// ErrSlashable is the sentinel every refusal wraps: errors.Is(err, ErrSlashable).
var ErrSlashable = errors.New("refused by slashing protection")

// ErrUnavailable wraps database failures (down, timeout, disk error): the
// outcome is unknown-safe and nothing may be signed.
var ErrUnavailable = errors.New("slashing protection database unavailable")

// ErrFenced: a write carried a leader term that is no longer the database's
// current term (another instance took over and raised it). Nothing was
// written. A store that fences its writes (the shared Postgres store) wraps
// it; the signer answers such a refusal as "not the leader" (503), not as an
// outage.
var ErrFenced = errors.New("fenced: the write's leader term is no longer current")

// ErrNotInitialized: the slashing-protection database does not exist or is
// empty, and the caller did not ask to create one. A database that silently
// starts empty would forget every signature made before (and sign them
// again differently), so creating one is always an explicit decision.
var ErrNotInitialized = errors.New("slashing protection database not initialized")

// Summary counts what a database holds (logged at start so an operator sees
// at once whether the history is there).
type Summary struct {
	Validators, Blocks, Attestations int64
	// Created: this process created the database (it did not exist before).
	Created bool
}

// ErrInterchange wraps every problem with an interchange document.
var ErrInterchange = errors.New("invalid interchange")

// Refusal is a slashing-protection refusal with its reason.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return fmt.Sprintf("%v: %s", ErrSlashable, r.Reason)
	}
	return fmt.Sprintf("%v: %s: %s", ErrSlashable, r.Reason, r.Detail)
}

// Is makes errors.Is(r, ErrSlashable) true.
func (r *Refusal) Is(target error) bool { return target == ErrSlashable }

// Refuse builds a Refusal.
func Refuse(reason Reason, format string, args ...any) error {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// SignedBlock is one block in a validator's history (interchange form).
type SignedBlock struct {
	Slot        phase0.Slot
	SigningRoot *phase0.Root // nil: unknown root (imported without one)
}

// SignedAttestation is one attestation in a validator's history (interchange form).
type SignedAttestation struct {
	SourceEpoch phase0.Epoch
	TargetEpoch phase0.Epoch
	SigningRoot *phase0.Root
}

// ValidatorHistory is one validator's entry of an interchange document.
type ValidatorHistory struct {
	Pubkey             phase0.BLSPubKey
	SignedBlocks       []SignedBlock
	SignedAttestations []SignedAttestation
}

// Store is the slashing-protection database contract.
// Implementations must be safe for concurrent use by many goroutines and, for
// shared databases, by many processes.
type Store interface {
	// SignBlock checks b against the history and records it atomically.
	// nil: durable record exists (new or identical repeat). Refusals wrap ErrSlashable.
	SignBlock(ctx context.Context, b Block) error
	// SignAttestation is SignBlock for attestations.
	SignAttestation(ctx context.Context, a Attestation) error

	// GenesisValidatorsRoot returns the pinned root, ok=false if none yet.
	GenesisValidatorsRoot(ctx context.Context) (root phase0.Root, ok bool, err error)
	// ImportValidator merges one validator's history (one transaction), pinning
	// gvr if the database has none and refusing a different one (ErrInterchange).
	// Every imported message is recorded (conflicting duplicates keep the
	// stricter form: an unknown root wins); where the key has no low watermark
	// yet, the imported minima become it. Watermarks are never lowered.
	ImportValidator(ctx context.Context, gvr phase0.Root, h ValidatorHistory) error
	// ExportValidators calls fn for each validator with history (all when
	// pubkeys is nil), in pubkey order.
	ExportValidators(ctx context.Context, pubkeys []phase0.BLSPubKey, fn func(ValidatorHistory) error) error
	// SetEnabled enables or disables signing for a key (creating its row if needed).
	SetEnabled(ctx context.Context, pubkey phase0.BLSPubKey, enabled bool) error

	// Ping checks the database is reachable (health checks).
	Ping(ctx context.Context) error
	// Close releases the database. Safe to call twice.
	Close() error
}

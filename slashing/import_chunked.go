package slashing

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Chunked imports.
//
// One validator entry of an interchange document can hold millions of
// messages. Imported in one transaction it would hold the database's write
// lock (SQLite: every key's signatures wait) and the decoder would hold the
// whole entry in memory. Import therefore reads an entry in chunks of at
// most ImportOptions.ChunkSize messages (Decoder.NextChunk) and merges each
// chunk in its own transaction (ChunkImporter.ImportChunk); other keys sign
// between the chunks.
//
// The safety argument. While an entry is only partly merged, the key's
// history in the database lacks records of the entry; a signature checked
// against it could be slashable against one of them. So no signature of the
// key may be accepted from the first chunk's commit to the last chunk's
// commit:
//
//  1. The first chunk's transaction (of an entry of more than one chunk)
//     writes an import marker for the key (the import's random id, and the
//     key's enabled flag as it was) and sets the key disabled, under the
//     key's per-key serialisation. Every signature serialised after that
//     commit reads "disabled" and is refused (reason validator_disabled);
//     every signature before it was checked without any of the entry, as if
//     the import had come later.
//  2. Later chunks merge only if the marker still carries their import id
//     (ErrImportConflict otherwise, nothing written), so the key is disabled
//     during each of them.
//  3. The last chunk's transaction merges its messages, sets the low
//     watermarks from the minima of the WHOLE entry (passed with it) where
//     the key has none, deletes the marker and restores the enabled flag
//     recorded in it. Signatures serialised after that commit see the whole
//     entry, exactly as after a one-transaction ImportValidator: records and
//     watermarks are the same (merges are commutative and idempotent; the
//     watermarks are set in one place from the same minima).
//  4. SetEnabled on a key with a marker updates the flag recorded in the
//     marker and leaves the key disabled, so a keymanager DELETE during an
//     import stays in force after it, and an enable cannot open the window.
//  5. A crash (or an error) between chunks leaves the marker: the key stays
//     refused (fail-safe) until an import of its entry is run again and
//     completes. Every chunk records when it was committed in the marker.
//     A new import whose first chunk finds another import's marker touched
//     less than the store's import idle timeout ago (DefaultImportIdleTimeout;
//     the store's clock, the database's for Postgres) is refused with
//     ErrImportInProgress and writes nothing: the other import is running,
//     and letting the newcomer finish would restore the key's flag while the
//     running import's entry is only partly merged. An older marker is an
//     interrupted import's: the new import takes it over (its id replaces the
//     old one, the recorded flag is kept), so a re-run heals an interrupted
//     import; should the old import still be alive after all (stalled longer
//     than the timeout), it fails at its next chunk with ErrImportConflict
//     and the key is left to the newer one. Imports only add history, so
//     whatever an interrupted import merged can only add refusals.
//
// Entries of one chunk (the common case) are merged in one transaction with
// no marker, as by ImportValidator (which also clears a marker left by an
// interrupted import of the key and restores the flag it recorded, and is
// refused like a first chunk while another import of the key is running).

// ImportChunk is one piece of one validator entry (see Chunked imports).
type ImportChunk struct {
	Pubkey phase0.BLSPubKey
	// ImportID identifies one import of the entry; all its chunks carry it.
	ImportID uint64
	// First and Last mark the entry's first and last chunk (both: the
	// entry is one chunk).
	First, Last        bool
	SignedBlocks       []SignedBlock
	SignedAttestations []SignedAttestation
	// Watermarks, with Last: ImportWatermarks of the whole entry (the minima
	// of all its chunks), set where the key has none.
	Watermarks LowWatermarks
}

// ChunkImporter is implemented by stores that merge an entry chunk by chunk
// (every store of this project does; Import falls back to ImportValidator of
// the assembled entry for a store that does not).
type ChunkImporter interface {
	// ImportChunk merges c in one transaction, with the marker semantics of
	// Chunked imports; the genesis root as for ImportValidator.
	ImportChunk(ctx context.Context, gvr phase0.Root, c ImportChunk) error
}

// ErrImportConflict: a later chunk of an import found that another import of
// the same key took the key over (or completed) after this one began. Nothing
// of the chunk was written; the key is left to the other import.
var ErrImportConflict = errors.New("another import of this validator started after this one (this one stopped; import again if it was the only one)")

// ErrImportInProgress: the first chunk of an import found the key's marker held by another
// import that committed a chunk less than the import idle timeout ago. Nothing was written; the
// key stays refused until the running import ends. It matches ErrUnavailable (try again later:
// a keymanager import answers 503).
var ErrImportInProgress = fmt.Errorf("%w: another import of this validator is in progress (nothing of this entry was imported; import it again once that import has ended)", ErrUnavailable)

// DefaultImportIdleTimeout is how long after its last chunk an import still counts as running
// (a chunk commits in well under a second; the timeout only tells a live import from a crashed one).
const DefaultImportIdleTimeout = time.Minute

// ImportMarker is a key refused because of a chunked import (Store.ImportMarkers): one in
// progress, or one interrupted (Idle beyond the import idle timeout) that needs running again.
type ImportMarker struct {
	Pubkey      phase0.BLSPubKey
	Idle        time.Duration // since the import's last chunk
	Interrupted bool          // Idle is beyond the import idle timeout
}

// NewImportID returns a random non-zero import id.
func NewImportID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]) &^ (1 << 63); id != 0 {
			return id // < 2^63: fits a signed 64-bit column
		}
	}
}

// AddWatermarks folds the minima of blocks and atts into lw (ImportWatermarks
// over several chunks).
func AddWatermarks(lw *LowWatermarks, blocks []SignedBlock, atts []SignedAttestation) {
	for _, b := range blocks {
		if lw.Slot == nil || b.Slot < *lw.Slot {
			s := b.Slot
			lw.Slot = &s
		}
	}
	for _, a := range atts {
		if lw.Attestation == nil {
			lw.Attestation = &AttestationWatermark{Source: a.SourceEpoch, Target: a.TargetEpoch}
			continue
		}
		lw.Attestation.Source = min(lw.Attestation.Source, a.SourceEpoch)
		lw.Attestation.Target = min(lw.Attestation.Target, a.TargetEpoch)
	}
}

// ImportHook, when set on ImportOptions, is called after each chunk of a
// multi-chunk entry is committed and before the next is read (tests pause an
// import there). It runs on the importing goroutine.
type ImportHook func(ctx context.Context, pubkey phase0.BLSPubKey, chunk int, last bool)

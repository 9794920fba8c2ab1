package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

var _ slashing.ChunkImporter = (*Store)(nil)

const (
	// verdictImportConflict: a later chunk whose import no longer owns the key's marker.
	verdictImportConflict = 11
	// verdictImportRunning: a first chunk while another import of the key is running (x1 = ms
	// since its last chunk).
	verdictImportRunning = 12
)

// ImportChunk merges one chunk of a validator entry in one transaction (one
// call of vigil_import_chunk, functions.sql): slashing.MergeBlock /
// MergeAttestation semantics written in SQL, the import marker of package
// slashing's "Chunked imports" written, checked or cleared under the key's
// two advisory locks (so serialised with its signatures), and with the last
// chunk the entry's low watermarks set where the key has none and the
// genesis root pinned if none. It is a write at the store's term.
func (s *Store) ImportChunk(ctx context.Context, gvr phase0.Root, c slashing.ImportChunk) error {
	if err := s.enter(ctx, "import"); err != nil {
		return err
	}
	slots := make([]int64, len(c.SignedBlocks))
	blockRoots := make([][]byte, len(c.SignedBlocks))
	for i, b := range c.SignedBlocks {
		slots[i] = column.Enc(uint64(b.Slot))
		blockRoots[i] = column.Root(b.SigningRoot)
	}
	sources := make([]int64, len(c.SignedAttestations))
	targets := make([]int64, len(c.SignedAttestations))
	attRoots := make([][]byte, len(c.SignedAttestations))
	for i, a := range c.SignedAttestations {
		sources[i] = column.Enc(uint64(a.SourceEpoch))
		targets[i] = column.Enc(uint64(a.TargetEpoch))
		attRoots[i] = column.Root(a.SigningRoot)
	}
	var lwSlot, lwSource, lwTarget *int64
	if c.Last {
		if w := c.Watermarks.Slot; w != nil {
			v := column.Enc(uint64(*w))
			lwSlot = &v
		}
		if w := c.Watermarks.Attestation; w != nil {
			src, tgt := column.Enc(uint64(w.Source)), column.Enc(uint64(w.Target))
			lwSource, lwTarget = &src, &tgt
		}
	}
	term := s.term.Load()
	var code int16
	var current *int64
	var pinned []byte
	err := s.pool.QueryRow(ctx, `SELECT verdict, x1, xroot FROM vigil_import_chunk($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		term, gvr[:], c.Pubkey[:], int64(c.ImportID), c.First, c.Last, slots, blockRoots, sources, targets, attRoots, lwSlot, lwSource, lwTarget,
		s.ImportIdleTimeout().Milliseconds()).
		Scan(&code, &current, &pinned)
	if err != nil && writeFailure(err) {
		s.writeOK.Store(&writeState{err: err})
	}
	if err != nil {
		return unavailable("import", err)
	}
	switch code {
	case verdictRecord:
		s.wrote()
		s.noteGVR(gvr)
		return nil
	case verdictFenced:
		s.fencedN.Add(1)
		return fenced("import", term, deref(current))
	case verdictGVR:
		return fmt.Errorf("%w: genesis validators root %#x does not match the database's %#x", slashing.ErrInterchange, gvr[:], pinned)
	case verdictImportConflict:
		return fmt.Errorf("%w (pubkey %#x)", slashing.ErrImportConflict, c.Pubkey[:])
	case verdictImportRunning:
		return fmt.Errorf("%w (pubkey %#x, its last chunk %s ago)", slashing.ErrImportInProgress, c.Pubkey[:], (time.Duration(deref(current)) * time.Millisecond).Round(time.Millisecond))
	}
	return fmt.Errorf("%w: postgres: import: unknown verdict %d", slashing.ErrUnavailable, code)
}

// SetImportIdleTimeout sets how long after its last chunk an import still counts as running
// (slashing.DefaultImportIdleTimeout unless Options.ImportIdleTimeout says otherwise).
func (s *Store) SetImportIdleTimeout(d time.Duration) { s.importIdle.Store(int64(d)) }

// ImportIdleTimeout is the current import idle timeout.
func (s *Store) ImportIdleTimeout() time.Duration { return time.Duration(s.importIdle.Load()) }

// ImportMarkers lists the keys refused because of a chunked import, in pubkey order (idle time
// on the database clock).
func (s *Store) ImportMarkers(ctx context.Context) ([]slashing.ImportMarker, error) {
	if err := s.enter(ctx, "listing import markers"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT v.pubkey, CASE WHEN ip.touched_at = '-infinity' THEN 9223372036854775807
			ELSE (extract(epoch FROM now() - ip.touched_at) * 1000)::bigint END
		FROM import_progress ip JOIN validators v ON v.id = ip.validator_id ORDER BY v.pubkey`)
	if err != nil {
		return nil, unavailable("listing import markers", err)
	}
	defer rows.Close()
	limit := s.ImportIdleTimeout()
	var out []slashing.ImportMarker
	for rows.Next() {
		var pk []byte
		var idleMS int64
		if err := rows.Scan(&pk, &idleMS); err != nil {
			return nil, unavailable("listing import markers", err)
		}
		m := slashing.ImportMarker{Pubkey: phase0.BLSPubKey(pk), Idle: time.Duration(min(idleMS, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond}
		m.Interrupted = m.Idle >= limit
		out = append(out, m)
	}
	return out, unavailable("listing import markers", rows.Err())
}

// Importing reports whether pubkey has an import marker (a chunked import in
// progress or interrupted): its signatures are refused until the marker goes.
func (s *Store) Importing(ctx context.Context, pubkey phase0.BLSPubKey) (bool, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM import_progress ip JOIN validators v ON v.id = ip.validator_id WHERE v.pubkey = $1`, pubkey[:]).Scan(&n)
	if err != nil {
		return false, unavailable("reading import markers", err)
	}
	return n > 0, nil
}

// ImportValidator merges one validator's history in one transaction: a
// one-chunk ImportChunk (import.go).
func (s *Store) ImportValidator(ctx context.Context, gvr phase0.Root, h slashing.ValidatorHistory) error {
	return s.ImportChunk(ctx, gvr, slashing.ImportChunk{Pubkey: h.Pubkey, First: true, Last: true,
		SignedBlocks: h.SignedBlocks, SignedAttestations: h.SignedAttestations, Watermarks: slashing.ImportWatermarks(h)})
}

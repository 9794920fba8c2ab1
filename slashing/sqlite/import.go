package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

var _ slashing.ChunkImporter = (*Store)(nil)

// Import markers (table import_progress, migration 0003): see package
// slashing, "Chunked imports". Every statement below runs in an exclusive
// transaction of the single writer, so it is serialised with every sign
// batch: a signature is checked either before a chunk's commit or after it.
const (
	qGetImport    = `SELECT was_enabled, import_id, touched_at FROM import_progress WHERE validator_id = ?`
	qStartImport  = `INSERT INTO import_progress (validator_id, was_enabled, import_id, touched_at) SELECT id, enabled, ?2, ?3 FROM validators WHERE id = ?1`
	qTakeImport   = `UPDATE import_progress SET import_id = ?2, touched_at = ?3 WHERE validator_id = ?1`
	qTouchImport  = `UPDATE import_progress SET touched_at = ?2 WHERE validator_id = ?1`
	qEndImport    = `DELETE FROM import_progress WHERE validator_id = ?`
	qSetEnabledID = `UPDATE validators SET enabled = ?2 WHERE id = ?1`
	qImportFlag   = `UPDATE import_progress SET was_enabled = ?2
		WHERE validator_id = (SELECT id FROM validators WHERE pubkey = ?1)`
)

// ImportChunk merges one chunk of a validator entry in one transaction
// (slashing.ChunkImporter): blocks and votes upserted with
// slashing.MergeBlock/MergeAttestation semantics (written in SQL), the
// import marker written, checked or cleared, and with the last chunk the
// entry's low watermarks set where the key has none.
func (s *Store) ImportChunk(ctx context.Context, gvr phase0.Root, c slashing.ImportChunk) error {
	var pinned bool
	err := s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		var stored []byte
		switch err := tx.StmtContext(ctx, s.st.getGVR).QueryRowContext(ctx).Scan(&stored); {
		case err == sql.ErrNoRows:
			if _, err := tx.StmtContext(ctx, s.st.pinGVR).ExecContext(ctx, gvr[:]); err != nil {
				return err
			}
			pinned = true
		case err != nil:
			return err
		case phase0.Root(stored) != gvr:
			return fmt.Errorf("%w: genesis validators root %#x does not match the database's %#x", slashing.ErrInterchange, gvr[:], stored)
		}
		id, _, err := s.validator(ctx, tx, c.Pubkey)
		if err != nil {
			return err
		}
		var wasEnabled bool
		var owner, touched int64
		marked := true
		switch err := tx.QueryRowContext(ctx, qGetImport, id).Scan(&wasEnabled, &owner, &touched); {
		case err == sql.ErrNoRows:
			marked = false
		case err != nil:
			return err
		}
		now := s.now().UnixMilli()
		idle := time.Duration(now-touched) * time.Millisecond
		switch {
		case c.First && marked && owner != int64(c.ImportID) && idle < s.ImportIdleTimeout():
			return fmt.Errorf("%w (pubkey %#x, its last chunk %s ago)", slashing.ErrImportInProgress, c.Pubkey[:], idle.Round(time.Millisecond))
		case c.First && !c.Last && !marked:
			if _, err := tx.ExecContext(ctx, qStartImport, id, int64(c.ImportID), now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, qSetEnabledID, id, false); err != nil {
				return err
			}
		case c.First && !c.Last: // take over an interrupted import's marker
			if _, err := tx.ExecContext(ctx, qTakeImport, id, int64(c.ImportID), now); err != nil {
				return err
			}
		case !c.First && (!marked || owner != int64(c.ImportID)):
			return fmt.Errorf("%w (pubkey %#x)", slashing.ErrImportConflict, c.Pubkey[:])
		case !c.First && !c.Last:
			if _, err := tx.ExecContext(ctx, qTouchImport, id, now); err != nil {
				return err
			}
		}
		ib := tx.StmtContext(ctx, s.st.importBlock)
		for _, b := range c.SignedBlocks {
			if _, err := ib.ExecContext(ctx, id, column.Enc(uint64(b.Slot)), rootArg(b.SigningRoot)); err != nil {
				return err
			}
		}
		ia := tx.StmtContext(ctx, s.st.importAttestation)
		for _, a := range c.SignedAttestations {
			if _, err := ia.ExecContext(ctx, id, column.Enc(uint64(a.TargetEpoch)), column.Enc(uint64(a.SourceEpoch)), rootArg(a.SigningRoot)); err != nil {
				return err
			}
		}
		if !c.Last {
			return nil
		}
		lw := c.Watermarks
		if lw.Slot != nil {
			if _, err := tx.StmtContext(ctx, s.st.setBlockLW).ExecContext(ctx, id, column.Enc(uint64(*lw.Slot))); err != nil {
				return err
			}
		}
		if w := lw.Attestation; w != nil {
			if _, err := tx.StmtContext(ctx, s.st.setAttLW).ExecContext(ctx, id, column.Enc(uint64(w.Source)), column.Enc(uint64(w.Target))); err != nil {
				return err
			}
		}
		if marked {
			if _, err := tx.ExecContext(ctx, qEndImport, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, qSetEnabledID, id, wasEnabled); err != nil {
				return err
			}
		}
		return nil
	}})
	if err == nil && pinned {
		r := gvr
		s.gvr.CompareAndSwap(nil, &r)
	}
	return err
}

// setEnabled sets the key's flag, or, while the key has an import marker,
// the flag the import restores at its end (the key stays disabled until then).
func (s *Store) setEnabled(ctx context.Context, tx *sql.Tx, pubkey phase0.BLSPubKey, enabled bool) error {
	res, err := tx.ExecContext(ctx, qImportFlag, pubkey[:], enabled)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = tx.StmtContext(ctx, s.st.setEnabled).ExecContext(ctx, pubkey[:], enabled)
	return err
}

// SetImportIdleTimeout sets how long after its last chunk an import still counts as running
// (slashing.DefaultImportIdleTimeout unless Options.ImportIdleTimeout says otherwise).
func (s *Store) SetImportIdleTimeout(d time.Duration) { s.importIdle.Store(int64(d)) }

// ImportIdleTimeout is the current import idle timeout.
func (s *Store) ImportIdleTimeout() time.Duration { return time.Duration(s.importIdle.Load()) }

// ImportMarkers lists the keys refused because of a chunked import, in pubkey order.
func (s *Store) ImportMarkers(ctx context.Context) ([]slashing.ImportMarker, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT v.pubkey, ip.touched_at FROM import_progress ip JOIN validators v ON v.id = ip.validator_id ORDER BY v.pubkey`)
	if err != nil {
		return nil, unavailable("listing import markers", err)
	}
	defer rows.Close()
	now, limit := s.now(), s.ImportIdleTimeout()
	var out []slashing.ImportMarker
	for rows.Next() {
		var pk []byte
		var touched int64
		if err := rows.Scan(&pk, &touched); err != nil {
			return nil, unavailable("listing import markers", err)
		}
		m := slashing.ImportMarker{Pubkey: phase0.BLSPubKey(pk), Idle: now.Sub(time.UnixMilli(touched))}
		m.Interrupted = m.Idle >= limit
		out = append(out, m)
	}
	return out, unavailable("listing import markers", rows.Err())
}

// Importing reports whether pubkey has an import marker (a chunked import in
// progress or interrupted): its signatures are refused until the marker goes.
func (s *Store) Importing(ctx context.Context, pubkey phase0.BLSPubKey) (bool, error) {
	var n int
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM import_progress ip JOIN validators v ON v.id = ip.validator_id WHERE v.pubkey = ?`, pubkey[:]).Scan(&n)
	if err != nil {
		return false, unavailable("reading import markers", err)
	}
	return n > 0, nil
}

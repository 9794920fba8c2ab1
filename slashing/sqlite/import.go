package sqlite

import (
	"context"
	"database/sql"
	"fmt"

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
	qGetImport    = `SELECT was_enabled, import_id FROM import_progress WHERE validator_id = ?`
	qStartImport  = `INSERT INTO import_progress (validator_id, was_enabled, import_id) SELECT id, enabled, ?2 FROM validators WHERE id = ?1`
	qTakeImport   = `UPDATE import_progress SET import_id = ?2 WHERE validator_id = ?1`
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
		var owner int64
		marked := true
		switch err := tx.QueryRowContext(ctx, qGetImport, id).Scan(&wasEnabled, &owner); {
		case err == sql.ErrNoRows:
			marked = false
		case err != nil:
			return err
		}
		switch {
		case c.First && !c.Last && !marked:
			if _, err := tx.ExecContext(ctx, qStartImport, id, int64(c.ImportID)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, qSetEnabledID, id, false); err != nil {
				return err
			}
		case c.First && !c.Last: // take over an interrupted (or older) import's marker
			if _, err := tx.ExecContext(ctx, qTakeImport, id, int64(c.ImportID)); err != nil {
				return err
			}
		case !c.First && (!marked || owner != int64(c.ImportID)):
			return fmt.Errorf("%w (pubkey %#x)", slashing.ErrImportConflict, c.Pubkey[:])
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

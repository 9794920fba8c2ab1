package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// Statements of the write path, prepared once on the writer's connection.
// Slot and epoch parameters are column.Enc()-mapped (see the schema).
const (
	qGetGVR = `SELECT genesis_validators_root FROM metadata WHERE id = 1`
	qPinGVR = `INSERT INTO metadata (id, genesis_validators_root) VALUES (1, ?)`

	qGetValidator = `SELECT v.id, v.enabled, lw.slot, lw.source_epoch, lw.target_epoch
		FROM validators v LEFT JOIN low_watermarks lw ON lw.validator_id = v.id
		WHERE v.pubkey = ?`
	qAddValidator = `INSERT INTO validators (pubkey, enabled) VALUES (?, 1)`
	qSetEnabled   = `INSERT INTO validators (pubkey, enabled) VALUES (?, ?)
		ON CONFLICT (pubkey) DO UPDATE SET enabled = excluded.enabled`

	qBlockAt     = `SELECT signing_root FROM signed_blocks WHERE validator_id = ? AND slot = ?`
	qInsertBlock = `INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?, ?, ?)`

	// The facts of an attestation check in one statement (one call instead of three on the
	// signing path), one row per fact found, tagged by its first column:
	//   0  the vote recorded at the request's target (primary key: at most one);
	//   1  a recorded vote that surrounds the request (source < s, target > t): scan by
	//      target (primary key); the unary + keeps the source index out;
	//   2  a recorded vote the request surrounds (source > s, target < t): scan by source,
	//      which stays short in forward operation.
	// ?1 validator id, ?2 source, ?3 target.
	qAttFacts = `SELECT 0, source_epoch, target_epoch, signing_root FROM signed_attestations
			WHERE validator_id = ?1 AND target_epoch = ?3
		UNION ALL SELECT * FROM (SELECT 1, source_epoch, target_epoch, NULL FROM signed_attestations
			WHERE validator_id = ?1 AND target_epoch > ?3 AND +source_epoch < ?2 LIMIT 1)
		UNION ALL SELECT * FROM (SELECT 2, source_epoch, target_epoch, NULL
			FROM signed_attestations INDEXED BY signed_attestations_by_source
			WHERE validator_id = ?1 AND source_epoch > ?2 AND +target_epoch < ?3 LIMIT 1)`
	qInsertAtt = `INSERT INTO signed_attestations (validator_id, target_epoch, source_epoch, signing_root)
		VALUES (?, ?, ?, ?)`

	// Low watermarks: set where unset, never changed otherwise.
	qSetBlockLW = `INSERT INTO low_watermarks (validator_id, slot) VALUES (?1, ?2)
		ON CONFLICT (validator_id) DO UPDATE SET slot = coalesce(slot, excluded.slot)`
	qSetAttLW = `INSERT INTO low_watermarks (validator_id, source_epoch, target_epoch) VALUES (?1, ?2, ?3)
		ON CONFLICT (validator_id) DO UPDATE SET
			source_epoch = CASE WHEN source_epoch IS NULL THEN excluded.source_epoch ELSE source_epoch END,
			target_epoch = CASE WHEN source_epoch IS NULL THEN excluded.target_epoch ELSE target_epoch END`

	// Import merges (slashing.MergeBlock / slashing.MergeAttestation): an
	// identical message is kept, anything else becomes an unknown root; for
	// votes the larger source is kept. In SET, column names are the old row.
	qImportBlock = `INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?, ?, ?)
		ON CONFLICT (validator_id, slot) DO UPDATE SET
			signing_root = CASE WHEN signing_root = excluded.signing_root THEN signing_root ELSE NULL END`
	qImportAtt = `INSERT INTO signed_attestations (validator_id, target_epoch, source_epoch, signing_root)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (validator_id, target_epoch) DO UPDATE SET
			source_epoch = max(source_epoch, excluded.source_epoch),
			signing_root = CASE WHEN source_epoch = excluded.source_epoch AND signing_root = excluded.signing_root
				THEN signing_root ELSE NULL END`
)

type statements struct {
	getGVR, pinGVR                         *sql.Stmt
	getValidator, addValidator, setEnabled *sql.Stmt
	blockAt, insertBlock                   *sql.Stmt
	attFacts, insertAtt                    *sql.Stmt
	setBlockLW, setAttLW                   *sql.Stmt
	importBlock, importAttestation         *sql.Stmt
	all                                    []*sql.Stmt
}

func (st *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.getGVR, qGetGVR}, {&st.pinGVR, qPinGVR},
		{&st.getValidator, qGetValidator}, {&st.addValidator, qAddValidator}, {&st.setEnabled, qSetEnabled},
		{&st.blockAt, qBlockAt}, {&st.insertBlock, qInsertBlock},
		{&st.attFacts, qAttFacts}, {&st.insertAtt, qInsertAtt},
		{&st.setBlockLW, qSetBlockLW}, {&st.setAttLW, qSetAttLW},
		{&st.importBlock, qImportBlock}, {&st.importAttestation, qImportAtt},
	} {
		s, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			st.close()
			return err
		}
		*p.dst = s
		st.all = append(st.all, s)
	}
	return nil
}

func (st *statements) close() {
	var errs []error
	for _, s := range st.all {
		errs = append(errs, s.Close())
	}
	st.all = nil
	_ = errors.Join(errs...)
}

package postgres

import (
	"context"
	"slices"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

// exportChunk is how many keys' records one export query fetches.
const exportChunk = 256

// ExportValidators calls fn for each validator with history (or with a low
// watermark), in pubkey order, from one consistent snapshot (a REPEATABLE
// READ, READ ONLY transaction). Entries follow slashing.ExportHistory.
func (s *Store) ExportValidators(ctx context.Context, pubkeys []phase0.BLSPubKey, fn func(slashing.ValidatorHistory) error) error {
	if err := s.enter(ctx, "export"); err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return unavailable("export", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	type key struct {
		id     int64
		pubkey phase0.BLSPubKey
		lw     slashing.LowWatermarks
	}
	var rows pgx.Rows
	const q = "SELECT id, pubkey, lw_slot, lw_source, lw_target FROM validators"
	if pubkeys == nil {
		rows, err = tx.Query(ctx, q+" ORDER BY pubkey")
	} else {
		sorted := slices.Clone(pubkeys)
		slices.SortFunc(sorted, slashing.ComparePubkeys)
		sorted = slices.Compact(sorted)
		pks := make([][]byte, len(sorted))
		for i := range sorted {
			pks[i] = sorted[i][:]
		}
		rows, err = tx.Query(ctx, q+" WHERE pubkey = ANY($1) ORDER BY pubkey", pks)
	}
	if err != nil {
		return unavailable("export", err)
	}
	var keys []key
	for rows.Next() {
		var k key
		var pk []byte
		var slot, src, tgt *int64
		if err := rows.Scan(&k.id, &pk, &slot, &src, &tgt); err != nil {
			rows.Close()
			return unavailable("export", err)
		}
		copy(k.pubkey[:], pk)
		k.lw = column.Watermarks(slot, src, tgt)
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return unavailable("export", err)
	}
	// Defensive: the export order is bytewise pubkey order whatever the
	// database's collation of bytea.
	slices.SortFunc(keys, func(a, b key) int { return slashing.ComparePubkeys(a.pubkey, b.pubkey) })

	for len(keys) > 0 {
		chunk := keys[:min(exportChunk, len(keys))]
		keys = keys[len(chunk):]
		ids := make([]int64, len(chunk))
		for i, k := range chunk {
			ids[i] = k.id
		}
		blocks := map[int64][]slashing.SignedBlock{}
		rows, err := tx.Query(ctx, "SELECT validator_id, slot, signing_root FROM signed_blocks WHERE validator_id = ANY($1)", ids)
		if err != nil {
			return unavailable("export", err)
		}
		for rows.Next() {
			var id, slot int64
			var root []byte
			if err := rows.Scan(&id, &slot, &root); err != nil {
				rows.Close()
				return unavailable("export", err)
			}
			blocks[id] = append(blocks[id], slashing.SignedBlock{Slot: phase0.Slot(column.Dec(slot)), SigningRoot: column.RootFrom(root)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("export", err)
		}
		atts := map[int64][]slashing.SignedAttestation{}
		rows, err = tx.Query(ctx, "SELECT validator_id, source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ANY($1)", ids)
		if err != nil {
			return unavailable("export", err)
		}
		for rows.Next() {
			var id, src, tgt int64
			var root []byte
			if err := rows.Scan(&id, &src, &tgt, &root); err != nil {
				rows.Close()
				return unavailable("export", err)
			}
			atts[id] = append(atts[id], slashing.SignedAttestation{SourceEpoch: phase0.Epoch(column.Dec(src)), TargetEpoch: phase0.Epoch(column.Dec(tgt)), SigningRoot: column.RootFrom(root)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("export", err)
		}
		for _, k := range chunk {
			b, a := blocks[k.id], atts[k.id]
			if len(b) == 0 && len(a) == 0 && k.lw.Slot == nil && k.lw.Attestation == nil {
				continue
			}
			if err := fn(slashing.ExportHistory(k.pubkey, k.lw, b, a)); err != nil {
				return err
			}
		}
	}
	return nil
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

var _ slashing.Maintainer = (*Store)(nil)

// pruneChunk is how many keys one prune transaction handles: large enough that the fsync per
// commit does not dominate, small enough that signing waits at most a few milliseconds.
const pruneChunk = 64

// Prune implements slashing.Maintainer. Keys are pruned in transactions of up to pruneChunk
// keys, run by the writer goroutine between sign batches.
func (s *Store) Prune(ctx context.Context, opts slashing.PruneOptions) (slashing.PruneResult, error) {
	var res slashing.PruneResult
	if err := opts.Validate(); err != nil {
		return res, err
	}
	ids, err := s.validatorIDs(ctx)
	if err != nil {
		return res, err
	}
	for len(ids) > 0 {
		chunk := ids[:min(pruneChunk, len(ids))]
		ids = ids[len(chunk):]
		var part slashing.PruneResult
		err := s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
			part = slashing.PruneResult{}
			for _, id := range chunk {
				if err := pruneOne(ctx, tx, id, opts, &part); err != nil {
					return err
				}
			}
			return nil
		}})
		if err != nil {
			return res, err
		}
		res.Validators += part.Validators
		res.Blocks += part.Blocks
		res.Attestations += part.Attestations
	}
	return res, nil
}

func (s *Store) validatorIDs(ctx context.Context) ([]int64, error) {
	if s.closed.Load() {
		return nil, unavailable("listing validators", errClosed)
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT id FROM validators ORDER BY id")
	if err != nil {
		return nil, unavailable("listing validators", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, unavailable("listing validators", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("listing validators", err)
	}
	return ids, nil
}

func pruneOne(ctx context.Context, tx *sql.Tx, id int64, opts slashing.PruneOptions, res *slashing.PruneResult) error {
	lw, err := lowWatermarksByID(ctx, tx, id)
	if err != nil {
		return err
	}
	var maxSlot, maxTarget sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT max(slot) FROM signed_blocks WHERE validator_id = ?1),
		(SELECT max(target_epoch) FROM signed_attestations WHERE validator_id = ?1)`, id).Scan(&maxSlot, &maxTarget); err != nil {
		return err
	}
	var newestSlot *phase0.Slot
	if maxSlot.Valid {
		v := phase0.Slot(column.Dec(maxSlot.Int64))
		newestSlot = &v
	}
	var newestTarget *phase0.Epoch
	if maxTarget.Valid {
		v := phase0.Epoch(column.Dec(maxTarget.Int64))
		newestTarget = &v
	}
	slotCut, targetCut := slashing.PruneCuts(newestSlot, newestTarget, opts)
	var queryErr error
	next, changed := slashing.PrunedWatermarks(lw, slotCut, targetCut, func(target phase0.Epoch) *phase0.Epoch {
		var src sql.NullInt64
		queryErr = tx.QueryRowContext(ctx, `SELECT max(source_epoch) FROM signed_attestations
			WHERE validator_id = ? AND target_epoch < ?`, id, column.Enc(uint64(target))).Scan(&src)
		if !src.Valid {
			return nil
		}
		v := phase0.Epoch(column.Dec(src.Int64))
		return &v
	})
	if queryErr != nil {
		return queryErr
	}
	if !changed {
		return nil
	}
	if err := putLowWatermarks(ctx, tx, id, next); err != nil {
		return err
	}
	res.Validators++
	if next.Slot != nil {
		r, err := tx.ExecContext(ctx, "DELETE FROM signed_blocks WHERE validator_id = ? AND slot < ?", id, column.Enc(uint64(*next.Slot)))
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		res.Blocks += int(n)
	}
	if w := next.Attestation; w != nil {
		r, err := tx.ExecContext(ctx, "DELETE FROM signed_attestations WHERE validator_id = ? AND target_epoch < ?", id, column.Enc(uint64(w.Target)))
		if err != nil {
			return err
		}
		n, _ := r.RowsAffected()
		res.Attestations += int(n)
	}
	return nil
}

func lowWatermarksByID(ctx context.Context, tx *sql.Tx, id int64) (slashing.LowWatermarks, error) {
	var slot, src, tgt sql.NullInt64
	err := tx.QueryRowContext(ctx, "SELECT slot, source_epoch, target_epoch FROM low_watermarks WHERE validator_id = ?", id).Scan(&slot, &src, &tgt)
	if err == sql.ErrNoRows {
		return slashing.LowWatermarks{}, nil
	}
	if err != nil {
		return slashing.LowWatermarks{}, err
	}
	return watermarks(slot, src, tgt), nil
}

// putLowWatermarks writes a key's watermarks as given (callers only ever pass raised values).
func putLowWatermarks(ctx context.Context, tx *sql.Tx, id int64, lw slashing.LowWatermarks) error {
	var slot, src, tgt any
	if lw.Slot != nil {
		slot = column.Enc(uint64(*lw.Slot))
	}
	if w := lw.Attestation; w != nil {
		src, tgt = column.Enc(uint64(w.Source)), column.Enc(uint64(w.Target))
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO low_watermarks (validator_id, slot, source_epoch, target_epoch)
		VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (validator_id) DO UPDATE SET
			slot = excluded.slot, source_epoch = excluded.source_epoch, target_epoch = excluded.target_epoch`,
		id, slot, src, tgt)
	return err
}

// RaiseLowWatermarks implements slashing.Maintainer, in one transaction.
func (s *Store) RaiseLowWatermarks(ctx context.Context, pubkeys []phase0.BLSPubKey, slot phase0.Slot, epoch phase0.Epoch) (int, error) {
	var n int
	err := s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		n = 0
		var ids []int64
		if pubkeys == nil {
			rows, err := tx.QueryContext(ctx, "SELECT id FROM validators ORDER BY id")
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for _, pk := range pubkeys {
			id, _, err := s.validator(ctx, tx, pk) // registers an unknown key
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			lw, err := lowWatermarksByID(ctx, tx, id)
			if err != nil {
				return err
			}
			if next, changed := slashing.RaisedWatermarks(lw, slot, epoch); changed {
				if err := putLowWatermarks(ctx, tx, id, next); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	}})
	return n, err
}

// SetHighWatermark implements slashing.Maintainer.
func (s *Store) SetHighWatermark(ctx context.Context, hw *slashing.HighWatermark) error {
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		if hw == nil {
			_, err := tx.ExecContext(ctx, "DELETE FROM high_watermark")
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO high_watermark (id, slot, epoch) VALUES (1, ?1, ?2)
			ON CONFLICT (id) DO UPDATE SET slot = excluded.slot, epoch = excluded.epoch`,
			column.Enc(uint64(hw.Slot)), column.Enc(uint64(hw.Epoch)))
		return err
	}})
}

// HighWatermark implements slashing.Maintainer.
func (s *Store) HighWatermark(ctx context.Context) (*slashing.HighWatermark, error) {
	if s.closed.Load() {
		return nil, unavailable("reading the high watermark", errClosed)
	}
	var slot, epoch int64
	switch err := s.rdb.QueryRowContext(ctx, "SELECT slot, epoch FROM high_watermark WHERE id = 1").Scan(&slot, &epoch); {
	case err == sql.ErrNoRows:
		return nil, nil
	case err != nil:
		return nil, unavailable("reading the high watermark", err)
	}
	return &slashing.HighWatermark{Slot: phase0.Slot(column.Dec(slot)), Epoch: phase0.Epoch(column.Dec(epoch))}, nil
}

// readHighWatermark reads the high watermark inside a sign transaction.
func readHighWatermark(ctx context.Context, tx *sql.Tx) (*slashing.HighWatermark, error) {
	var slot, epoch int64
	switch err := tx.QueryRowContext(ctx, "SELECT slot, epoch FROM high_watermark WHERE id = 1").Scan(&slot, &epoch); {
	case err == sql.ErrNoRows:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the high watermark: %w", err)
	}
	return &slashing.HighWatermark{Slot: phase0.Slot(column.Dec(slot)), Epoch: phase0.Epoch(column.Dec(epoch))}, nil
}

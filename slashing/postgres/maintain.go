package postgres

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"slices"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

var _ slashing.Maintainer = (*Store)(nil)

// Maintenance work is split into calls of the database functions (one call =
// one statement = one transaction = one round trip), each holding the locks
// of the keys it handles until it commits.
const (
	// pruneChunk is the most keys one vigil_prune call handles: in steady
	// state (a few records per key to delete) a chunk takes milliseconds.
	pruneChunk = 64
	// pruneBudget bounds the rows one vigil_prune call deletes (it stops
	// after the key that reaches it), so that the first prune of a long
	// history does not keep a chunk of keys locked, and signing for them
	// waiting, for long. One key's history is always pruned in one call.
	pruneBudget = 16384
	// raiseChunk is the most keys one vigil_raise_low_watermarks call
	// handles (each key holds two advisory locks, which take entries of the
	// server's shared lock table, until the call commits).
	raiseChunk = 256
)

// Prune implements slashing.Maintainer. It lists the keys, then prunes them
// in calls of vigil_prune of up to pruneChunk keys (fewer when a call reaches
// pruneBudget deleted rows): per key, under both of its advisory locks, the
// cuts of slashing.PruneCuts, the raised watermarks of
// slashing.PrunedWatermarks and the deletion below them, in SQL. Every call
// is a write at the store's term (a stale term fails with ErrFenced, nothing
// written by that call). Keys registered while Prune runs may be left for
// the next run. On error the result counts what the calls that committed
// did.
func (s *Store) Prune(ctx context.Context, opts slashing.PruneOptions) (slashing.PruneResult, error) {
	var res slashing.PruneResult
	if err := opts.Validate(); err != nil {
		return res, err
	}
	if err := s.enter(ctx, "prune"); err != nil {
		return res, err
	}
	ids, err := s.validatorIDs(ctx, "prune")
	if err != nil {
		return res, err
	}
	keepEpochs := new(big.Int).SetUint64(opts.KeepEpochs)
	keepSlots := new(big.Int).Mul(keepEpochs, new(big.Int).SetUint64(opts.SlotsPerEpoch)) // exact: no u64 overflow
	// At least one call, so that a fenced store learns it even when there is
	// nothing to prune.
	for first := true; first || len(ids) > 0; first = false {
		chunk := ids[:min(pruneChunk, len(ids))]
		term := s.term.Load()
		var (
			code                int16
			current             *int64
			done, validators    int
			blocks, attestation int64
		)
		err := s.pool.QueryRow(ctx, `SELECT verdict, x1, coalesce(done, 0), coalesce(n_validators, 0), coalesce(n_blocks, 0), coalesce(n_attestations, 0)
			FROM vigil_prune($1, $2, $3, $4, $5)`,
			term, chunk, pgtype.Numeric{Int: keepSlots, Valid: true}, pgtype.Numeric{Int: keepEpochs, Valid: true}, int64(pruneBudget)).
			Scan(&code, &current, &done, &validators, &blocks, &attestation)
		if err != nil {
			return res, unavailable("prune", err)
		}
		switch {
		case code == verdictFenced:
			s.fencedN.Add(1)
			return res, fenced("prune", term, deref(current))
		case code != verdictRecord:
			return res, fmt.Errorf("%w: postgres: prune: unknown verdict %d", slashing.ErrUnavailable, code)
		case done > len(chunk) || (len(chunk) > 0 && done == 0):
			return res, fmt.Errorf("%w: postgres: prune: the database handled %d of %d keys", slashing.ErrUnavailable, done, len(chunk))
		}
		res.Validators += validators
		res.Blocks += int(blocks)
		res.Attestations += int(attestation)
		ids = ids[done:]
	}
	return res, nil
}

// RaiseLowWatermarks implements slashing.Maintainer. The keys (every key
// registered when the call starts, for nil pubkeys) are raised in calls of
// vigil_raise_low_watermarks of up to raiseChunk keys, each a write at the
// store's term that registers the unknown named keys and raises each key's
// watermarks under both of its advisory locks. A call that fails leaves the
// keys of earlier calls raised (raising again is harmless); the count then
// covers the calls that committed.
func (s *Store) RaiseLowWatermarks(ctx context.Context, pubkeys []phase0.BLSPubKey, slot phase0.Slot, epoch phase0.Epoch) (int, error) {
	if err := s.enter(ctx, "raise low watermarks"); err != nil {
		return 0, err
	}
	var ids []int64
	var pks [][]byte
	if pubkeys == nil {
		var err error
		if ids, err = s.validatorIDs(ctx, "raise low watermarks"); err != nil {
			return 0, err
		}
	} else {
		// Sorted and without duplicates: concurrent registrations of the
		// same new keys then happen in one order (no deadlock), and a key
		// named twice counts once.
		sorted := slices.Clone(pubkeys)
		slices.SortFunc(sorted, slashing.ComparePubkeys)
		sorted = slices.Compact(sorted)
		pks = make([][]byte, len(sorted))
		for i := range sorted {
			pks[i] = sorted[i][:]
		}
	}
	n := 0
	for first := true; first || len(ids) > 0 || len(pks) > 0; first = false {
		idChunk := ids[:min(raiseChunk, len(ids))]
		pkChunk := pks[:min(raiseChunk, len(pks))]
		ids, pks = ids[len(idChunk):], pks[len(pkChunk):]
		term := s.term.Load()
		var code int16
		var current *int64
		var changed int
		err := s.pool.QueryRow(ctx, "SELECT verdict, x1, coalesce(changed, 0) FROM vigil_raise_low_watermarks($1, $2, $3, $4, $5)",
			term, idChunk, pkChunk, column.Enc(uint64(slot)), column.Enc(uint64(epoch))).Scan(&code, &current, &changed)
		if err != nil {
			return n, unavailable("raise low watermarks", err)
		}
		switch code {
		case verdictRecord:
			n += changed
		case verdictFenced:
			s.fencedN.Add(1)
			return n, fenced("raise low watermarks", term, deref(current))
		default:
			return n, fmt.Errorf("%w: postgres: raise low watermarks: unknown verdict %d", slashing.ErrUnavailable, code)
		}
	}
	return n, nil
}

// SetHighWatermark implements slashing.Maintainer: one call of
// vigil_set_high_watermark at the store's term. Like SetTerm it waits for
// every write in flight; once it returns, every signature that commits was
// checked against the new high watermark.
func (s *Store) SetHighWatermark(ctx context.Context, hw *slashing.HighWatermark) error {
	if err := s.enter(ctx, "set high watermark"); err != nil {
		return err
	}
	var slot, epoch *int64
	if hw != nil {
		sl, ep := column.Enc(uint64(hw.Slot)), column.Enc(uint64(hw.Epoch))
		slot, epoch = &sl, &ep
	}
	term := s.term.Load()
	var code int16
	var current *int64
	if err := s.pool.QueryRow(ctx, "SELECT verdict, x1 FROM vigil_set_high_watermark($1, $2, $3)", term, slot, epoch).Scan(&code, &current); err != nil {
		return unavailable("set high watermark", err)
	}
	switch code {
	case verdictRecord:
		return nil
	case verdictFenced:
		s.fencedN.Add(1)
		return fenced("set high watermark", term, deref(current))
	}
	return fmt.Errorf("%w: postgres: set high watermark: unknown verdict %d", slashing.ErrUnavailable, code)
}

// HighWatermark implements slashing.Maintainer.
func (s *Store) HighWatermark(ctx context.Context) (*slashing.HighWatermark, error) {
	if err := s.enter(ctx, "read the high watermark"); err != nil {
		return nil, err
	}
	var slot, epoch *int64
	if err := s.pool.QueryRow(ctx, "SELECT hw_slot, hw_epoch FROM fence WHERE id = 1").Scan(&slot, &epoch); err != nil {
		return nil, unavailable("read the high watermark", err)
	}
	if slot == nil || epoch == nil {
		return nil, nil
	}
	return &slashing.HighWatermark{Slot: phase0.Slot(column.Dec(*slot)), Epoch: phase0.Epoch(column.Dec(*epoch))}, nil
}

// validatorIDs lists every key's id in the order multi-key calls lock keys
// in: by advisory lock key (id mod 2^31, see vigil_lock_key), then id.
func (s *Store) validatorIDs(ctx context.Context, op string) ([]int64, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM validators")
	if err != nil {
		return nil, unavailable(op, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, unavailable(op, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, unavailable(op, err)
	}
	slices.SortFunc(ids, func(a, b int64) int {
		if c := cmp.Compare(a%(1<<31), b%(1<<31)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return ids, nil
}

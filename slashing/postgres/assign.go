package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
)

var _ slashing.Assigner = (*Store)(nil)

// KeyAssignments implements slashing.Assigner.
func (s *Store) KeyAssignments(ctx context.Context) (map[phase0.BLSPubKey]string, error) {
	if err := s.enter(ctx, "list key assignments"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT pubkey, client FROM key_assignments`)
	if err != nil {
		return nil, unavailable("list key assignments", err)
	}
	defer rows.Close()
	out := map[phase0.BLSPubKey]string{}
	for rows.Next() {
		var pk []byte
		var c string
		if err := rows.Scan(&pk, &c); err != nil {
			return nil, unavailable("list key assignments", err)
		}
		out[phase0.BLSPubKey(pk)] = c
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list key assignments", err)
	}
	return out, nil
}

// fencedTx runs fn in a transaction that first checks the store's term against the fence
// (holding the fence row FOR SHARE until commit, as every write does).
func (s *Store) fencedTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	term := s.term.Load()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var current int64
		if err := tx.QueryRow(ctx, "SELECT term FROM fence WHERE id = 1 FOR SHARE").Scan(&current); err != nil {
			return err
		}
		if current != term {
			return fmt.Errorf("%w: %s with term %d, the database's term is %d", ErrFenced, op, term, current)
		}
		return fn(tx)
	})
	if err != nil && !errors.Is(err, ErrFenced) {
		return unavailable(op, err)
	}
	return err
}

// AdoptKey implements slashing.Assigner.
func (s *Store) AdoptKey(ctx context.Context, key phase0.BLSPubKey, client string) (string, error) {
	var owner string
	err := s.fencedTx(ctx, "adopt a key", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO key_assignments (pubkey, client) VALUES ($1, $2) ON CONFLICT (pubkey) DO NOTHING`, key[:], client); err != nil {
			return err
		}
		// A fresh snapshot (READ COMMITTED): sees a concurrent adopter's row once its insert
		// made ours do nothing.
		return tx.QueryRow(ctx, `SELECT client FROM key_assignments WHERE pubkey = $1`, key[:]).Scan(&owner)
	})
	return owner, err
}

// AssignKeys implements slashing.Assigner.
func (s *Store) AssignKeys(ctx context.Context, keys []phase0.BLSPubKey, client string) error {
	raw := make([][]byte, len(keys))
	for i := range keys {
		raw[i] = keys[i][:]
	}
	return s.fencedTx(ctx, "assign keys", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO key_assignments (pubkey, client) SELECT k, $2 FROM unnest($1::bytea[]) AS k
			ON CONFLICT (pubkey) DO UPDATE SET client = EXCLUDED.client, assigned_at = now()`, raw, client)
		return err
	})
}

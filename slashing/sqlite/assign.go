package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

var _ slashing.Assigner = (*Store)(nil)

// KeyAssignments implements slashing.Assigner.
func (s *Store) KeyAssignments(ctx context.Context) (map[phase0.BLSPubKey]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT pubkey, client FROM key_assignments`)
	if err != nil {
		return nil, unavailable("listing key assignments", err)
	}
	defer rows.Close()
	out := map[phase0.BLSPubKey]string{}
	for rows.Next() {
		var pk []byte
		var c string
		if err := rows.Scan(&pk, &c); err != nil {
			return nil, unavailable("listing key assignments", err)
		}
		out[phase0.BLSPubKey(pk)] = c
	}
	return out, unavailable("listing key assignments", rows.Err())
}

// AdoptKey implements slashing.Assigner (one exclusive writer transaction).
func (s *Store) AdoptKey(ctx context.Context, key phase0.BLSPubKey, client string) (string, error) {
	var owner string
	err := s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO key_assignments (pubkey, client, assigned_at) VALUES (?, ?, ?) ON CONFLICT (pubkey) DO NOTHING`,
			key[:], client, time.Now().Unix()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT client FROM key_assignments WHERE pubkey = ?`, key[:]).Scan(&owner)
	}})
	return owner, err
}

// AssignKeys implements slashing.Assigner (one exclusive writer transaction).
func (s *Store) AssignKeys(ctx context.Context, keys []phase0.BLSPubKey, client string) error {
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		now := time.Now().Unix()
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_assignments (pubkey, client, assigned_at) VALUES (?, ?, ?)
				ON CONFLICT (pubkey) DO UPDATE SET client = excluded.client, assigned_at = excluded.assigned_at`, k[:], client, now); err != nil {
				return err
			}
		}
		return nil
	}})
}

package postgres

import (
	"context"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
)

var _ slashing.FailoverLedger = (*Store)(nil)

// ClientStates implements slashing.FailoverLedger.
func (s *Store) ClientStates(ctx context.Context) (map[string]slashing.ClientState, error) {
	if err := s.enter(ctx, "read failover state"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT name, fenced, reason, since, missed FROM failover_clients`)
	if err != nil {
		return nil, unavailable("read failover state", err)
	}
	defer rows.Close()
	out := map[string]slashing.ClientState{}
	for rows.Next() {
		var name string
		var st slashing.ClientState
		var since *time.Time
		if err := rows.Scan(&name, &st.Fenced, &st.Reason, &since, &st.Missed); err != nil {
			return nil, unavailable("read failover state", err)
		}
		if since != nil {
			st.Since = *since
		}
		out[name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("read failover state", err)
	}
	return out, nil
}

// SetMissed implements slashing.FailoverLedger.
func (s *Store) SetMissed(ctx context.Context, client string, missed int) error {
	return s.fencedTx(ctx, "record missed epochs", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO failover_clients (name, missed) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET missed = EXCLUDED.missed`, client, missed)
		return err
	})
}

func (s *Store) audit(ctx context.Context, tx pgx.Tx, r slashing.AuditRecord) error {
	_, err := tx.Exec(ctx, `INSERT INTO failover_audit (term, action, from_client, to_client, keys, reason, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		s.term.Load(), r.Action, r.From, r.To, r.Keys, r.Reason, r.Detail)
	return err
}

func setFenced(ctx context.Context, tx pgx.Tx, client string, fenced bool, reason string) error {
	_, err := tx.Exec(ctx, `INSERT INTO failover_clients (name, fenced, reason, since) VALUES ($1, $2, $3, CASE WHEN $2 THEN now() END)
		ON CONFLICT (name) DO UPDATE SET fenced = EXCLUDED.fenced, reason = EXCLUDED.reason, since = EXCLUDED.since, missed = 0`, client, fenced, reason)
	return err
}

// SetFenced implements slashing.FailoverLedger.
func (s *Store) SetFenced(ctx context.Context, client string, fenced bool, reason string) error {
	action := "unfence"
	if fenced {
		action = "fence"
	}
	return s.fencedTx(ctx, action+" a client", func(tx pgx.Tx) error {
		if err := s.audit(ctx, tx, slashing.AuditRecord{Action: action, From: client, Reason: reason}); err != nil {
			return err
		}
		return setFenced(ctx, tx, client, fenced, reason)
	})
}

// MoveKeys implements slashing.FailoverLedger.
func (s *Store) MoveKeys(ctx context.Context, keys []phase0.BLSPubKey, from, to, reason string) error {
	raw := make([][]byte, len(keys))
	for i := range keys {
		raw[i] = keys[i][:]
	}
	return s.fencedTx(ctx, "move keys", func(tx pgx.Tx) error {
		if err := s.audit(ctx, tx, slashing.AuditRecord{Action: "move", From: from, To: to, Keys: len(keys), Reason: reason}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO key_assignments (pubkey, client) SELECT k, $2 FROM unnest($1::bytea[]) AS k
			ON CONFLICT (pubkey) DO UPDATE SET client = EXCLUDED.client, assigned_at = now()`, raw, to); err != nil {
			return err
		}
		return setFenced(ctx, tx, from, true, reason)
	})
}

// Audit implements slashing.FailoverLedger.
func (s *Store) Audit(ctx context.Context, r slashing.AuditRecord) error {
	return s.fencedTx(ctx, "write the failover audit log", func(tx pgx.Tx) error { return s.audit(ctx, tx, r) })
}

// AuditLog implements slashing.FailoverLedger.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]slashing.AuditRecord, error) {
	if err := s.enter(ctx, "read the failover audit log"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT at, action, from_client, to_client, keys, reason, detail FROM failover_audit ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, unavailable("read the failover audit log", err)
	}
	defer rows.Close()
	var out []slashing.AuditRecord
	for rows.Next() {
		var r slashing.AuditRecord
		if err := rows.Scan(&r.At, &r.Action, &r.From, &r.To, &r.Keys, &r.Reason, &r.Detail); err != nil {
			return nil, unavailable("read the failover audit log", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("read the failover audit log", err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

var _ slashing.FailoverLedger = (*Store)(nil)

// ClientStates implements slashing.FailoverLedger.
func (s *Store) ClientStates(ctx context.Context) (map[string]slashing.ClientState, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, fenced, reason, since, missed FROM failover_clients`)
	if err != nil {
		return nil, unavailable("reading failover state", err)
	}
	defer rows.Close()
	out := map[string]slashing.ClientState{}
	for rows.Next() {
		var name string
		var st slashing.ClientState
		var since int64
		if err := rows.Scan(&name, &st.Fenced, &st.Reason, &since, &st.Missed); err != nil {
			return nil, unavailable("reading failover state", err)
		}
		if since > 0 {
			st.Since = time.Unix(since, 0)
		}
		out[name] = st
	}
	return out, unavailable("reading failover state", rows.Err())
}

// SetMissed implements slashing.FailoverLedger.
func (s *Store) SetMissed(ctx context.Context, client string, missed int) error {
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO failover_clients (name, missed) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET missed = excluded.missed`, client, missed)
		return err
	}})
}

func audit(ctx context.Context, tx *sql.Tx, r slashing.AuditRecord) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO failover_audit (at, action, from_client, to_client, keys, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		time.Now().UnixMilli(), r.Action, r.From, r.To, r.Keys, r.Reason, r.Detail)
	return err
}

func setFenced(ctx context.Context, tx *sql.Tx, client string, fenced bool, reason string) error {
	since := int64(0)
	if fenced {
		since = time.Now().Unix()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO failover_clients (name, fenced, reason, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET fenced = excluded.fenced, reason = excluded.reason, since = excluded.since, missed = 0`, client, fenced, reason, since)
	return err
}

// SetFenced implements slashing.FailoverLedger.
func (s *Store) SetFenced(ctx context.Context, client string, fenced bool, reason string) error {
	action := "unfence"
	if fenced {
		action = "fence"
	}
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		if err := audit(ctx, tx, slashing.AuditRecord{Action: action, From: client, Reason: reason}); err != nil {
			return err
		}
		return setFenced(ctx, tx, client, fenced, reason)
	}})
}

// MoveKeys implements slashing.FailoverLedger.
func (s *Store) MoveKeys(ctx context.Context, keys []phase0.BLSPubKey, from, to, reason string) error {
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		if err := audit(ctx, tx, slashing.AuditRecord{Action: "move", From: from, To: to, Keys: len(keys), Reason: reason}); err != nil {
			return err
		}
		now := time.Now().Unix()
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `INSERT INTO key_assignments (pubkey, client, assigned_at) VALUES (?, ?, ?)
				ON CONFLICT (pubkey) DO UPDATE SET client = excluded.client, assigned_at = excluded.assigned_at`, k[:], to, now); err != nil {
				return err
			}
		}
		return setFenced(ctx, tx, from, true, reason)
	}})
}

// Audit implements slashing.FailoverLedger.
func (s *Store) Audit(ctx context.Context, r slashing.AuditRecord) error {
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error { return audit(ctx, tx, r) }})
}

// AuditLog implements slashing.FailoverLedger.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]slashing.AuditRecord, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT at, action, from_client, to_client, keys, reason, detail FROM failover_audit ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, unavailable("reading the failover audit log", err)
	}
	defer rows.Close()
	var out []slashing.AuditRecord
	for rows.Next() {
		var r slashing.AuditRecord
		var at int64
		if err := rows.Scan(&at, &r.Action, &r.From, &r.To, &r.Keys, &r.Reason, &r.Detail); err != nil {
			return nil, unavailable("reading the failover audit log", err)
		}
		r.At = time.UnixMilli(at)
		out = append(out, r)
	}
	return out, unavailable("reading the failover audit log", rows.Err())
}

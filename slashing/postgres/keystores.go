package postgres

import (
	"context"
	"errors"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// ManagedKeystore is a row of managed_keystores (migration 0005): a keystore imported through
// the keymanager API, shared by the HA pair so that keys follow the leader. Keystore and Sealed
// are nil for a tombstone. The password is sealed by the caller under a key the database never
// sees (keystore/keyset, KEK).
type ManagedKeystore struct {
	PublicKey phase0.BLSPubKey
	Keystore  []byte
	Sealed    []byte
	KEKID     string
}

// PutManagedKeystore writes (or replaces) the row of a keystore; every change takes a new
// version from one sequence, so the largest version names the table's state.
func (s *Store) PutManagedKeystore(ctx context.Context, k ManagedKeystore, by string) error {
	if err := s.enter(ctx, "write a shared keystore"); err != nil {
		return err
	}
	if k.Keystore == nil || k.Sealed == nil {
		return errors.New("postgres: PutManagedKeystore needs the keystore and its sealed password")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO managed_keystores (pubkey, keystore, password_sealed, kek_id, updated_by)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (pubkey) DO UPDATE SET keystore = EXCLUDED.keystore, password_sealed = EXCLUDED.password_sealed,
			kek_id = EXCLUDED.kek_id, version = nextval('managed_keystores_version'), updated_at = now(), updated_by = EXCLUDED.updated_by`,
		k.PublicKey[:], string(k.Keystore), k.Sealed, k.KEKID, by)
	if err != nil {
		return unavailable("write a shared keystore", err)
	}
	return nil
}

// AddManagedKeystore writes the row of a keystore only when the key has none (or a tombstone):
// of racing adds of one key exactly one reports added.
func (s *Store) AddManagedKeystore(ctx context.Context, k ManagedKeystore, by string) (bool, error) {
	if err := s.enter(ctx, "add a shared keystore"); err != nil {
		return false, err
	}
	if k.Keystore == nil || k.Sealed == nil {
		return false, errors.New("postgres: AddManagedKeystore needs the keystore and its sealed password")
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO managed_keystores (pubkey, keystore, password_sealed, kek_id, updated_by)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (pubkey) DO UPDATE SET keystore = EXCLUDED.keystore, password_sealed = EXCLUDED.password_sealed,
			kek_id = EXCLUDED.kek_id, version = nextval('managed_keystores_version'), updated_at = now(), updated_by = EXCLUDED.updated_by
		WHERE managed_keystores.keystore IS NULL`,
		k.PublicKey[:], string(k.Keystore), k.Sealed, k.KEKID, by)
	if err != nil {
		return false, unavailable("add a shared keystore", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ManagedKeystoresVersion is a fingerprint of the table's state: the sum of its rows' versions
// (0: none). Every write gives its row a new, larger version, so the sum grows with every commit
// whatever the commit order (the largest version alone would miss a row whose version was
// taken earlier but committed later).
func (s *Store) ManagedKeystoresVersion(ctx context.Context) (int64, error) {
	if err := s.enter(ctx, "read the shared keystores' version"); err != nil {
		return 0, err
	}
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(version), 0)::bigint FROM managed_keystores`).Scan(&v); err != nil {
		return 0, unavailable("read the shared keystores' version", err)
	}
	return v, nil
}

// DeleteManagedKeystore turns a key's row into a tombstone (written even when there was no row,
// so an instance holding a copy from before the pair shared keys removes it).
func (s *Store) DeleteManagedKeystore(ctx context.Context, pubkey phase0.BLSPubKey, by string) error {
	if err := s.enter(ctx, "delete a shared keystore"); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO managed_keystores (pubkey, keystore, password_sealed, kek_id, updated_by)
		VALUES ($1, NULL, NULL, '', $2)
		ON CONFLICT (pubkey) DO UPDATE SET keystore = NULL, password_sealed = NULL,
			version = nextval('managed_keystores_version'), updated_at = now(), updated_by = EXCLUDED.updated_by`,
		pubkey[:], by)
	if err != nil {
		return unavailable("delete a shared keystore", err)
	}
	return nil
}

// ManagedKeystores lists every row, tombstones included, in version order.
func (s *Store) ManagedKeystores(ctx context.Context) ([]ManagedKeystore, error) {
	if err := s.enter(ctx, "list shared keystores"); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT pubkey, keystore, password_sealed, kek_id FROM managed_keystores ORDER BY version`)
	if err != nil {
		return nil, unavailable("list shared keystores", err)
	}
	defer rows.Close()
	var out []ManagedKeystore
	for rows.Next() {
		var pk, sealed []byte
		var ks *string
		var k ManagedKeystore
		if err := rows.Scan(&pk, &ks, &sealed, &k.KEKID); err != nil {
			return nil, unavailable("list shared keystores", err)
		}
		copy(k.PublicKey[:], pk)
		if ks != nil {
			k.Keystore, k.Sealed = []byte(*ks), sealed
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list shared keystores", err)
	}
	return out, nil
}

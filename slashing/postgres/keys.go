package postgres

import (
	"context"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

// SetEnabled enables or disables signing for a key (registering it if new),
// in one transaction at the store's term, serialised with the key's
// signatures.
func (s *Store) SetEnabled(ctx context.Context, pubkey phase0.BLSPubKey, enabled bool) error {
	if err := s.enter(ctx, "set enabled"); err != nil {
		return err
	}
	term := s.term.Load()
	var code int16
	var current *int64
	if err := s.pool.QueryRow(ctx, "SELECT verdict, x1 FROM vigil_set_enabled($1, $2, $3)", term, pubkey[:], enabled).Scan(&code, &current); err != nil {
		return unavailable("set enabled", err)
	}
	switch code {
	case verdictRecord:
		return nil
	case verdictFenced:
		s.fencedN.Add(1)
		return fenced("set enabled", term, deref(current))
	}
	return fmt.Errorf("%w: postgres: set enabled: unknown verdict %d", slashing.ErrUnavailable, code)
}

// DisabledKeys lists the keys whose signing is disabled (keymanager DELETE), in pubkey order. A
// key refused only while its chunked import runs is not listed (its state is the one saved).
func (s *Store) DisabledKeys(ctx context.Context) ([]phase0.BLSPubKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT v.pubkey FROM validators v LEFT JOIN import_progress ip ON ip.validator_id = v.id
		WHERE NOT coalesce(ip.was_enabled, v.enabled) ORDER BY v.pubkey`)
	if err != nil {
		return nil, unavailable("listing disabled keys", err)
	}
	defer rows.Close()
	out, err := column.ScanPubkeys(rows)
	return out, unavailable("listing disabled keys", err)
}

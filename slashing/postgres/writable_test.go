package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// Health tells the truth about writability (a database turned read-only, as a demoted primary
// or a mistyped replica address is): Ping is DOWN while transactions are read-only, a write that
// failed for that reason keeps it DOWN until a write records something or Ping's probe write
// succeeds, nothing is recorded meanwhile, and a read-only database is refused at Open.
func TestReadOnlyDatabaseIsDown(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	s, err := postgres.Open(ctx, dsn, postgres.Options{Create: true, MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gvr := phase0.Root{7}
	vote := func(source, target uint64) slashing.Attestation {
		return slashing.Attestation{Pubkey: phase0.BLSPubKey{1}, SourceEpoch: phase0.Epoch(source), TargetEpoch: phase0.Epoch(target), SigningRoot: phase0.Root{1}, GenesisValidatorsRoot: gvr}
	}
	if err := s.SignAttestation(ctx, vote(1, 2)); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// setReadOnly changes the database's default and ends its sessions, so the store's pool
	// reconnects with the new setting (the timeout makes pg_terminate_backend wait until they are gone).
	setReadOnly := func(on bool) {
		t.Helper()
		stmt := `ALTER DATABASE ` + pgx.Identifier{db}.Sanitize() + ` RESET default_transaction_read_only`
		if on {
			stmt = `ALTER DATABASE ` + pgx.Identifier{db}.Sanitize() + ` SET default_transaction_read_only = on`
		}
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db); err != nil {
			t.Fatal(err)
		}
	}
	setReadOnly(true)
	if err := s.Ping(ctx); !errors.Is(err, slashing.ErrUnavailable) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("Ping of a read-only database: %v, want unavailable naming read-only", err)
	}
	if err := s.SignAttestation(ctx, vote(2, 3)); !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("sign on a read-only database: %v, want ErrUnavailable", err)
	}
	if _, err := postgres.Open(ctx, dsn, postgres.Options{}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("Open of a read-only database: %v, want a refusal naming read-only", err)
	}

	// A repeat of a recorded vote commits nothing: it proves nothing about writability, and
	// health stays DOWN (Ping's own probe write fails too).
	_ = s.SignAttestation(ctx, vote(1, 2))
	if err := s.Ping(ctx); !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("Ping after a repeat on a read-only database: %v, want DOWN", err)
	}

	// Writable again: Ping's probe write succeeds and health recovers with no signing traffic
	// (a load balancer sends none to a DOWN instance); signing works.
	setReadOnly(false)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping once writable again: %v (the probe write should have recovered it)", err)
	}
	if err := s.SignAttestation(ctx, vote(2, 3)); err != nil {
		t.Fatalf("sign once writable: %v", err)
	}
	// The vote refused while read-only was not recorded then; it is now, exactly once.
	if sum, err := s.Summary(ctx); err != nil || sum.Attestations != 2 {
		t.Fatalf("summary %+v (%v), want 2 attestations", sum, err)
	}
}

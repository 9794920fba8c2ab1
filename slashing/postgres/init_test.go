package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// An empty database (a mistyped name that happens to exist, a new cluster) is never migrated
// into a fresh, empty slashing history without Options.Create; a database that does not exist
// is never created at all.
func TestOpenRefusesEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	for _, opts := range []postgres.Options{{}, {DisableMigrations: true}} {
		if _, err := postgres.Open(ctx, dsn, opts); !errors.Is(err, slashing.ErrNotInitialized) {
			t.Fatalf("Open(%+v) of an empty database: %v, want ErrNotInitialized", opts, err)
		}
	}
	if err := postgres.MigrateWithOptions(ctx, dsn, postgres.Options{}); !errors.Is(err, slashing.ErrNotInitialized) {
		t.Fatalf("migrate of an empty database without Create: %v", err)
	}
	s, err := postgres.Open(ctx, dsn, postgres.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created() {
		t.Error("Created() false for a new schema")
	}
	pk := phase0.BLSPubKey{1}
	if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: pk, SourceEpoch: 1, TargetEpoch: 2, SigningRoot: phase0.Root{1}, GenesisValidatorsRoot: phase0.Root{2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnabled(ctx, pk, false); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DisabledKeys(ctx); err != nil || len(d) != 1 || d[0] != pk {
		t.Fatalf("disabled keys %v (%v)", d, err)
	}
	s.Close()

	s, err = postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("reopen without Create: %v", err)
	}
	defer s.Close()
	sum, err := s.Summary(ctx)
	if err != nil || sum.Created || sum.Validators != 1 || sum.Attestations != 1 {
		t.Fatalf("summary %+v (%v)", sum, err)
	}

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_db_" + strings.TrimPrefix(u.Path, "/")
	if _, err := postgres.Open(ctx, u.String(), postgres.Options{Create: true}); !errors.Is(err, slashing.ErrUnavailable) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open of a database that does not exist: %v", err)
	}
}

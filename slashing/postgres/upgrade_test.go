package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// TestUpgradeFromVersion1: a database created and written by schema version
// 1 is migrated by Open; history, watermarks, term and genesis root are
// kept, and the high watermark starts unset.
func TestUpgradeFromVersion1(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	v1, err := os.ReadFile("migrations/0001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn := sql(t, url)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_version (
			id          smallint PRIMARY KEY CHECK (id = 1),
			application text     NOT NULL,
			version     integer  NOT NULL
		)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(v1), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO schema_version VALUES (1, 'vigil-slashing-protection', 1)"); err != nil {
		t.Fatal(err)
	}
	pk, root, gvr := slashingtest.Key(1), slashingtest.Root(1), slashingtest.GVR
	var code int16
	if err := conn.QueryRow(ctx, "SELECT verdict FROM vigil_sign_block(1, $1, $2, $3, $4)", pk[:], encU64(10), root[:], gvr[:]).Scan(&code); err != nil || code != 0 {
		t.Fatalf("v1 sign block: %d, %v", code, err)
	}
	if err := conn.QueryRow(ctx, "SELECT verdict FROM vigil_sign_attestation(1, $1, $2, $3, $4, $5)", pk[:], encU64(3), encU64(4), root[:], gvr[:]).Scan(&code); err != nil || code != 0 {
		t.Fatalf("v1 sign attestation: %d, %v", code, err)
	}
	if _, err := conn.Exec(ctx, "SELECT vigil_set_term(7)"); err != nil {
		t.Fatal(err)
	}

	s := open(t, url, postgres.Options{Create: true, Term: 7})
	if hw, err := s.HighWatermark(ctx); err != nil || hw != nil {
		t.Fatalf("HighWatermark after the upgrade = %v, %v", hw, err)
	}
	if r, ok, err := s.GenesisValidatorsRoot(ctx); err != nil || !ok || r != gvr {
		t.Fatalf("genesis root after the upgrade: %x %v %v", r, ok, err)
	}
	if err := s.SignBlock(ctx, block(1, 10, 1)); err != nil {
		t.Fatalf("repeat after the upgrade: %v", err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(1, 9, 1)), slashing.BelowLowWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 2, 5, 1)), slashing.BelowLowWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 3, 4, 2)), slashing.DoubleVote)
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 20, Epoch: 6}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(1, 20, 1)), slashing.AboveHighWatermark)
	if err := s.SignAttestation(ctx, att(1, 4, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if term, err := s.DatabaseTerm(ctx); err != nil || term != 7 {
		t.Fatalf("term after the upgrade = %d, %v", term, err)
	}
}

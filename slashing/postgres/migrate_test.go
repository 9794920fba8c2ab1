package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// TestConcurrentMigrations: several instances open a fresh database at the
// same moment; the migration lock serialises them, all succeed, the schema
// is migrated once, and every instance works.
func TestConcurrentMigrations(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	const n = 6
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i == n-1 {
				errs[i] = postgres.Migrate(ctx, url) // the CLI path races too
				return
			}
			stores[i], errs[i] = postgres.Open(ctx, url, postgres.Options{Create: true})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	var v int
	if err := sql(t, url).QueryRow(ctx, "SELECT version FROM schema_version").Scan(&v); err != nil || v != postgres.SchemaVersion {
		t.Fatalf("schema version %d (%v), want %d", v, err, postgres.SchemaVersion)
	}
	for i, s := range stores[:n-1] {
		if err := s.SignBlock(ctx, block(i, 1, 1)); err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	// Migrating again is a no-op.
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesFutureSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if _, err := sql(t, url).Exec(ctx, "UPDATE schema_version SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url, postgres.Options{Create: true}); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
	if _, err := postgres.Open(ctx, url, postgres.Options{Create: true, DisableMigrations: true}); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open (no migrations) of a newer schema = %v, want ErrSchemaTooNew", err)
	}
	if err := postgres.Migrate(ctx, url); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Migrate of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func TestDisableMigrations(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	_, err := postgres.Open(ctx, url, postgres.Options{Create: true, DisableMigrations: true})
	if !errors.Is(err, postgres.ErrSchemaTooOld) || !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("Open (no migrations) of an empty database = %v, want ErrSchemaTooOld", err)
	}
	var tables int
	if err := sql(t, url).QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("Open with DisableMigrations created %d tables (%v)", tables, err)
	}
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	s := open(t, url, postgres.Options{Create: true, DisableMigrations: true})
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if _, err := sql(t, url).Exec(ctx, "CREATE TABLE validators (id serial PRIMARY KEY, public_key bytea)"); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url, postgres.Options{Create: true}); !errors.Is(err, postgres.ErrForeignDatabase) {
		t.Fatalf("Open of a foreign schema = %v, want ErrForeignDatabase", err)
	}
	// The same database works with a schema of Vigil's own.
	s := open(t, url, postgres.Options{Create: true, Schema: "vigil"})
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	ctx := context.Background()
	for _, o := range []postgres.Options{{Term: -1}, {MaxConns: -1}, {StatementTimeout: -1}} {
		if _, err := postgres.Open(ctx, "postgres://127.0.0.1:1/x", o); err == nil {
			t.Fatalf("Open accepted %+v", o)
		}
	}
	if _, err := postgres.Open(ctx, "postgres://%zz", postgres.Options{Create: true}); err == nil {
		t.Fatal("Open accepted a malformed URL")
	}
}

// TestHistoryIsNeverDeleted: the validators table refuses DELETE and
// TRUNCATE (a lost key row would lose the key's history).
func TestHistoryIsNeverDeleted(t *testing.T) {
	ctx := context.Background()
	s, url := fresh(t, postgres.Options{Create: true})
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	conn := sql(t, url)
	for _, q := range []string{"DELETE FROM validators", "TRUNCATE validators"} {
		if _, err := conn.Exec(ctx, q); err == nil {
			t.Fatalf("%s succeeded", q)
		}
	}
}

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/keystore/keystoretest"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// The shared key store (the HA pair's keystore table) meets the key-store contract on a real
// Postgres: duplicates, racing puts of one key, deletes, a second handle reading the first's
// writes, every key signing as its secret.
func TestSharedKeyStoreConformance(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, dsn, postgres.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	kek, err := keyset.NewKEK([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	keystoretest.RunStore(t, keystoretest.Backend{Open: func(t *testing.T) keystore.Store {
		pg, err := postgres.Open(ctx, dsn, postgres.Options{DisableMigrations: true, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pg.Close() })
		return keyset.NewSharedStore(sharedKeystores{pg}, kek, "test")
	}})

	// A row sealed under another key-encryption key is named, not guessed.
	pg, err := postgres.Open(ctx, dsn, postgres.Options{DisableMigrations: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	other, _ := keyset.NewKEK([]byte(strings.Repeat("o", 32)))
	if err := keyset.NewSharedStore(sharedKeystores{pg}, other, "test").Put(ctx, keystoretest.Key(t, 900)); err != nil {
		t.Fatal(err)
	}
	res, err := keyset.NewSharedStore(sharedKeystores{pg}, kek, "test").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, e := range res.Errors {
		if e.Pubkey == keystoretest.Key(t, 900).PublicKey() && strings.Contains(e.Error(), "sealed under key-encryption key "+other.ID()) {
			named = true
		}
	}
	if !named {
		t.Fatalf("a row under another KEK is not named among %v", res.Errors)
	}
}

package main

// The "shared" key store of `vigil keys`: the HA pair's shared keystore table in the Postgres
// slashing database (keyset.SharedStore), so that keys imported from the command line follow the
// leader like keymanager imports do. A local keyring belongs to one machine.

import (
	"context"
	"flag"
	"os"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/slashing/postgres"
)

// sharedStoreFlags name the pair's database and key-encryption key (the serve flags' names).
type sharedStoreFlags struct {
	dbURL   string
	kekFile string
	by      string
}

func (f *sharedStoreFlags) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&f.dbURL, "slashing-protection-db-url", "", "--to/--from shared: the HA pair's Postgres slashing-protection database (set it through VIGIL_SLASHING_PROTECTION_DB_URL so a password stays out of the process list)")
	fs.StringVar(&f.kekFile, "ha-key-encryption-key-file", "", "--to/--from shared: the pair's key-encryption key file (the one both instances are given)")
	fs.StringVar(&f.by, "ha-instance-id", "cli@"+host, "--to/--from shared: the name recorded as the rows' writer")
}

// open opens the shared store; the database must exist (it is the pair's, never created here).
func (f *sharedStoreFlags) open(ctx context.Context) (keystore.Store, func(), error) {
	if f.dbURL == "" || f.kekFile == "" {
		return nil, nil, usagef("the shared key store needs --slashing-protection-db-url (or VIGIL_SLASHING_PROTECTION_DB_URL) and --ha-key-encryption-key-file: it is the HA pair's keystore table, each password sealed under the pair's key-encryption key")
	}
	kek, err := keyset.LoadKEK(f.kekFile)
	if err != nil {
		return nil, nil, usagef("--ha-key-encryption-key-file: %v", err)
	}
	store, err := openPostgres(ctx, storeConfig{dbURL: f.dbURL}, false) // postgres.go: errors without the password
	if err != nil {
		return nil, nil, err
	}
	pg := store.(*postgres.Store)
	return keyset.NewSharedStore(sharedKeystores{pg}, kek, f.by), func() { _ = pg.Close() }, nil
}

func (a sharedKeystores) AddManagedKeystore(ctx context.Context, k keyset.SharedKeystore, by string) (bool, error) {
	return a.s.AddManagedKeystore(ctx, postgres.ManagedKeystore{PublicKey: phase0.BLSPubKey(k.PublicKey), Keystore: k.Keystore, Sealed: k.Sealed, KEKID: k.KEKID}, by)
}

// keystorePutter is a store that keeps an EIP-2335 keystore as it is (the shared store) rather
// than the bare secret.
type keystorePutter interface {
	PutKeystore(ctx context.Context, pk keystore.PublicKey, keystoreJSON, password []byte) error
}

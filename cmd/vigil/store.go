package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

// storeConfig selects the slashing-protection database: Postgres when dbURL is set, otherwise
// the embedded SQLite file in the data dir.
type storeConfig struct {
	dataDir string
	dbPath  string // SQLite file (default <data-dir>/slashing-protection.sqlite)
	dbURL   string // Postgres URL (--slashing-protection-db-url)
	migrate bool   // run schema migrations at open (Postgres; SQLite always migrates)
	init    bool   // create the database when it does not exist (--init-slashing-protection)
}

// storeFlags registers the database flags shared by serve and the slashing subcommands.
func storeFlags(fs *flag.FlagSet, c *storeConfig, getenv func(string) string) {
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(getenv), "directory of the embedded slashing database, vigil.ports and keymanager data")
	fs.StringVar(&c.dbPath, "slashing-db-path", "", "embedded slashing-protection database file (default <data-dir>/slashing-protection.sqlite)")
	fs.StringVar(&c.dbURL, "slashing-protection-db-url", "", "Postgres URL of a shared slashing-protection database (instead of the embedded one); set it through VIGIL_SLASHING_PROTECTION_DB_URL or --config-file so a password stays out of the process list")
	dsnFlag(fs.Lookup("slashing-protection-db-url")) // postgres.go: JDBC form, never echoed
	fs.BoolVar(&c.migrate, "slashing-protection-db-migrate", true, "run Postgres schema migrations at start (off: run `vigil slashing migrate` yourself)")
	fs.BoolVar(&c.init, "init-slashing-protection", false, "create the slashing-protection database if it does not exist (needed once, on the first start; without it a missing or empty database is an error, never silently replaced)")
}

func (c storeConfig) sqlitePath() string {
	if c.dbPath != "" {
		return c.dbPath
	}
	return filepath.Join(c.dataDir, "slashing-protection.sqlite")
}

// describe names the database without secrets (a Postgres URL's password is never printed).
func (c storeConfig) describe() string {
	if c.dbURL != "" {
		return describeDSN(c.dbURL) // postgres.go: host, port, database and user only
	}
	return "sqlite " + c.sqlitePath()
}

// openStore opens the configured store. A database that does not exist (or holds no schema) is
// created only when create is set; otherwise it is an error that says what happened and how to
// go on (errNotInitialized).
func openStore(ctx context.Context, c storeConfig, create bool) (slashing.Store, error) {
	var (
		s   slashing.Store
		err error
	)
	if c.dbURL != "" {
		s, err = openPostgres(ctx, c, create)
	} else {
		path := c.sqlitePath()
		if create {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("slashing-protection database directory: %w", err)
			}
		}
		s, err = sqlite.Open(ctx, path, sqlite.Options{Create: create})
		if err != nil {
			err = fmt.Errorf("slashing-protection database %s: %w", path, err)
		}
	}
	if errors.Is(err, slashing.ErrNotInitialized) {
		return nil, notInitializedHelp(c, err)
	}
	return s, err
}

// notInitializedHelp explains a missing slashing database: what happened, why Vigil stops, and
// the three ways on.
func notInitializedHelp(c storeConfig, err error) error {
	return fmt.Errorf(`%w

Vigil will not start on a missing or empty slashing-protection database: it would forget every
signature made before and could sign a conflicting one (a slashable double vote).
  - New validators, never signed with this database: start once with --init-slashing-protection
    (or run: vigil slashing init %s).
  - The database was lost or moved: restore it from its backup or point Vigil at it
    (--data-dir / --slashing-db-path / --slashing-protection-db-url).
  - You have an EIP-3076 interchange export of the history (from Vigil or another signer or
    validator client): vigil slashing import --file <export.json> %s
    creates the database with that history; then start Vigil again.`, err, c.flagsForHelp(), c.flagsForHelp())
}

// flagsForHelp repeats the database location flags for a command suggested to the operator (the
// Postgres URL is not repeated: it may hold a password).
func (c storeConfig) flagsForHelp() string {
	if c.dbURL != "" {
		return "--slashing-protection-db-url <url>"
	}
	if c.dbPath != "" {
		return "--slashing-db-path " + c.dbPath
	}
	return "--data-dir " + c.dataDir
}

// storeSummary is what a store can say about itself at start (both stores implement it).
type storeSummary interface {
	Summary(ctx context.Context) (slashing.Summary, error)
}

// logStoreOpened says whether the database was created or opened, with its record counts.
func logStoreOpened(ctx context.Context, log *slog.Logger, c storeConfig, s slashing.Store) {
	ss, ok := s.(storeSummary)
	if !ok {
		log.Info("slashing protection database opened", "store", c.describe())
		return
	}
	sum, err := ss.Summary(ctx)
	if err != nil {
		log.Warn("slashing protection database opened; counting its records failed", "store", c.describe(), "err", err)
		return
	}
	verb := "opened"
	if sum.Created {
		verb = "CREATED (new, empty)"
	}
	log.Info("slashing protection database "+verb, "store", c.describe(), "validators", sum.Validators,
		"blocks", sum.Blocks, "attestations", sum.Attestations)
}

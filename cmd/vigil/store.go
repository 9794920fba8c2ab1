package main

import (
	"context"
	"flag"
	"fmt"
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
}

// storeFlags registers the database flags shared by serve and the slashing subcommands.
func storeFlags(fs *flag.FlagSet, c *storeConfig, getenv func(string) string) {
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(getenv), "directory of the embedded slashing database, vigil.ports and keymanager data")
	fs.StringVar(&c.dbPath, "slashing-db-path", "", "embedded slashing-protection database file (default <data-dir>/slashing-protection.sqlite)")
	fs.StringVar(&c.dbURL, "slashing-protection-db-url", "", "Postgres URL of a shared slashing-protection database (instead of the embedded one); set it through VIGIL_SLASHING_PROTECTION_DB_URL or --config-file so a password stays out of the process list")
	fs.BoolVar(&c.migrate, "slashing-protection-db-migrate", true, "run Postgres schema migrations at start (off: run `vigil slashing migrate` yourself)")
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
		return "postgres " + redactURL(c.dbURL)
	}
	return "sqlite " + c.sqlitePath()
}

// openStore opens the configured store. mustExist refuses to create a new SQLite file (export).
func openStore(ctx context.Context, c storeConfig, mustExist bool) (slashing.Store, error) {
	if c.dbURL != "" {
		return openPostgres(ctx, c)
	}
	path := c.sqlitePath()
	if mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("slashing-protection database %s: %w", path, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("slashing-protection database %s: %w", path, err)
	}
	return s, nil
}

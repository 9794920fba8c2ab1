package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/vigil-signer/vigil/slashing"
)

// applicationID marks a SQLite file as a Vigil slashing-protection database
// (the application_id field of the SQLite header, "Vigl").
const applicationID = 0x5669676c

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations are the embedded schema migrations, in version order:
// migrations/NNNN_name.sql brings the schema from version NNNN-1 to NNNN.
var migrations = slashing.MustLoadMigrations(migrationFS, "migrations")

// SchemaVersion is the schema version this code creates and understands.
var SchemaVersion = len(migrations)

// checkOwnership refuses a database that belongs to another application: a
// file with another application_id, or tables but no Vigil application_id.
func checkOwnership(ctx context.Context, db *sql.DB) error {
	var appID int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return classifyOpenError("reading the database header", err)
	}
	if appID == applicationID {
		return nil
	}
	if appID != 0 {
		return fmt.Errorf("%w: application_id is %#x, not Vigil's %#x", ErrForeignDatabase, appID, applicationID)
	}
	var tables int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&tables); err != nil {
		return classifyOpenError("reading the schema", err)
	}
	if tables != 0 {
		return fmt.Errorf("%w: the file has %d schema objects but no Vigil application_id", ErrForeignDatabase, tables)
	}
	return nil
}

// migrate brings the schema up to SchemaVersion, one transaction per
// migration, and refuses a database newer than this code.
func migrate(ctx context.Context, db *sql.DB) error {
	for {
		done, err := migrateOne(ctx, db)
		if err != nil || done {
			return err
		}
	}
}

func migrateOne(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (DSN _txlock)
	if err != nil {
		return false, classifyOpenError("starting the migration transaction", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		id      INTEGER PRIMARY KEY CHECK (id = 1),
		version INTEGER NOT NULL
	)`); err != nil {
		return false, classifyOpenError("creating schema_version", err)
	}
	var v int
	switch err := tx.QueryRowContext(ctx, "SELECT version FROM schema_version WHERE id = 1").Scan(&v); {
	case err == sql.ErrNoRows:
		v = 0
	case err != nil:
		return false, classifyOpenError("reading schema_version", err)
	}
	if v > SchemaVersion {
		return false, fmt.Errorf("%w: the database has schema version %d, this Vigil knows up to %d (upgrade Vigil)", ErrSchemaTooNew, v, SchemaVersion)
	}
	if v == SchemaVersion {
		return true, classifyOpenError("committing", tx.Commit())
	}
	m := migrations[v]
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (id, version) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version`, m.Version); err != nil {
		return false, fmt.Errorf("sqlite: migration %s: recording the version: %w", m.Name, err)
	}
	if v == 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return false, fmt.Errorf("sqlite: setting application_id: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite: migration %s: commit: %w", m.Name, err)
	}
	return false, nil
}

// schemaVersion reads the schema version without changing anything: 0 for a file that holds no
// schema yet.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var has int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").Scan(&has); err != nil {
		return 0, classifyOpenError("reading the schema", err)
	}
	if has == 0 {
		return 0, nil
	}
	var v int
	switch err := db.QueryRowContext(ctx, "SELECT version FROM schema_version WHERE id = 1").Scan(&v); {
	case err == sql.ErrNoRows:
		return 0, nil
	case err != nil:
		return 0, classifyOpenError("reading schema_version", err)
	}
	return v, nil
}

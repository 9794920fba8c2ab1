package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations are the embedded schema migrations, in version order:
// migrations/NNNN_name.sql brings the schema from version NNNN-1 to NNNN.
var migrations = slashing.MustLoadMigrations(migrationFS, "migrations")

// SchemaVersion is the schema version this code creates and understands.
var SchemaVersion = len(migrations)

// functionsSQL is the current definition of every function of the schema
// (functions.sql): CREATE OR REPLACE statements, idempotent, applied after
// the last migration in its transaction (see migrateOne).
//
//go:embed functions.sql
var functionsSQL string

// applicationName marks a schema as Vigil's (schema_version.application).
const applicationName = "vigil-slashing-protection"

// migrationLock is the session-level advisory lock (two-integer form) that
// serialises migrations of every process sharing the database.
const (
	lockNamespaceMigrate = 1447493632 // 0x56470000
	lockNamespaceBlock   = 1447493633 // as in the migrations
	lockNamespaceAtt     = 1447493634
)

// Migrate brings the schema at url up to SchemaVersion, creating it in an
// empty database, and returns. MigrateWithOptions without Options.Create
// refuses an empty database (slashing.ErrNotInitialized); that is what
// `vigil slashing migrate` runs. Open runs it too unless
// Options.DisableMigrations is set. Concurrent migrations by several
// processes are serialised by a session-level advisory lock; the later ones
// find the work done. A schema newer than this code is refused
// (ErrSchemaTooNew), a schema holding other tables too (ErrForeignDatabase).
func Migrate(ctx context.Context, url string) error {
	return MigrateWithOptions(ctx, url, Options{Create: true})
}

// MigrateWithOptions is Migrate for a store opened with opts (Schema and the
// connection settings are used).
func MigrateWithOptions(ctx context.Context, url string, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()
	cfg, err := connConfig(url, opts, nil)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return unavailable("connecting for migrations", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !opts.Create {
		if v, err := schemaVersion(ctx, conn); err != nil {
			return err
		} else if v == 0 {
			return notInitialized(cfg)
		}
	}
	return migrate(ctx, conn, opts.Schema)
}

// migrate runs the migrations on conn under the migration lock. The lock is
// session-level: if unlocking fails the caller must close conn (closing
// releases it).
func migrate(ctx context.Context, conn *pgx.Conn, schema string) error {
	return migrateTo(ctx, conn, schema, SchemaVersion, true)
}

// migrateTo is migrate up to version target (see migrateOne).
func migrateTo(ctx context.Context, conn *pgx.Conn, schema string, target int, functions bool) (err error) {
	// A migration of a large database can take long: wait for the lock (and
	// run the DDL) bounded by ctx only, not by the store's timeouts.
	if _, err := conn.Exec(ctx, "SET lock_timeout = 0"); err != nil {
		return unavailable("migrating", err)
	}
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return unavailable("migrating", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, 0)", lockNamespaceMigrate); err != nil {
		return unavailable("waiting for the migration lock", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, 0)", lockNamespaceMigrate); uerr != nil && err == nil {
			err = unavailable("releasing the migration lock", uerr)
		}
	}()
	if schema != "" {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return unavailable("creating schema "+schema, err)
		}
	}
	for {
		done, err := migrateOne(ctx, conn, target, functions)
		if err != nil || done {
			return err
		}
	}
}

// schemaVersion reads the version of the schema on conn's search_path:
// 0 for an empty schema; ErrForeignDatabase for a schema with other tables.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (int, error) {
	var hasVersion bool
	var others int
	err := q.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_version'),
			(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))`).Scan(&hasVersion, &others)
	if err != nil {
		return 0, unavailable("reading the schema", err)
	}
	if !hasVersion {
		if others != 0 {
			return 0, fmt.Errorf("%w: the schema has %d tables but no Vigil schema_version (use an empty database or Options.Schema)", ErrForeignDatabase, others)
		}
		return 0, nil
	}
	var app string
	var v int
	switch err := q.QueryRow(ctx, "SELECT application, version FROM schema_version WHERE id = 1").Scan(&app, &v); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("%w: schema_version has no row", ErrForeignDatabase)
	case err != nil:
		var pe interface{ SQLState() string }
		if errors.As(err, &pe) && (pe.SQLState() == "42703" || pe.SQLState() == "42P01") { // undefined column/table
			return 0, fmt.Errorf("%w: schema_version is not Vigil's: %v", ErrForeignDatabase, err)
		}
		return 0, unavailable("reading schema_version", err)
	case app != applicationName:
		return 0, fmt.Errorf("%w: schema_version belongs to %q", ErrForeignDatabase, app)
	}
	return v, nil
}

func checkVersion(v int) error {
	if v > SchemaVersion {
		return fmt.Errorf("%w: the database has schema version %d, this Vigil knows up to %d (upgrade Vigil)", ErrSchemaTooNew, v, SchemaVersion)
	}
	return nil
}

// migrateOne applies the migration after the schema's version, in one
// transaction, unless the schema is at version target (done). With
// functions, the transaction of migration SchemaVersion also applies
// functionsSQL, so every database that ran a migration ends with the
// functions of functions.sql; a database found at SchemaVersion is left
// alone (a function change comes with a migration: functions.sql). Tests
// pass a lower target and no functions to build a database as an older
// Vigil left it.
func migrateOne(ctx context.Context, conn *pgx.Conn, target int, functions bool) (done bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, unavailable("starting the migration transaction", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if err := checkVersion(v); err != nil {
		return false, err
	}
	if v >= target {
		return true, unavailable("committing", tx.Commit(ctx))
	}
	if v == 0 {
		if _, err := tx.Exec(ctx, `CREATE TABLE schema_version (
			id          smallint PRIMARY KEY CHECK (id = 1),
			application text     NOT NULL,
			version     integer  NOT NULL
		)`); err != nil {
			return false, unavailable("creating schema_version", err)
		}
	}
	m := migrations[v]
	// Simple protocol: a migration file holds many statements.
	if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return false, fmt.Errorf("postgres: migration %s: %w", m.Name, unavailable("migrating", err))
	}
	if functions && m.Version == SchemaVersion {
		if _, err := tx.Exec(ctx, functionsSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			return false, fmt.Errorf("postgres: functions.sql: %w", unavailable("migrating", err))
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_version (id, application, version) VALUES (1, $1, $2)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version`, applicationName, m.Version); err != nil {
		return false, unavailable("recording the schema version", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("postgres: migration %s: %w", m.Name, unavailable("commit", err))
	}
	return false, nil
}

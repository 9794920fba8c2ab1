package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Exported for the external tests.
const (
	LockNamespaceBlock = lockNamespaceBlock
	LockNamespaceAtt   = lockNamespaceAtt
)

// FunctionsSQL is functions.sql.
var FunctionsSQL = functionsSQL

// MigrateLegacy brings the schema at url (Options.Schema = schema) to
// version target with the migration files alone, as a Vigil of that version
// left it (functions.sql is not applied).
func MigrateLegacy(ctx context.Context, url, schema string, target int) error {
	opts := Options{Create: true, Schema: schema}.withDefaults()
	cfg, err := connConfig(url, opts, nil)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrateTo(ctx, conn, schema, target, false)
}

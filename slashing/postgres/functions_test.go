package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// catalogSchema is the schema the catalog tests migrate (one database per case, so that every
// dump names the same schema).
const catalogSchema = "vigil"

// catalog dumps what a migrated schema is made of: every function (pg_get_functiondef), column,
// constraint, index and trigger, and the schema version, keyed by object.
func catalog(t *testing.T, url string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn := sql(t, url)
	out := map[string]string{}
	queries := []struct{ kind, q string }{
		{"function", `SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
			FROM pg_proc p WHERE p.pronamespace = $1::regnamespace`},
		{"column", `SELECT c.relname || '.' || a.attname,
				concat_ws(' ', c.relkind, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
					pg_get_expr(d.adbin, d.adrelid))
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
				AND a.attnum > 0 AND NOT a.attisdropped`},
		{"constraint", `SELECT conrelid::regclass::text || ' ' || conname, pg_get_constraintdef(oid)
			FROM pg_constraint WHERE connamespace = $1::regnamespace`},
		{"index", `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1`},
		{"trigger", `SELECT tgrelid::regclass::text || ' ' || tgname, pg_get_triggerdef(oid)
			FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN
				(SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace)`},
		{"sequence", `SELECT relname, relkind::text FROM pg_class
			WHERE relnamespace = $1::regnamespace AND relkind NOT IN ('r', 'p', 'v', 'm', 'f', 'i')`},
		{"version", `SELECT application, version::text FROM ` + pgx.Identifier{catalogSchema, "schema_version"}.Sanitize()},
	}
	for _, q := range queries {
		var args []any
		if strings.Contains(q.q, "$1") {
			args = append(args, catalogSchema)
		}
		rows, err := conn.Query(ctx, q.q, args...)
		if err != nil {
			t.Fatalf("catalog %s: %v", q.kind, err)
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatalf("catalog %s: %v", q.kind, err)
			}
			out[q.kind+" "+k] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("catalog %s: %v", q.kind, err)
		}
	}
	return out
}

// sameCatalog fails the test with every object that differs between want and got.
func sameCatalog(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !wok:
			t.Errorf("%s: extra %s:\n%s", what, k, g)
		case !gok:
			t.Errorf("%s: missing %s:\n%s", what, k, w)
		case w != g:
			t.Errorf("%s: %s differs:\n--- want\n%s\n--- got\n%s", what, k, w, g)
		}
	}
}

// TestFunctionsSQL: functions.sql is the live definition of every function. A fresh database and
// one upgraded by the current code from every older schema version end with identical
// functions, tables, indexes, constraints and triggers, and those are exactly what the
// migration files alone produce (so databases already at the current version, which
// functions.sql never touches, run the same functions). functions.sql defines every function of
// the schema and applying it again changes nothing.
func TestFunctionsSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := postgres.Options{Create: true, Schema: catalogSchema}

	freshURL := pgtest.NewDatabase(t)
	if err := postgres.MigrateWithOptions(ctx, freshURL, opts); err != nil {
		t.Fatal(err)
	}
	want := catalog(t, freshURL)

	// Every function of the schema is defined in functions.sql, and nothing else is.
	var inFile, inSchema []string
	for _, m := range regexp.MustCompile(`(?m)^CREATE OR REPLACE FUNCTION (\w+)\(`).FindAllStringSubmatch(postgres.FunctionsSQL, -1) {
		inFile = append(inFile, catalogSchema+"."+m[1])
	}
	for k := range want {
		if name, ok := strings.CutPrefix(k, "function "); ok {
			name, _, _ = strings.Cut(name, "(")
			inSchema = append(inSchema, name)
		}
	}
	slices.Sort(inFile)
	slices.Sort(inSchema)
	if !slices.Equal(inFile, inSchema) {
		t.Errorf("functions.sql defines %v,\nthe schema has %v", inFile, inSchema)
	}
	if len(inSchema) == 0 {
		t.Fatal("no functions in the schema")
	}

	// The migration files alone, as a Vigil of the current version left a database: the same.
	legacyURL := pgtest.NewDatabase(t)
	if err := postgres.MigrateLegacy(ctx, legacyURL, catalogSchema, postgres.SchemaVersion); err != nil {
		t.Fatal(err)
	}
	sameCatalog(t, "migrations only", want, catalog(t, legacyURL))
	// Opening it changes nothing (a database at the current version is left alone).
	s := open(t, legacyURL, opts)
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	sameCatalog(t, "migrations only, then opened", want, catalog(t, legacyURL))

	// Upgraded by Open from every older version.
	for k := 1; k < postgres.SchemaVersion; k++ {
		url := pgtest.NewDatabase(t)
		if err := postgres.MigrateLegacy(ctx, url, catalogSchema, k); err != nil {
			t.Fatalf("version %d: %v", k, err)
		}
		s := open(t, url, opts)
		if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
			t.Fatalf("version %d: %v", k, err)
		}
		sameCatalog(t, fmt.Sprintf("upgraded from version %d", k), want, catalog(t, url))
	}

	// Idempotent: applying functions.sql twice more changes nothing.
	conn := sql(t, freshURL)
	for range 2 {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+pgx.Identifier{catalogSchema}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, postgres.FunctionsSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("functions.sql again: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sameCatalog(t, "functions.sql applied again", want, catalog(t, freshURL))
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

// A Postgres connection string can carry a password in three places: the URL's userinfo
// (postgres://u:pw@h/db), a query parameter (?password=pw) and a key=value DSN
// (host=h password=pw). None of them may reach a log, an error or stdout: the database is
// described by host, port, database and user only (describeDSN), a connection string that does
// not parse is reported without the parser's text (it quotes the input), and every other error
// from opening the store has the password scrubbed out (openPostgres).

// openPostgres opens the shared Postgres store (migrating it unless disabled).
func openPostgres(ctx context.Context, c storeConfig, create bool) (slashing.Store, error) {
	if _, err := pgx.ParseConfig(c.dbURL); err != nil {
		return nil, dsnParseError(err)
	}
	s, err := postgres.Open(ctx, c.dbURL, postgres.Options{DisableMigrations: !c.migrate, Create: create})
	if err != nil {
		return nil, &scrubbedError{msg: "slashing-protection database " + describeDSN(c.dbURL) + ": " + scrubDSN(err.Error(), c.dbURL), err: err}
	}
	return s, nil
}

// scrubbedError is an error whose text has the connection string's secrets removed; errors.Is
// and errors.As still see the original.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// dsnParseError reports a connection string that does not parse. pgx's message quotes the
// input, redacted only on a best-effort basis, and the wrapped error (net/url's) quotes it
// verbatim, so neither is shown; a missing TLS file (a path, not a secret) is.
func dsnParseError(err error) error {
	msg := "--slashing-protection-db-url: the connection string does not parse as a postgres:// URL or a key=value DSN " +
		"(the parser's message is withheld because it can contain the password); check its syntax, and percent-encode " +
		"@ : / ? # % in the user name and password of a URL"
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg += "; " + pe.Error()
	}
	return usagef("%s", msg)
}

// describeDSN names a Postgres database by host, port, database and user: never the password,
// nor any other parameter.
func describeDSN(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "postgres (connection string does not parse)"
	}
	hosts := []string{net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	for _, fb := range cfg.Fallbacks {
		if h := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))); !contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	out := fmt.Sprintf("postgres host=%s port=%d database=%s user=%s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
	if len(hosts) > 1 {
		out += fmt.Sprintf(" (and %d more hosts)", len(hosts)-1)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var (
	kvPasswordValueRE = regexp.MustCompile(`(?:^|\s)(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
	queryPasswordRE   = regexp.MustCompile(`[?&](?:ssl)?password=([^&#\s]*)`)
)

// dsnSecrets are the strings of a connection string that may be secret: the password as pgx
// parses it, and every candidate a best-effort scan of the raw text finds (userinfo, query and
// key=value forms, raw and decoded), so that an unparsable string is covered too.
func dsnSecrets(dsn string) []string {
	var out []string
	var add func(s string)
	add = func(s string) {
		s = strings.TrimSpace(s)
		if s == "" || contains(out, s) {
			return
		}
		out = append(out, s)
		if d, err := url.QueryUnescape(s); err == nil && d != s {
			add(d)
		}
		// What a parser may have cut it to: without quotes, before a character that ends a URL
		// component or starts an escape.
		if t := strings.Trim(s, `'"`); t != s {
			add(t)
		}
		if i := strings.IndexAny(s, "#?%/@ "); i >= 3 {
			add(s[:i])
		}
	}
	if cfg, err := pgconn.ParseConfig(dsn); err == nil {
		add(cfg.Password)
		if p := cfg.RuntimeParams["sslpassword"]; p != "" {
			add(p)
		}
	}
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		authority := rest
		if i := strings.Index(authority, "/"); i >= 0 {
			authority = authority[:i]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
				add(pw)
			}
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 { // a password with a '/' in it
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
			}
		}
	}
	for _, m := range queryPasswordRE.FindAllStringSubmatch(dsn, -1) {
		add(m[1])
	}
	for _, m := range kvPasswordValueRE.FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		add(v)
		if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2 {
			add(strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v[1 : len(v)-1]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// scrubDSN removes the connection string and its secrets from msg.
func scrubDSN(msg, dsn string) string {
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "<connection string>")
	}
	for _, s := range dsnSecrets(dsn) {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// dsnFlag makes --slashing-protection-db-url accept Web3Signer's JDBC form and keeps its value
// out of every message (a bad value is reported once all layers are applied, by name only).
func dsnFlag(f *flag.Flag) {
	nv := wrapName(f)
	nv.secret = true
	var jdbcErr error
	nv.conv = func(s string) (string, error) {
		out, err := fromJDBC(s)
		jdbcErr = err
		if err != nil {
			return s, nil
		}
		return out, nil
	}
	nv.finish = func() error { return jdbcErr }
}

// jdbcParams maps pgjdbc connection parameters to libpq/pgx ones ("" drops a pgjdbc-only tuning
// parameter that has no effect on what is stored).
var jdbcParams = map[string]string{
	"user": "user", "password": "password", "sslmode": "sslmode", "sslcert": "sslcert", "sslkey": "sslkey",
	"sslrootcert": "sslrootcert", "sslpassword": "sslpassword", "ApplicationName": "application_name",
	"connectTimeout": "connect_timeout", "currentSchema": "search_path",
	"options":       "options",
	"socketTimeout": "", "loginTimeout": "", "tcpKeepAlive": "", "prepareThreshold": "", "reWriteBatchedInserts": "",
	"loggerLevel": "", "loggerFile": "", "ssl": "",
}

// fromJDBC turns Web3Signer's jdbc:postgresql://host[:port]/db[?params] (or
// jdbc:postgresql:db) into a postgres URL; any other string is returned unchanged. Errors never
// quote the URL.
func fromJDBC(s string) (string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "jdbc:")
	if !ok {
		return s, nil
	}
	switch {
	case strings.HasPrefix(rest, "postgresql://"):
	case strings.HasPrefix(rest, "postgresql:"): // jdbc:postgresql:database, jdbc:postgresql:/
		rest = "postgresql://localhost/" + strings.TrimPrefix(strings.TrimPrefix(rest, "postgresql:"), "/")
	default:
		return "", usagef("--slashing-protection-db-url: only jdbc:postgresql: JDBC URLs are supported (Vigil's shared store is Postgres)")
	}
	base, rawQuery, hasQuery := strings.Cut(rest, "?")
	if !hasQuery {
		return rest, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", usagef("--slashing-protection-db-url: the JDBC URL's parameters do not parse")
	}
	out := url.Values{}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		to, known := jdbcParams[k]
		switch {
		case strings.HasPrefix(k, "pool_"):
			to, known = k, true
		case !known:
			return "", usagef("--slashing-protection-db-url: JDBC parameter %q has no Postgres equivalent in Vigil; remove it", k)
		}
		if k == "ssl" && q.Get(k) == "true" && !q.Has("sslmode") {
			out.Set("sslmode", "verify-full") // pgjdbc's meaning of ssl=true
		}
		if to != "" {
			out[to] = q[k]
		}
	}
	if len(out) == 0 {
		return base, nil
	}
	return base + "?" + out.Encode(), nil
}

// storeMetrics exports a store's own counters, where it keeps any.
func storeMetrics(m *api.Metrics, s slashing.Store) {
	if sq, ok := s.(*sqlite.Store); ok {
		m.CounterFunc("vigil_slashing_db_commits_total",
			"Write transactions committed to the embedded slashing database (each one an fsync; group commit puts many signatures in one).",
			func() float64 { return float64(sq.Stats().Commits) })
	}
	if pg, ok := s.(*postgres.Store); ok {
		m.CounterFunc("vigil_slashing_db_round_trips_total",
			"Requests sent to the Postgres slashing database (one per block or attestation signature).",
			func() float64 { return float64(pg.Stats().RoundTrips) })
		m.CounterFunc("vigil_slashing_db_fenced_total",
			"Slashing-database writes refused because this instance's leader term is stale.",
			func() float64 { return float64(pg.Stats().Fenced) })
	}
}

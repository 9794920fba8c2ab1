package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigil-signer/vigil/slashing"
)

var _ slashing.Store = (*Store)(nil)

// Options tunes the store. The zero value is the recommended configuration
// for a single writer at term 1.
type Options struct {
	// Term is the fencing term this store writes with (default 1; a new
	// database starts at term 1): every write commits only while it equals
	// the database's term, else it fails with ErrFenced. SetTerm changes
	// both.
	Term int64
	// Schema, when set, is the schema the store's tables live in (created
	// by the migrations; every connection's search_path is set to it).
	// Empty: the connection's default (normally public).
	Schema string
	// MaxConns is the size of the connection pool (default 16). A URL
	// parameter pool_max_conns is used when this is zero.
	MaxConns int32
	// ConnectTimeout bounds establishing a connection (default 5s) when the
	// URL has no connect_timeout. Calls also respect their ctx deadline.
	ConnectTimeout time.Duration
	// StatementTimeout is the server-side bound of one statement (default
	// 30s): a safety net for callers without a deadline.
	StatementTimeout time.Duration
	// LockTimeout bounds waiting for a lock (a key's lock held by another
	// instance, the fence during SetTerm; default 10s).
	LockTimeout time.Duration
	// DisableMigrations makes Open only check the schema version (an older
	// schema fails with ErrSchemaTooOld, a newer one with ErrSchemaTooNew):
	// for deployments that run `vigil slashing migrate` as a separate step.
	DisableMigrations bool
	// Create lets Open (and MigrateWithOptions) create the schema in a
	// database that holds none yet. Without it an empty database is refused
	// with slashing.ErrNotInitialized: a mistyped database name must not
	// become a fresh, empty slashing history (vigil serve
	// --init-slashing-protection, vigil slashing init).
	Create bool
	// ImportIdleTimeout is how long after its last chunk a chunked import still counts as
	// running (default slashing.DefaultImportIdleTimeout; see "Chunked imports"), on the
	// database clock.
	ImportIdleTimeout time.Duration
}

// writeState is a write that failed because the server cannot write.
type writeState struct{ err error }

// Validate reports the first bad field.
func (o Options) Validate() error {
	switch {
	case o.Term < 0:
		return errors.New("postgres: Options.Term must not be negative")
	case o.MaxConns < 0:
		return errors.New("postgres: Options.MaxConns must not be negative")
	case o.ConnectTimeout < 0 || o.StatementTimeout < 0 || o.LockTimeout < 0 || o.ImportIdleTimeout < 0:
		return errors.New("postgres: Options timeouts must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Term == 0 {
		o.Term = 1
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.StatementTimeout == 0 {
		o.StatementTimeout = 30 * time.Second
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 10 * time.Second
	}
	if o.ImportIdleTimeout == 0 {
		o.ImportIdleTimeout = slashing.DefaultImportIdleTimeout
	}
	return o
}

// Stats are cumulative counters of a store.
type Stats struct {
	// RoundTrips counts the requests the store's connections sent to the
	// server (each is answered before the next is sent): signatures,
	// imports, exports, pings, and connection setup (startup, TLS and
	// authentication messages, statement preparation) when the pool opens
	// a connection. A signature is one.
	RoundTrips uint64
	// Signs counts sign requests the database answered (recorded,
	// repeated, refused or fenced).
	Signs uint64
	// Recorded counts new block and attestation records.
	Recorded uint64
	// Refused counts sign requests refused by slashing protection.
	Refused uint64
	// Fenced counts writes refused because their term was stale.
	Fenced uint64
}

// Store is the PostgreSQL slashing-protection store. Safe for concurrent use
// by many goroutines and by many processes sharing the database.
type Store struct {
	opts Options
	pool *pgxpool.Pool
	term atomic.Int64
	gvr  atomic.Pointer[phase0.Root] // pinned root, once known (immutable)

	closed    atomic.Bool
	closeOnce sync.Once

	created bool // Open created the schema

	writeOK    atomic.Pointer[writeState] // the last write failure for health; nil: none since the last success
	importIdle atomic.Int64               // import idle timeout, nanoseconds

	roundTrips, signs, recorded, refused, fencedN atomic.Uint64
}

// notInitialized is ErrNotInitialized naming the database (never its password).
func notInitialized(c *pgx.ConnConfig) error {
	return fmt.Errorf("%w: database %q on %s:%d holds no Vigil schema (is the database name right?)", slashing.ErrNotInitialized, c.Database, c.Host, c.Port)
}

// Created reports whether Open created the schema.
func (s *Store) Created() bool { return s.created }

// Summary counts the records the database holds.
func (s *Store) Summary(ctx context.Context) (slashing.Summary, error) {
	sum := slashing.Summary{Created: s.created}
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM validators),
		(SELECT count(*) FROM signed_blocks),
		(SELECT count(*) FROM signed_attestations)`).Scan(&sum.Validators, &sum.Blocks, &sum.Attestations)
	if err != nil {
		return sum, unavailable("counting records", err)
	}
	return sum, nil
}

// Prepared statement names (prepared on every new connection, so that a
// signature is Bind/Execute/Sync: one round trip, no describe).
const (
	stmtSignBlock = "vigil_sign_block"
	stmtSignAtt   = "vigil_sign_attestation"
)

var prepared = map[string]string{
	stmtSignBlock: "SELECT verdict, x1, x2, xroot FROM vigil_sign_block($1, $2, $3, $4, $5)",
	stmtSignAtt:   "SELECT verdict, x1, x2, xroot FROM vigil_sign_attestation($1, $2, $3, $4, $5, $6)",
}

// configure applies opts to a connection configuration parsed from the URL.
func configure(cfg *pgx.ConnConfig, opts Options, roundTrips *atomic.Uint64) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = opts.ConnectTimeout
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "vigil"
	}
	// The write functions need READ COMMITTED (they refuse to run
	// otherwise): do not inherit another default from the server.
	cfg.RuntimeParams["default_transaction_isolation"] = "read committed"
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(opts.LockTimeout.Milliseconds(), 10)
	if opts.Schema != "" {
		cfg.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	cfg.DialFunc = dialer(roundTrips, 5*time.Minute)
	cfg.OnNotice = onNotice // conn.go: a commit whose synchronous replication was cancelled
}

func connConfig(url string, opts Options, roundTrips *atomic.Uint64) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad database URL: %w", err)
	}
	if roundTrips == nil {
		roundTrips = new(atomic.Uint64)
	}
	configure(cfg, opts, roundTrips)
	return cfg, nil
}

// Open connects to the database at url (a postgres:// URL or key=value
// connection string), runs the embedded migrations (see Migrate) unless
// Options.DisableMigrations, and returns the store. A server that cannot be
// reached fails Open with an error wrapping slashing.ErrUnavailable.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: bad database URL: %w", err)
	}
	s := &Store{opts: opts}
	s.term.Store(opts.Term)
	s.importIdle.Store(int64(opts.ImportIdleTimeout))
	configure(pcfg.ConnConfig, opts, &s.roundTrips)
	if opts.MaxConns > 0 {
		pcfg.MaxConns = opts.MaxConns
	} else if !urlSetsMaxConns(url) {
		pcfg.MaxConns = 16
	}
	pcfg.MinConns = 0
	// No ping before use (it would be a second round trip per signature);
	// dead idle connections are found by peeking at the socket instead.
	pcfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pcfg.PrepareConn = func(_ context.Context, c *pgx.Conn) (bool, error) { return idleConnUsable(c), nil }
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for name, sql := range prepared {
			if _, err := c.Prepare(ctx, name, sql); err != nil {
				return fmt.Errorf("preparing %s: %w", name, err)
			}
		}
		return nil
	}

	// Schema: migrate (or check) on a connection of its own.
	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig.Copy())
	if err != nil {
		return nil, unavailable("connecting", err)
	}
	var v int
	v, err = schemaVersion(ctx, conn)
	switch {
	case err != nil:
	case v == 0 && !opts.Create:
		err = notInitialized(pcfg.ConnConfig)
	case opts.DisableMigrations:
		if err = checkVersion(v); err == nil && v < SchemaVersion {
			err = fmt.Errorf("%w: the database has schema version %d, this Vigil needs %d", ErrSchemaTooOld, v, SchemaVersion)
		}
	default:
		s.created = v == 0
		err = migrate(ctx, conn, opts.Schema)
	}
	_ = conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, unavailable("creating the connection pool", err)
	}
	s.pool = pool
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if _, _, err := s.GenesisValidatorsRoot(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func urlSetsMaxConns(url string) bool { return strings.Contains(url, "pool_max_conns") }

// Stats returns the store's cumulative counters.
func (s *Store) Stats() Stats {
	return Stats{
		RoundTrips: s.roundTrips.Load(),
		Signs:      s.signs.Load(),
		Recorded:   s.recorded.Load(),
		Refused:    s.refused.Load(),
		Fenced:     s.fencedN.Load(),
	}
}

// Term is the fencing term the store writes with.
func (s *Store) Term() int64 { return s.term.Load() }

// Close closes the pool (waiting for calls in progress). Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.pool.Close()
	})
	return nil
}

// enter refuses calls on a done context or a closed store.
func (s *Store) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return unavailable(op, errClosed)
	}
	return nil
}

// Ping checks that the database answers and holds this code's schema.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(ctx, "ping"); err != nil {
		return err
	}
	var v int
	var recovery bool
	var readOnly string
	if err := s.pool.QueryRow(ctx, "SELECT version, pg_is_in_recovery(), current_setting('transaction_read_only') FROM schema_version WHERE id = 1").Scan(&v, &recovery, &readOnly); err != nil {
		return unavailable("ping", err)
	}
	if v != SchemaVersion {
		return fmt.Errorf("%w: postgres: ping: schema version is %d, this Vigil uses %d", slashing.ErrUnavailable, v, SchemaVersion)
	}
	switch {
	case recovery:
		return fmt.Errorf("%w: postgres: the server is a read-only hot standby (pg_is_in_recovery): Vigil records every signature before releasing it, so point it at the primary", slashing.ErrUnavailable)
	case readOnly == "on":
		return fmt.Errorf("%w: postgres: transactions are read-only (default_transaction_read_only): Vigil records every signature before releasing it", slashing.ErrUnavailable)
	}
	if s.writeOK.Load() != nil {
		s.probeWrite(ctx) // sign.go: health recovers without traffic
	}
	if w := s.writeOK.Load(); w != nil {
		// Reads work, but the last write failed for a reason of the server (read-only, disk
		// full, I/O error, not replicated): DOWN until a write succeeds.
		return fmt.Errorf("%w: postgres: the last write failed (%v); DOWN until a write succeeds", slashing.ErrUnavailable, w.err)
	}
	return nil
}

// GenesisValidatorsRoot returns the pinned root, ok=false if none yet.
func (s *Store) GenesisValidatorsRoot(ctx context.Context) (phase0.Root, bool, error) {
	if r := s.gvr.Load(); r != nil {
		return *r, true, nil
	}
	if err := s.enter(ctx, "reading the genesis validators root"); err != nil {
		return phase0.Root{}, false, err
	}
	var b []byte
	err := s.pool.QueryRow(ctx, "SELECT genesis_validators_root FROM metadata WHERE id = 1").Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return phase0.Root{}, false, nil
	}
	if err != nil {
		return phase0.Root{}, false, unavailable("reading the genesis validators root", err)
	}
	var r phase0.Root
	if len(b) != len(r) {
		return phase0.Root{}, false, fmt.Errorf("%w: stored genesis validators root has %d bytes", slashing.ErrUnavailable, len(b))
	}
	copy(r[:], b)
	s.gvr.Store(&r)
	return r, true, nil
}

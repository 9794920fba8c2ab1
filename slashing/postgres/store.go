package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
}

// Validate reports the first bad field.
func (o Options) Validate() error {
	switch {
	case o.Term < 0:
		return errors.New("postgres: Options.Term must not be negative")
	case o.MaxConns < 0:
		return errors.New("postgres: Options.MaxConns must not be negative")
	case o.ConnectTimeout < 0 || o.StatementTimeout < 0 || o.LockTimeout < 0:
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
	if err := s.pool.QueryRow(ctx, "SELECT version FROM schema_version WHERE id = 1").Scan(&v); err != nil {
		return unavailable("ping", err)
	}
	if v != SchemaVersion {
		return fmt.Errorf("%w: postgres: ping: schema version is %d, this Vigil uses %d", slashing.ErrUnavailable, v, SchemaVersion)
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

// Verdict codes of the database functions (see migrations/0001_initial.sql and
// 0002_high_watermark.sql).
const (
	verdictRecord      = 0
	verdictRepeat      = 1
	verdictFenced      = 2
	verdictGVR         = 3
	verdictDisabled    = 4
	verdictSourceAfter = 5
	verdictBelowLW     = 6
	verdictDouble      = 7
	verdictSurrounded  = 8
	verdictSurrounding = 9
	verdictAboveHW     = 10
)

type verdict struct {
	code   int16
	x1, x2 *int64
	xroot  []byte
}

// SignBlock checks b against the key's history and records it: one call of
// vigil_sign_block, one round trip, one transaction.
func (s *Store) SignBlock(ctx context.Context, b slashing.Block) error {
	if err := s.enter(ctx, "sign block"); err != nil {
		return err
	}
	term := s.term.Load()
	var v verdict
	err := s.pool.QueryRow(ctx, stmtSignBlock, term, b.Pubkey[:], enc(uint64(b.Slot)), b.SigningRoot[:], b.GenesisValidatorsRoot[:]).
		Scan(&v.code, &v.x1, &v.x2, &v.xroot)
	if err != nil {
		return unavailable("sign block", err)
	}
	s.signs.Add(1)
	return s.count(s.blockVerdict(b, term, v))
}

// SignAttestation checks a against the key's history and records it: one
// call of vigil_sign_attestation, one round trip, one transaction.
func (s *Store) SignAttestation(ctx context.Context, a slashing.Attestation) error {
	if err := s.enter(ctx, "sign attestation"); err != nil {
		return err
	}
	term := s.term.Load()
	var v verdict
	err := s.pool.QueryRow(ctx, stmtSignAtt, term, a.Pubkey[:], enc(uint64(a.SourceEpoch)), enc(uint64(a.TargetEpoch)),
		a.SigningRoot[:], a.GenesisValidatorsRoot[:]).
		Scan(&v.code, &v.x1, &v.x2, &v.xroot)
	if err != nil {
		return unavailable("sign attestation", err)
	}
	s.signs.Add(1)
	return s.count(s.attestationVerdict(a, term, v))
}

func (s *Store) count(err error) error {
	switch {
	case err == nil:
	case errors.Is(err, ErrFenced):
		s.fencedN.Add(1)
	case errors.Is(err, slashing.ErrSlashable):
		s.refused.Add(1)
	}
	return err
}

// blockVerdict turns the database's verdict into the store's answer. The
// refusal itself is built by slashing.CheckBlock from the facts the database
// reported, so its reason and wording are those of every other store; should
// the Go rules disagree with the database's reason (they must not), the
// database's reason wins (it is what was committed).
func (s *Store) blockVerdict(b slashing.Block, term int64, v verdict) error {
	switch v.code {
	case verdictRecord:
		s.recorded.Add(1)
		s.noteGVR(b.GenesisValidatorsRoot)
		return nil
	case verdictRepeat:
		return nil
	case verdictFenced:
		return fenced("sign block", term, deref(v.x1))
	case verdictGVR:
		return gvrRefusal(v.xroot, b.GenesisValidatorsRoot)
	}
	f := slashing.BlockFacts{Enabled: true}
	var want slashing.Reason
	switch v.code {
	case verdictDisabled:
		f.Enabled, want = false, slashing.ValidatorDisabled
	case verdictAboveHW:
		hw := phase0.Slot(dec(deref(v.x1)))
		f.High, want = &hw, slashing.AboveHighWatermark
	case verdictBelowLW:
		lw := phase0.Slot(dec(deref(v.x1)))
		f.LowWatermark, want = &lw, slashing.BelowLowWatermark
	case verdictDouble:
		f.Existing, want = &slashing.SignedBlock{Slot: b.Slot, SigningRoot: rootFrom(v.xroot)}, slashing.DoubleProposal
	default:
		return fmt.Errorf("%w: postgres: sign block: unknown verdict %d", slashing.ErrUnavailable, v.code)
	}
	_, err := slashing.CheckBlock(b, f)
	return refusal(err, want, v.code)
}

func (s *Store) attestationVerdict(a slashing.Attestation, term int64, v verdict) error {
	switch v.code {
	case verdictRecord:
		s.recorded.Add(1)
		s.noteGVR(a.GenesisValidatorsRoot)
		return nil
	case verdictRepeat:
		return nil
	case verdictFenced:
		return fenced("sign attestation", term, deref(v.x1))
	case verdictGVR:
		return gvrRefusal(v.xroot, a.GenesisValidatorsRoot)
	}
	f := slashing.AttestationFacts{Enabled: true}
	var want slashing.Reason
	vote := func() *slashing.SignedAttestation {
		return &slashing.SignedAttestation{SourceEpoch: phase0.Epoch(dec(deref(v.x1))), TargetEpoch: phase0.Epoch(dec(deref(v.x2)))}
	}
	switch v.code {
	case verdictDisabled:
		f.Enabled, want = false, slashing.ValidatorDisabled
	case verdictSourceAfter:
		want = slashing.SourceAfterTarget
	case verdictAboveHW:
		hw := phase0.Epoch(dec(deref(v.x1)))
		f.High, want = &hw, slashing.AboveHighWatermark
	case verdictBelowLW:
		f.LowWatermark = &slashing.AttestationWatermark{Source: phase0.Epoch(dec(deref(v.x1))), Target: phase0.Epoch(dec(deref(v.x2)))}
		want = slashing.BelowLowWatermark
	case verdictDouble:
		f.SameTarget = &slashing.SignedAttestation{SourceEpoch: phase0.Epoch(dec(deref(v.x1))), TargetEpoch: a.TargetEpoch, SigningRoot: rootFrom(v.xroot)}
		want = slashing.DoubleVote
	case verdictSurrounded:
		f.Surrounding, want = vote(), slashing.SurroundedVote
	case verdictSurrounding:
		f.Surrounded, want = vote(), slashing.SurroundingVote
	default:
		return fmt.Errorf("%w: postgres: sign attestation: unknown verdict %d", slashing.ErrUnavailable, v.code)
	}
	_, err := slashing.CheckAttestation(a, f)
	return refusal(err, want, v.code)
}

func refusal(err error, want slashing.Reason, code int16) error {
	var r *slashing.Refusal
	if errors.As(err, &r) && r.Reason == want {
		return err
	}
	return slashing.Refuse(want, "refused by the database (verdict %d; the Go rules say %v)", code, err)
}

func gvrRefusal(pinned []byte, requested phase0.Root) error {
	p := rootFrom(pinned)
	if err := slashing.CheckGenesisValidatorsRoot(p, requested); err != nil {
		return err
	}
	return slashing.Refuse(slashing.GenesisRootMismatch, "refused by the database (pinned root %x)", pinned)
}

func (s *Store) noteGVR(r phase0.Root) {
	if s.gvr.Load() == nil {
		s.gvr.CompareAndSwap(nil, &r)
	}
}

// SetEnabled enables or disables signing for a key (registering it if new),
// in one transaction at the store's term, serialised with the key's
// signatures.
func (s *Store) SetEnabled(ctx context.Context, pubkey phase0.BLSPubKey, enabled bool) error {
	if err := s.enter(ctx, "set enabled"); err != nil {
		return err
	}
	term := s.term.Load()
	var code int16
	var current *int64
	if err := s.pool.QueryRow(ctx, "SELECT verdict, x1 FROM vigil_set_enabled($1, $2, $3)", term, pubkey[:], enabled).Scan(&code, &current); err != nil {
		return unavailable("set enabled", err)
	}
	switch code {
	case verdictRecord:
		return nil
	case verdictFenced:
		s.fencedN.Add(1)
		return fenced("set enabled", term, deref(current))
	}
	return fmt.Errorf("%w: postgres: set enabled: unknown verdict %d", slashing.ErrUnavailable, code)
}

// ImportValidator merges one validator's history in one transaction: a
// one-chunk ImportChunk (import.go).
func (s *Store) ImportValidator(ctx context.Context, gvr phase0.Root, h slashing.ValidatorHistory) error {
	return s.ImportChunk(ctx, gvr, slashing.ImportChunk{Pubkey: h.Pubkey, First: true, Last: true,
		SignedBlocks: h.SignedBlocks, SignedAttestations: h.SignedAttestations, Watermarks: slashing.ImportWatermarks(h)})
}

// SetTerm makes term the database's fencing term and the term this store
// writes with (see the package doc). It waits for every write in flight
// (of every instance) to commit, and once it returns no write with an older
// term can commit. The term never goes down: asking for a term lower than
// the database's fails with ErrFenced (a newer leader exists) and changes
// nothing; asking for the current term is a barrier that changes nothing.
func (s *Store) SetTerm(ctx context.Context, term int64) error {
	if err := s.enter(ctx, "set term"); err != nil {
		return err
	}
	if term <= 0 {
		return fmt.Errorf("postgres: SetTerm(%d): terms are positive", term)
	}
	var current int64
	if err := s.pool.QueryRow(ctx, "SELECT vigil_set_term($1)", term).Scan(&current); err != nil {
		return unavailable("set term", err)
	}
	if current != term {
		return fmt.Errorf("%w: SetTerm(%d): the database's term is already %d", ErrFenced, term, current)
	}
	s.term.Store(term)
	return nil
}

// DatabaseTerm reads the database's current fencing term.
func (s *Store) DatabaseTerm(ctx context.Context) (int64, error) {
	if err := s.enter(ctx, "read term"); err != nil {
		return 0, err
	}
	var t int64
	if err := s.pool.QueryRow(ctx, "SELECT term FROM fence WHERE id = 1").Scan(&t); err != nil {
		return 0, unavailable("read term", err)
	}
	return t, nil
}

// exportChunk is how many keys' records one export query fetches.
const exportChunk = 256

// ExportValidators calls fn for each validator with history (or with a low
// watermark), in pubkey order, from one consistent snapshot (a REPEATABLE
// READ, READ ONLY transaction). Entries follow slashing.ExportHistory.
func (s *Store) ExportValidators(ctx context.Context, pubkeys []phase0.BLSPubKey, fn func(slashing.ValidatorHistory) error) error {
	if err := s.enter(ctx, "export"); err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return unavailable("export", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	type key struct {
		id     int64
		pubkey phase0.BLSPubKey
		lw     slashing.LowWatermarks
	}
	var rows pgx.Rows
	const q = "SELECT id, pubkey, lw_slot, lw_source, lw_target FROM validators"
	if pubkeys == nil {
		rows, err = tx.Query(ctx, q+" ORDER BY pubkey")
	} else {
		sorted := slices.Clone(pubkeys)
		slices.SortFunc(sorted, slashing.ComparePubkeys)
		sorted = slices.Compact(sorted)
		pks := make([][]byte, len(sorted))
		for i := range sorted {
			pks[i] = sorted[i][:]
		}
		rows, err = tx.Query(ctx, q+" WHERE pubkey = ANY($1) ORDER BY pubkey", pks)
	}
	if err != nil {
		return unavailable("export", err)
	}
	var keys []key
	for rows.Next() {
		var k key
		var pk []byte
		var slot, src, tgt *int64
		if err := rows.Scan(&k.id, &pk, &slot, &src, &tgt); err != nil {
			rows.Close()
			return unavailable("export", err)
		}
		copy(k.pubkey[:], pk)
		k.lw = watermarks(slot, src, tgt)
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return unavailable("export", err)
	}
	// Defensive: the export order is bytewise pubkey order whatever the
	// database's collation of bytea.
	slices.SortFunc(keys, func(a, b key) int { return slashing.ComparePubkeys(a.pubkey, b.pubkey) })

	for len(keys) > 0 {
		chunk := keys[:min(exportChunk, len(keys))]
		keys = keys[len(chunk):]
		ids := make([]int64, len(chunk))
		for i, k := range chunk {
			ids[i] = k.id
		}
		blocks := map[int64][]slashing.SignedBlock{}
		rows, err := tx.Query(ctx, "SELECT validator_id, slot, signing_root FROM signed_blocks WHERE validator_id = ANY($1)", ids)
		if err != nil {
			return unavailable("export", err)
		}
		for rows.Next() {
			var id, slot int64
			var root []byte
			if err := rows.Scan(&id, &slot, &root); err != nil {
				rows.Close()
				return unavailable("export", err)
			}
			blocks[id] = append(blocks[id], slashing.SignedBlock{Slot: phase0.Slot(dec(slot)), SigningRoot: rootFrom(root)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("export", err)
		}
		atts := map[int64][]slashing.SignedAttestation{}
		rows, err = tx.Query(ctx, "SELECT validator_id, source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ANY($1)", ids)
		if err != nil {
			return unavailable("export", err)
		}
		for rows.Next() {
			var id, src, tgt int64
			var root []byte
			if err := rows.Scan(&id, &src, &tgt, &root); err != nil {
				rows.Close()
				return unavailable("export", err)
			}
			atts[id] = append(atts[id], slashing.SignedAttestation{SourceEpoch: phase0.Epoch(dec(src)), TargetEpoch: phase0.Epoch(dec(tgt)), SigningRoot: rootFrom(root)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("export", err)
		}
		for _, k := range chunk {
			b, a := blocks[k.id], atts[k.id]
			if len(b) == 0 && len(a) == 0 && k.lw.Slot == nil && k.lw.Attestation == nil {
				continue
			}
			if err := fn(slashing.ExportHistory(k.pubkey, k.lw, b, a)); err != nil {
				return err
			}
		}
	}
	return nil
}

func watermarks(slot, src, tgt *int64) slashing.LowWatermarks {
	var lw slashing.LowWatermarks
	if slot != nil {
		s := phase0.Slot(dec(*slot))
		lw.Slot = &s
	}
	if src != nil && tgt != nil {
		lw.Attestation = &slashing.AttestationWatermark{Source: phase0.Epoch(dec(*src)), Target: phase0.Epoch(dec(*tgt))}
	}
	return lw
}

// enc maps a u64 onto int64 preserving order (see the schema); dec inverts it.
func enc(v uint64) int64 { return int64(v ^ (1 << 63)) }
func dec(v int64) uint64 { return uint64(v) ^ (1 << 63) }

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func rootArg(r *phase0.Root) []byte {
	if r == nil {
		return nil
	}
	return r[:]
}

func rootFrom(b []byte) *phase0.Root {
	if b == nil {
		return nil
	}
	var r phase0.Root
	copy(r[:], b)
	return &r
}

// DisabledKeys lists the keys whose signing is disabled (keymanager DELETE), in pubkey order. A
// key refused only while its chunked import runs is not listed (its state is the one saved).
func (s *Store) DisabledKeys(ctx context.Context) ([]phase0.BLSPubKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT v.pubkey FROM validators v LEFT JOIN import_progress ip ON ip.validator_id = v.id
		WHERE NOT coalesce(ip.was_enabled, v.enabled) ORDER BY v.pubkey`)
	if err != nil {
		return nil, unavailable("listing disabled keys", err)
	}
	defer rows.Close()
	var out []phase0.BLSPubKey
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, unavailable("listing disabled keys", err)
		}
		out = append(out, phase0.BLSPubKey(b))
	}
	return out, unavailable("listing disabled keys", rows.Err())
}

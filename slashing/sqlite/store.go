package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/internal/column"
)

var _ slashing.Store = (*Store)(nil)

// Options tunes the store. The zero value is the recommended configuration.
type Options struct {
	// BusyTimeout is how long a transaction waits for the write lock held by
	// another process (default 5s).
	BusyTimeout time.Duration
	// MaxBatch is the largest number of sign requests committed in one
	// transaction (group commit; default 128). 1 disables grouping.
	MaxBatch int
	// ReadConnections is the size of the read-only connection pool used by
	// GenesisValidatorsRoot, ExportValidators and Ping (default 4).
	ReadConnections int
	// Create makes Open create the database when the file does not exist or
	// holds no schema yet (a zero-byte file). Without it such a database is
	// refused with slashing.ErrNotInitialized: a slashing database that
	// silently starts empty forgets every signature made before, so creating
	// one is an explicit decision (vigil serve --init-slashing-protection,
	// vigil slashing init). New files are created with mode 0600.
	Create bool
	// SkipIntegrityCheck skips SQLite's quick_check at Open. The check reads
	// the whole file (about a second per few hundred MB); skip it only where
	// startup time matters more than finding a damaged file early.
	SkipIntegrityCheck bool
	// ImportIdleTimeout is how long after its last chunk a chunked import still counts as
	// running (default slashing.DefaultImportIdleTimeout; see "Chunked imports").
	ImportIdleTimeout time.Duration
}

// Validate reports the first bad field.
func (o Options) Validate() error {
	switch {
	case o.BusyTimeout < 0:
		return errors.New("sqlite: Options.BusyTimeout must not be negative")
	case o.MaxBatch < 0:
		return errors.New("sqlite: Options.MaxBatch must not be negative")
	case o.ReadConnections < 0:
		return errors.New("sqlite: Options.ReadConnections must not be negative")
	case o.ImportIdleTimeout < 0:
		return errors.New("sqlite: Options.ImportIdleTimeout must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 128
	}
	if o.ReadConnections == 0 {
		o.ReadConnections = 4
	}
	if o.ImportIdleTimeout == 0 {
		o.ImportIdleTimeout = slashing.DefaultImportIdleTimeout
	}
	return o
}

// Stats are cumulative counters of a store (for metrics and benchmarks).
type Stats struct {
	// Commits is the number of write transactions committed.
	Commits uint64
	// SignRequests is the number of sign requests answered from a committed
	// transaction (accepted, repeated or refused).
	SignRequests uint64
	// Recorded is the number of new block and attestation records signed.
	Recorded uint64
}

// Store is the SQLite slashing-protection store. Safe for concurrent use.
type Store struct {
	path string
	opts Options
	wdb  *sql.DB // exactly one connection, used by the writer goroutine (and migrations)
	rdb  *sql.DB // read-only pool
	st   statements

	reqs       chan *request
	closing    chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
	closed     atomic.Bool

	gvr atomic.Pointer[phase0.Root] // pinned root, once known

	// file is the database file as opened: every commit and every Ping check that the path
	// still names it (checkFile), so a file deleted or replaced while open fails closed.
	file    os.FileInfo
	created bool                       // Open created the database
	writeOK atomic.Pointer[writeState] // outcome of the last write (health)

	importIdle atomic.Int64     // import idle timeout, nanoseconds
	now        func() time.Time // the clock of import markers

	commits, signRequests, recorded atomic.Uint64
}

// writeState is the outcome of the latest write transaction; err nil: it succeeded.
type writeState struct{ err error }

// Open opens (creating if needed) the database at path, checks that it is a
// healthy Vigil database, runs the embedded migrations, and starts the writer.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	created, err := prepareFile(abs, opts.Create)
	if err != nil {
		return nil, err
	}
	base := "file:" + (&url.URL{Path: abs}).EscapedPath()
	busy := fmt.Sprintf("_busy_timeout=%d", opts.BusyTimeout.Milliseconds())
	wdb, err := sql.Open("sqlite3", base+"?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate&"+busy)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &Store{path: abs, opts: opts, wdb: wdb, created: created, now: time.Now}
	s.importIdle.Store(int64(opts.ImportIdleTimeout))
	if err := s.open(ctx, base, busy); err != nil {
		_ = wdb.Close()
		if s.rdb != nil {
			_ = s.rdb.Close()
		}
		return nil, fmt.Errorf("sqlite: opening %s: %w", abs, err)
	}
	s.reqs = make(chan *request, 2*opts.MaxBatch)
	s.closing = make(chan struct{})
	s.writerDone = make(chan struct{})
	go s.writer()
	return s, nil
}

func (s *Store) open(ctx context.Context, base, busy string) error {
	if err := s.wdb.PingContext(ctx); err != nil {
		return classifyOpenError("connecting", err)
	}
	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return classifyOpenError("reading journal_mode", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("%w: journal_mode is %q, WAL could not be enabled (network file system?)", slashing.ErrUnavailable, mode)
	}
	var sync int
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return classifyOpenError("reading synchronous", err)
	}
	if sync < 2 { // 2 = FULL, 3 = EXTRA
		return fmt.Errorf("%w: synchronous is %d, want FULL (2)", slashing.ErrUnavailable, sync)
	}
	if err := checkOwnership(ctx, s.wdb); err != nil {
		return err
	}
	if !s.opts.Create {
		if v, err := schemaVersion(ctx, s.wdb); err != nil {
			return err
		} else if v == 0 {
			return fmt.Errorf("%w: %s exists but holds no slashing-protection schema (an empty file)", slashing.ErrNotInitialized, s.path)
		}
	}
	if !s.opts.SkipIntegrityCheck {
		if err := quickCheck(ctx, s.wdb); err != nil {
			return err
		}
	}
	if err := migrate(ctx, s.wdb); err != nil {
		return err
	}
	rdb, err := sql.Open("sqlite3", base+"?_query_only=1&"+busy)
	if err != nil {
		return err
	}
	rdb.SetMaxOpenConns(s.opts.ReadConnections)
	rdb.SetMaxIdleConns(s.opts.ReadConnections)
	s.rdb = rdb
	if err := rdb.PingContext(ctx); err != nil {
		return classifyOpenError("connecting (read pool)", err)
	}
	if err := s.st.prepare(ctx, s.wdb); err != nil {
		return classifyOpenError("preparing statements", err)
	}
	if root, ok, err := s.GenesisValidatorsRoot(ctx); err != nil {
		return err
	} else if ok {
		s.gvr.Store(&root)
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return unavailable("stat", err)
	}
	s.file = fi
	return nil
}

// prepareFile checks the database file before SQLite opens it: a missing file is created (mode
// 0600) only when create is set; a directory, a file this process may not write (SQLite would
// open it read-only and fail every write later) or a directory it may not write (the WAL and
// shared-memory files live beside the database) is refused, naming the cause.
func prepareFile(path string, create bool) (created bool, err error) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return false, fmt.Errorf("sqlite: %s is a directory", path)
	case err == nil:
		if err := syscall.Access(path, 2 /* W_OK */); err != nil {
			return false, fmt.Errorf("%w: %s is not writable (%v): Vigil records every signature before releasing it, so it cannot run on a read-only database", slashing.ErrUnavailable, path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if _, derr := os.Stat(dir); derr != nil {
			return false, fmt.Errorf("%w: database directory %s: %w", slashing.ErrUnavailable, dir, derr)
		}
		if !create {
			return false, fmt.Errorf("%w: no slashing-protection database at %s", slashing.ErrNotInitialized, path)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return false, fmt.Errorf("%w: creating %s: %w", slashing.ErrUnavailable, path, err)
		}
		if err := f.Close(); err != nil {
			return false, fmt.Errorf("%w: creating %s: %w", slashing.ErrUnavailable, path, err)
		}
		created = true
	default: // permission denied on a parent directory, I/O error: say so, not "no such file"
		return false, fmt.Errorf("%w: %s: %w", slashing.ErrUnavailable, path, err)
	}
	if err := syscall.Access(dir, 2|1 /* W_OK|X_OK */); err != nil {
		return false, fmt.Errorf("%w: database directory %s is not writable (%v): SQLite keeps its write-ahead log beside the database", slashing.ErrUnavailable, dir, err)
	}
	return created, nil
}

// checkFile reports an error when the path no longer names the file this store opened: it was
// deleted, or replaced by another file (a restored copy, a new empty file). Writes would then go
// to a file nobody will open again, so the store fails closed until Vigil is restarted on the
// right file.
func (s *Store) checkFile() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("%w: database file %s is gone (%v): restore it and restart Vigil; nothing is signed meanwhile", slashing.ErrUnavailable, s.path, err)
	}
	if !os.SameFile(fi, s.file) {
		return fmt.Errorf("%w: database file %s was replaced by another file while open: restart Vigil to open it; nothing is signed meanwhile", slashing.ErrUnavailable, s.path)
	}
	return nil
}

// noteWrite records the outcome of a write for Ping (health tells the truth about writability).
func (s *Store) noteWrite(err error) {
	if err == nil {
		if p := s.writeOK.Load(); p == nil || p.err == nil {
			return // already healthy: no allocation on the hot path
		}
	}
	s.writeOK.Store(&writeState{err: err})
}

// Created reports whether Open created the database.
func (s *Store) Created() bool { return s.created }

// Summary counts the records the database holds.
func (s *Store) Summary(ctx context.Context) (slashing.Summary, error) {
	var sum slashing.Summary
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM validators),
		(SELECT count(*) FROM signed_blocks),
		(SELECT count(*) FROM signed_attestations)`).Scan(&sum.Validators, &sum.Blocks, &sum.Attestations)
	if err != nil {
		return sum, unavailable("counting records", err)
	}
	sum.Created = s.created
	return sum, nil
}

func quickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return classifyOpenError("integrity check", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return classifyOpenError("integrity check", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return classifyOpenError("integrity check", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w (%w): integrity check failed: %s", ErrCorrupt, slashing.ErrUnavailable, strings.Join(problems, "; "))
	}
	return nil
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Stats returns the store's cumulative counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), SignRequests: s.signRequests.Load(), Recorded: s.recorded.Load()}
}

// Close stops the writer after the transaction in progress, answers queued
// requests with ErrUnavailable and closes the database. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		<-s.writerDone
		s.st.close()
		s.closeErr = errors.Join(s.wdb.Close(), s.rdb.Close())
	})
	return s.closeErr
}

// Ping checks the store is open and the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return unavailable("ping", errClosed)
	}
	if err := s.checkFile(); err != nil {
		return err
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1 FROM schema_version").Scan(&one); err != nil {
		return unavailable("ping", err)
	}
	if w := s.writeOK.Load(); w != nil && w.err != nil {
		// The last write failed (disk full, I/O error): reads still work, but signing does not.
		// Stay DOWN until a write succeeds again (every sign request tries one).
		return fmt.Errorf("%w: the last write failed (%v); DOWN until a write succeeds", slashing.ErrUnavailable, w.err)
	}
	return nil
}

// GenesisValidatorsRoot returns the pinned root, ok=false if none yet.
func (s *Store) GenesisValidatorsRoot(ctx context.Context) (phase0.Root, bool, error) {
	if r := s.gvr.Load(); r != nil {
		return *r, true, nil
	}
	if s.closed.Load() {
		return phase0.Root{}, false, unavailable("reading the genesis validators root", errClosed)
	}
	var b []byte
	err := s.rdb.QueryRowContext(ctx, "SELECT genesis_validators_root FROM metadata WHERE id = 1").Scan(&b)
	if err == sql.ErrNoRows {
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

// SignBlock checks b against the key's history and records it (see the
// package doc for durability and batching).
func (s *Store) SignBlock(ctx context.Context, b slashing.Block) error {
	return s.submit(ctx, &request{ctx: ctx, block: &b})
}

// SignAttestation checks a against the key's history and records it.
func (s *Store) SignAttestation(ctx context.Context, a slashing.Attestation) error {
	return s.submit(ctx, &request{ctx: ctx, att: &a})
}

// SetEnabled enables or disables signing for a key (registering it if new).
// During a chunked import of the key it records the flag for the import's
// end instead (import.go).
func (s *Store) SetEnabled(ctx context.Context, pubkey phase0.BLSPubKey, enabled bool) error {
	return s.submit(ctx, &request{ctx: ctx, exclusive: func(ctx context.Context, tx *sql.Tx) error {
		return s.setEnabled(ctx, tx, pubkey, enabled)
	}})
}

// ImportValidator merges one validator's history in one transaction (a
// one-chunk import, see import.go).
func (s *Store) ImportValidator(ctx context.Context, gvr phase0.Root, h slashing.ValidatorHistory) error {
	return s.ImportChunk(ctx, gvr, slashing.ImportChunk{Pubkey: h.Pubkey, First: true, Last: true,
		SignedBlocks: h.SignedBlocks, SignedAttestations: h.SignedAttestations, Watermarks: slashing.ImportWatermarks(h)})
}

// ExportValidators calls fn for each validator with history (or with a low
// watermark), in pubkey order, from one consistent snapshot. The entries
// follow slashing.ExportHistory: nothing below the low watermarks.
func (s *Store) ExportValidators(ctx context.Context, pubkeys []phase0.BLSPubKey, fn func(slashing.ValidatorHistory) error) error {
	if s.closed.Load() {
		return unavailable("export", errClosed)
	}
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("export", err)
	}
	defer func() { _ = tx.Rollback() }()

	type key struct {
		id     int64
		pubkey phase0.BLSPubKey
	}
	var keys []key
	if pubkeys == nil {
		rows, err := tx.QueryContext(ctx, "SELECT id, pubkey FROM validators ORDER BY pubkey")
		if err != nil {
			return unavailable("export", err)
		}
		for rows.Next() {
			var k key
			var pk []byte
			if err := rows.Scan(&k.id, &pk); err != nil {
				rows.Close()
				return unavailable("export", err)
			}
			copy(k.pubkey[:], pk)
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("export", err)
		}
	} else {
		sorted := slices.Clone(pubkeys)
		slices.SortFunc(sorted, slashing.ComparePubkeys)
		sorted = slices.Compact(sorted)
		for _, pk := range sorted {
			var id int64
			err := tx.QueryRowContext(ctx, "SELECT id FROM validators WHERE pubkey = ?", pk[:]).Scan(&id)
			if err == sql.ErrNoRows {
				continue
			}
			if err != nil {
				return unavailable("export", err)
			}
			keys = append(keys, key{id: id, pubkey: pk})
		}
	}
	for _, k := range keys {
		h, ok, err := exportOne(ctx, tx, k.id, k.pubkey)
		if err != nil {
			return unavailable("export", err)
		}
		if !ok {
			continue
		}
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

func exportOne(ctx context.Context, tx *sql.Tx, id int64, pubkey phase0.BLSPubKey) (slashing.ValidatorHistory, bool, error) {
	var lw slashing.LowWatermarks
	var slot, src, tgt sql.NullInt64
	switch err := tx.QueryRowContext(ctx, "SELECT slot, source_epoch, target_epoch FROM low_watermarks WHERE validator_id = ?", id).Scan(&slot, &src, &tgt); {
	case err == sql.ErrNoRows:
	case err != nil:
		return slashing.ValidatorHistory{}, false, err
	default:
		lw = watermarks(slot, src, tgt)
	}
	var blocks []slashing.SignedBlock
	rows, err := tx.QueryContext(ctx, "SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ? ORDER BY slot", id)
	if err != nil {
		return slashing.ValidatorHistory{}, false, err
	}
	for rows.Next() {
		var s int64
		var r []byte
		if err := rows.Scan(&s, &r); err != nil {
			rows.Close()
			return slashing.ValidatorHistory{}, false, err
		}
		blocks = append(blocks, slashing.SignedBlock{Slot: phase0.Slot(column.Dec(s)), SigningRoot: column.RootFrom(r)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return slashing.ValidatorHistory{}, false, err
	}
	var atts []slashing.SignedAttestation
	rows, err = tx.QueryContext(ctx, "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations WHERE validator_id = ? ORDER BY target_epoch", id)
	if err != nil {
		return slashing.ValidatorHistory{}, false, err
	}
	for rows.Next() {
		var s, t int64
		var r []byte
		if err := rows.Scan(&s, &t, &r); err != nil {
			rows.Close()
			return slashing.ValidatorHistory{}, false, err
		}
		atts = append(atts, slashing.SignedAttestation{SourceEpoch: phase0.Epoch(column.Dec(s)), TargetEpoch: phase0.Epoch(column.Dec(t)), SigningRoot: column.RootFrom(r)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return slashing.ValidatorHistory{}, false, err
	}
	if len(blocks) == 0 && len(atts) == 0 && lw.Slot == nil && lw.Attestation == nil {
		return slashing.ValidatorHistory{}, false, nil
	}
	return slashing.ExportHistory(pubkey, lw, blocks, atts), true, nil
}

// watermarks is column.Watermarks of the columns as database/sql scans them.
func watermarks(slot, src, tgt sql.NullInt64) slashing.LowWatermarks {
	return column.Watermarks(nullable(slot), nullable(src), nullable(tgt))
}

func nullable(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

// rootArg is column.Root as a statement argument: an untyped nil (NULL) for
// an unknown root.
func rootArg(r *phase0.Root) any {
	if r == nil {
		return nil
	}
	return column.Root(r)
}

// DisabledKeys lists the keys whose signing is disabled (keymanager DELETE), in pubkey order. A
// key refused only while its chunked import runs is not listed (its state is the one saved).
func (s *Store) DisabledKeys(ctx context.Context) ([]phase0.BLSPubKey, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT v.pubkey FROM validators v LEFT JOIN import_progress ip ON ip.validator_id = v.id
		WHERE coalesce(ip.was_enabled, v.enabled) = 0 ORDER BY v.pubkey`)
	if err != nil {
		return nil, unavailable("listing disabled keys", err)
	}
	defer rows.Close()
	out, err := column.ScanPubkeys(rows)
	return out, unavailable("listing disabled keys", err)
}

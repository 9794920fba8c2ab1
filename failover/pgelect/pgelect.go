// Package pgelect is the Postgres side of the HA election (failover.Backend), in the slashing
// database the pair shares (tables ha_lease and managed_keystores of slashing/postgres's
// schema, migration 0005).
//
// Two dedicated connections per instance, outside the store's pool (pool recycling must never
// drop a lock):
//
//   - the lock connection holds the instance-id lock (pg_try_advisory_lock on the id's hash:
//     a second live instance with the same id fails Register) and blocks in
//     pg_advisory_lock on the pair's leader lock while standby. The leader takes, renews and
//     releases the lease on it, and every lease write checks holder_pid = pg_backend_pid(), so
//     a lease is only ever written by the session that holds the lock. A killed leader's socket
//     closes, the server ends its session and the blocked standby gets the lock at once (the
//     fast path).
//   - the watch connection reads the lease (Observe) and evicts a holder whose lease has run
//     out by the database's clock: pg_terminate_backend(holder_pid), under the row lock, only
//     while valid_until < now() (the slow path: a SIGSTOPped or cut-off leader whose idle
//     session the server would otherwise keep for minutes). Evicting needs the same database
//     role for both instances (or pg_signal_backend).
//
// Both connections have the server check their socket every 250 ms while a statement runs
// (client_connection_check_interval: a killed standby's session blocked in pg_advisory_lock
// would otherwise stay, holding its instance id), and use TCP keepalives (1 s idle, 1 s interval, 3 probes) on the client and, by
// session parameters, on the server, and a TCP user timeout of one lease, so a half-open
// connection is noticed by both sides within seconds rather than the kernel default of hours.
package pgelect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vigil-signer/vigil/failover"
)

// Advisory lock namespaces (two-integer form), beside slashing/postgres's 0x5647000x.
const (
	lockNamespaceLeader   = 1447493648 // 0x56470010: (ns, 0) is the pair's leader lock
	lockNamespaceInstance = 1447493649 // 0x56470011: (ns, hashtext(id)) an instance id
)

// Config configures the backend.
type Config struct {
	URL          string // the slashing database (postgres:// URL or key=value string)
	Schema       string // the store's Options.Schema ("" default search_path)
	ID           string
	AdvertiseURL string
	// Lease bounds the TCP user timeout of the election connections (default 5s).
	Lease time.Duration
}

// Backend implements failover.Backend on Postgres.
type Backend struct {
	cfg  Config
	base *pgx.ConnConfig

	lockMu sync.Mutex // the lock connection (one call at a time)
	lock   *pgx.Conn
	watchM sync.Mutex // the watch connection
	watch  *pgx.Conn
}

var _ failover.Backend = (*Backend)(nil)

// New parses the URL; it connects on first use.
func New(cfg Config) (*Backend, error) {
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Second
	}
	base, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pgelect: bad database URL: %w", err)
	}
	if base.RuntimeParams == nil {
		base.RuntimeParams = map[string]string{}
	}
	p := base.RuntimeParams
	p["application_name"] = "vigil-ha/" + cfg.ID
	p["statement_timeout"] = "0" // the lock connection waits for the leader lock as long as it takes
	p["lock_timeout"] = "0"
	p["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.Lease.Milliseconds(), 10)
	p["tcp_keepalives_idle"], p["tcp_keepalives_interval"], p["tcp_keepalives_count"] = "1", "1", "3"
	p["tcp_user_timeout"] = strconv.FormatInt(cfg.Lease.Milliseconds(), 10)
	if cfg.Schema != "" {
		p["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 3},
		Control:         userTimeout(cfg.Lease),
	}
	base.DialFunc = d.DialContext
	base.DefaultQueryExecMode = pgx.QueryExecModeExec
	return &Backend{cfg: cfg, base: base}, nil
}

func (b *Backend) connect(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.ConnectConfig(ctx, b.base.Copy())
	if err != nil {
		return nil, fmt.Errorf("connecting for the election: %w", err)
	}
	// A backend blocked in pg_advisory_lock reads nothing from its client, so without this the
	// server keeps the session of a killed standby (and its instance-id lock) until the lock
	// is granted: the standby's restart would be refused as a duplicate. With it the server
	// checks the socket every interval while a statement runs (PostgreSQL 14+; older servers
	// do not know the setting, and their orphans go when TCP keepalives give up).
	if _, err := c.Exec(ctx, "SET client_connection_check_interval = "+strconv.FormatInt(checkInterval.Milliseconds(), 10)); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42704" { // 42704: unrecognized configuration parameter
			closeConn(c)
			return nil, fmt.Errorf("connecting for the election: %w", err)
		}
	}
	return c, nil
}

// checkInterval is how often the server checks an election client's socket during a statement.
const checkInterval = 250 * time.Millisecond

// lockConn returns the lock connection, connecting (and re-claiming the instance id) if needed.
// Called with lockMu held.
func (b *Backend) lockConn(ctx context.Context) (*pgx.Conn, error) {
	if b.lock != nil && !b.lock.IsClosed() {
		return b.lock, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", lockNamespaceInstance, b.cfg.ID).Scan(&ok); err != nil {
		_ = c.Close(context.Background())
		return nil, fmt.Errorf("claiming the instance id: %w", err)
	}
	if !ok {
		_ = c.Close(context.Background())
		return nil, fmt.Errorf("%w (%s): stop it or give this one another --ha-instance-id", failover.ErrDuplicateID, b.liveHolder(ctx))
	}
	b.lock = c
	return c, nil
}

// liveHolder describes the session that holds this instance id's lock, for the error message.
func (b *Backend) liveHolder(ctx context.Context) string {
	c, err := b.connect(ctx)
	if err != nil {
		return "its connection is live"
	}
	defer c.Close(context.Background())
	var addr string
	var pid int32
	err = c.QueryRow(ctx, `SELECT coalesce(host(a.client_addr), 'local socket'), a.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = hashtext($2)::oid AND l.granted LIMIT 1`,
		lockNamespaceInstance, b.cfg.ID).Scan(&addr, &pid)
	if err != nil {
		return "its connection is live"
	}
	return fmt.Sprintf("connected from %s, backend %d", addr, pid)
}

func (b *Backend) watchConn(ctx context.Context) (*pgx.Conn, error) {
	if b.watch != nil && !b.watch.IsClosed() {
		return b.watch, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	b.watch = c
	return c, nil
}

// Register implements failover.Backend. A duplicate is retried for a few check intervals
// first: the session of this instance's own previous process (killed a moment ago) is still
// on the server until its next socket check.
func (b *Backend) Register(ctx context.Context) error {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	deadline := time.Now().Add(8 * checkInterval)
	for {
		_, err := b.lockConn(ctx)
		if err == nil || !errors.Is(err, failover.ErrDuplicateID) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(checkInterval / 2):
		}
	}
}

// Lock implements failover.Backend.
func (b *Backend) Lock(ctx context.Context) error {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	c, err := b.lockConn(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1, 0)", lockNamespaceLeader); err != nil {
		b.dropLock()
		return err
	}
	return nil
}

// Take implements failover.Backend.
func (b *Backend) Take(ctx context.Context, lease time.Duration) (int64, error) {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	if b.lock == nil {
		return 0, errors.New("pgelect: Take without the lock")
	}
	var term int64
	err := b.lock.QueryRow(ctx, `UPDATE ha_lease SET
			term = greatest(term, (SELECT f.term FROM fence f WHERE f.id = 1)) + 1,
			holder = $1, advertise_url = $2, holder_pid = pg_backend_pid(),
			acquired_at = now(), renewed_at = now(), valid_until = now() + $3 * interval '1 millisecond',
			step_down = false
		WHERE id = 1 RETURNING term`, b.cfg.ID, b.cfg.AdvertiseURL, lease.Milliseconds()).Scan(&term)
	if err != nil {
		b.dropLock()
		return 0, err
	}
	return term, nil
}

// Renew implements failover.Backend.
func (b *Backend) Renew(ctx context.Context, term int64, lease time.Duration) (bool, error) {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	if b.lock == nil {
		return false, fmt.Errorf("%w: the election connection is gone", failover.ErrDeposed)
	}
	var stepDown bool
	err := b.lock.QueryRow(ctx, `UPDATE ha_lease SET renewed_at = now(), valid_until = now() + $3 * interval '1 millisecond'
		WHERE id = 1 AND holder = $1 AND term = $2 AND holder_pid = pg_backend_pid() RETURNING step_down`,
		b.cfg.ID, term, lease.Milliseconds()).Scan(&stepDown)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("%w (term %d)", failover.ErrDeposed, term)
	}
	if err != nil {
		b.dropLock()
		return false, err
	}
	return stepDown, nil
}

// Release implements failover.Backend: the lease ends now and holder_pid is cleared (so the
// standby does not evict this still-connected session), then the lock is released.
func (b *Backend) Release(ctx context.Context, term int64) error {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	if b.lock == nil {
		return nil
	}
	_, err := b.lock.Exec(ctx, `UPDATE ha_lease SET valid_until = now(), holder_pid = NULL
		WHERE id = 1 AND holder = $1 AND term = $2 AND holder_pid = pg_backend_pid()`, b.cfg.ID, term)
	if err == nil {
		_, err = b.lock.Exec(ctx, "SELECT pg_advisory_unlock($1, 0)", lockNamespaceLeader)
	}
	if err != nil {
		b.dropLock()
	}
	return err
}

// Observe implements failover.Backend.
func (b *Backend) Observe(ctx context.Context) (failover.Lease, error) {
	b.watchM.Lock()
	defer b.watchM.Unlock()
	c, err := b.watchConn(ctx)
	if err != nil {
		return failover.Lease{}, err
	}
	var l failover.Lease
	var ageMS float64
	err = c.QueryRow(ctx, `SELECT coalesce(holder, ''), term, advertise_url,
			coalesce(extract(epoch FROM now() - renewed_at) * 1000, 0)::float8,
			coalesce(valid_until > now(), false), step_down,
			(SELECT coalesce(sum(version), 0)::bigint FROM managed_keystores)
		FROM ha_lease WHERE id = 1`).Scan(&l.Holder, &l.Term, &l.AdvertiseURL, &ageMS, &l.Valid, &l.StepDown, &l.KeysVersion)
	if err != nil {
		b.dropWatch()
		return failover.Lease{}, err
	}
	l.Age = time.Duration(ageMS * float64(time.Millisecond))
	return l, nil
}

// Evict implements failover.Backend.
func (b *Backend) Evict(ctx context.Context, term int64) (bool, error) {
	b.watchM.Lock()
	defer b.watchM.Unlock()
	c, err := b.watchConn(ctx)
	if err != nil {
		return false, err
	}
	var ended bool
	err = c.QueryRow(ctx, `WITH l AS (
			SELECT holder_pid FROM ha_lease
			WHERE id = 1 AND term = $1 AND holder_pid IS NOT NULL AND valid_until < now() FOR UPDATE)
		SELECT coalesce(bool_or(pg_terminate_backend(holder_pid)), false) FROM l`, term).Scan(&ended)
	if err != nil {
		b.dropWatch()
		return false, err
	}
	return ended, nil
}

// Reset implements failover.Backend.
func (b *Backend) Reset() {
	b.lockMu.Lock()
	b.dropLock()
	b.lockMu.Unlock()
	b.watchM.Lock()
	b.dropWatch()
	b.watchM.Unlock()
}

// Close implements failover.Backend.
func (b *Backend) Close() { b.Reset() }

func (b *Backend) dropLock() {
	if b.lock != nil {
		closeConn(b.lock)
		b.lock = nil
	}
}

func (b *Backend) dropWatch() {
	if b.watch != nil {
		closeConn(b.watch)
		b.watch = nil
	}
}

// closeConn closes without waiting on a connection that may be blackholed.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = c.Close(ctx)
}

// ReadLease reads the lease row once, on a connection of its own (`vigil ha status`).
func ReadLease(ctx context.Context, url string) (failover.Lease, error) {
	b, err := New(Config{URL: url, ID: "ha-status"})
	if err != nil {
		return failover.Lease{}, err
	}
	defer b.Close()
	return b.Observe(ctx)
}

// RequestStepDown asks the holder of a valid lease to hand over at its next renewal (`vigil ha
// step-down`); it returns the holder and term asked, or ok false when no valid lease exists.
func RequestStepDown(ctx context.Context, url string) (holder string, term int64, ok bool, err error) {
	b, err := New(Config{URL: url, ID: "ha-step-down"})
	if err != nil {
		return "", 0, false, err
	}
	defer b.Close()
	c, err := b.connect(ctx)
	if err != nil {
		return "", 0, false, err
	}
	defer closeConn(c)
	err = c.QueryRow(ctx, `UPDATE ha_lease SET step_down = true WHERE id = 1 AND valid_until > now() AND holder IS NOT NULL
		RETURNING holder, term`).Scan(&holder, &term)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	return holder, term, true, nil
}

// Package pgtest gives tests a PostgreSQL server: ONE throwaway cluster per
// test binary, started lazily on first use (initdb into a directory under
// the system temp directory, a free port on 127.0.0.1, the server process a
// child of the test binary that dies with it) and stopped by Main after the
// run; or, when VIGIL_TEST_POSTGRES_URL is set, the server at that URL (an
// administrative connection, e.g. postgres://postgres@host:5432/postgres).
//
// Each test gets a database of its own (NewDatabase), dropped at cleanup.
// Without PostgreSQL binaries (and without the URL) tests skip through
// testenv.Missing, which fails them instead under VIGIL_REQUIRE_EXTERNAL=1.
//
// Fault injection (throwaway cluster only): Stop and Start stop and restart
// the server on the same port and data directory; Terminate kills one
// backend with pg_terminate_backend.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/internal/testenv"
)

// URLEnv names the variable pointing at an existing server to use instead of
// a throwaway cluster.
const URLEnv = "VIGIL_TEST_POSTGRES_URL"

// BinEnv names a variable pointing at the directory holding initdb and
// postgres (default: the newest /usr/lib/postgresql/*/bin, else $PATH).
const BinEnv = "VIGIL_TEST_POSTGRES_BIN"

const how = "install PostgreSQL server binaries (Debian: apt-get install postgresql) or set " + URLEnv

var (
	once     sync.Once
	missing  string // why PostgreSQL is unavailable (skip)
	setupErr error  // PostgreSQL is there but could not be started (fail)
	admin    string // administrative URL
	clu      *cluster
	dbSeq    atomic.Int64
)

// Main runs the tests and then stops the throwaway cluster (if one was
// started) and removes its files.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup stops the throwaway cluster, if one was started, and removes its directory: for a
// TestMain that does more than Main.
func Cleanup() {
	if clu != nil {
		if err := clu.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the throwaway cluster: %v\n", err)
		}
		_ = os.RemoveAll(clu.dir)
		clu = nil
	}
}

func ensure(t testing.TB) {
	t.Helper()
	once.Do(setup)
	if missing != "" {
		testenv.Missing(t, "PostgreSQL", missing+"; "+how)
	}
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}
}

// AdminURL returns the URL of an administrative connection (database
// postgres, superuser), starting the cluster if needed.
func AdminURL(t testing.TB) string {
	t.Helper()
	ensure(t)
	return admin
}

// External reports whether the server is the one at VIGIL_TEST_POSTGRES_URL
// (Stop, Start and other cluster controls are then unavailable).
func External() bool { return os.Getenv(URLEnv) != "" }

func setup() {
	if u := os.Getenv(URLEnv); u != "" {
		admin = u
		return
	}
	bin, why := findBin()
	if bin == "" {
		missing = why
		return
	}
	c, err := newCluster(bin)
	if err != nil {
		if errors.Is(err, errNoPostgresUser) {
			missing = err.Error()
			return
		}
		setupErr = err
		return
	}
	clu = c
	admin = c.url("postgres")
}

func findBin() (string, string) {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(BinEnv); d != "" {
		if ok(d) {
			return d, ""
		}
		return "", fmt.Sprintf("%s=%s holds no initdb and postgres", BinEnv, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, ""
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && ok(filepath.Dir(p)) {
		return filepath.Dir(p), ""
	}
	return "", "no PostgreSQL server binaries (initdb, postgres) found in /usr/lib/postgresql/*/bin or $PATH"
}

func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

var errNoPostgresUser = errors.New(`running as root, and initdb refuses root: no "postgres" system user to run the cluster as`)

// cluster is the throwaway server.
type cluster struct {
	bin, dir, data, log string
	port                int
	cred                *syscall.Credential // run as this user (when the tests run as root)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func newCluster(bin string) (*cluster, error) {
	c := &cluster{bin: bin}
	var uid, gid int
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errNoPostgresUser
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	removeStale()
	// Directly under the temp directory: the postgres user must be able to
	// reach it (t.TempDir() parents are private to root).
	dir, err := os.MkdirTemp("", "vigil-pgtest-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c.dir, c.data, c.log = dir, filepath.Join(dir, "data"), filepath.Join(dir, "server.log")
	if c.cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if c.port, err = freePort(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("%w (server log: %s)", err, tail(c.log))
	}
	return c, nil
}

// removeStale deletes the directories of throwaway clusters whose test
// binary died without cleaning up (killed, or stopped by a timeout): the
// owner process is gone and no server runs on the data directory. (The
// server itself died with the test binary: see start.)
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "vigil-pgtest-*"))
	for _, d := range dirs {
		if alive(pidIn(filepath.Join(d, "owner"))) || alive(pidIn(filepath.Join(d, "data", "postmaster.pid"))) {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "owner")); err != nil && time.Since(modTime(d)) < time.Hour {
			continue // no owner file: maybe being created right now; leave it unless old
		}
		_ = os.RemoveAll(d)
	}
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Now()
	}
	return fi.ModTime()
}

// pidIn reads the process id on the first line of a file (0 if none).
func pidIn(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// start runs the server as a child process and waits until it accepts
// connections.
func (c *cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("the cluster is already running")
	}
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data,
		"-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "max_connections=400",
		"-c", "shared_buffers=64MB",
		"-c", "max_locks_per_transaction=128",
		"-c", "log_min_messages=warning",
		"-c", "log_min_error_statement=panic",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// On Linux the server dies with the test binary (parent-death signal
	// SIGQUIT: immediate shutdown). That signal is tied to the thread that
	// started the child, so the thread stays locked until the child exits.
	cmd.SysProcAttr = serverProcAttr(c.cred)
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	if err := <-started; err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	c.cmd, c.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			c.cmd = nil
			return errors.New("postgres exited during startup")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 30s: %v", err)
		}
	}
}

// stop shuts the server down (fast shutdown: open transactions are rolled
// back, clients disconnected) and waits for it to exit.
func (c *cluster) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func controllable(t testing.TB) *cluster {
	t.Helper()
	ensure(t)
	if clu == nil {
		testenv.Missing(t, "a throwaway Postgres cluster (fault injection)", URLEnv+" points at a server pgtest does not control; unset it")
	}
	return clu
}

// Stop stops the throwaway cluster (fast shutdown). Skips the test when the
// server is external.
func Stop(t testing.TB) {
	t.Helper()
	if err := controllable(t).stop(); err != nil {
		t.Fatalf("pgtest: stop: %v", err)
	}
}

// Start restarts the throwaway cluster stopped by Stop (same port, same
// data) and waits until it accepts connections.
func Start(t testing.TB) {
	t.Helper()
	c := controllable(t)
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: start: %v (server log: %s)", err, tail(c.log))
	}
}

// Terminate kills one server backend (pg_terminate_backend), as if its
// connection broke: its transaction is rolled back.
func Terminate(t testing.TB, pid uint32) {
	t.Helper()
	var ok bool
	if err := adminQueryRow(t, "SELECT pg_terminate_backend($1)", []any{int32(pid)}, &ok); err != nil {
		t.Fatalf("pgtest: pg_terminate_backend(%d): %v", pid, err)
	}
	if !ok {
		t.Fatalf("pgtest: pg_terminate_backend(%d): no such backend", pid)
	}
}

func adminQueryRow(t testing.TB, sql string, args []any, dst ...any) error {
	t.Helper()
	u := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dst...)
}

func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// NewDatabase creates a fresh, empty database for the test and returns its
// URL; it is dropped when the test ends (connections still open are
// terminated).
func NewDatabase(t testing.TB) string {
	t.Helper()
	ensure(t)
	name := fmt.Sprintf("vigil_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := adminExec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: dropping database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// withDatabase returns the connection string u pointing at database name.
func withDatabase(u, name string) string {
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		if pu, err := url.Parse(u); err == nil {
			pu.Path = "/" + name
			pu.RawPath = ""
			return pu.String()
		}
	}
	return u + " dbname=" + name
}

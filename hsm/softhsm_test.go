package hsm

// Test set-up: a real SoftHSM2 with a fresh token per test.
//
// SoftHSM2 reads SOFTHSM2_CONF and scans its token directory only in C_Initialize, and a module is
// initialised once per process. So TestMain writes one configuration with one token directory for
// the whole test binary and sets SOFTHSM2_CONF before anything loads the module; each test creates
// its own token (distinct label) with softhsm2-util before opening any Store, and closes every
// Store it opened (t.Cleanup) so that the last Close finalises the module and the next test's
// first Open re-initialises it and sees the new token. Tests therefore do not run in parallel, and
// newToken fails when a Store of an earlier test is still open.
//
// Without softhsm2-util or the module the tests skip via testenv.Missing (a failure when
// VIGIL_REQUIRE_EXTERNAL=1). VIGIL_SOFTHSM_MODULE selects another module file; set but wrong, it
// fails the tests instead of skipping them.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/vigil-signer/vigil/internal/testenv"
)

const (
	testPIN   = "user-pin-5831"
	testSOPIN = "so-pin-9904217"
	wrongPIN  = "wrong-pin-2716"
)

var softhsm struct {
	dir      string // holds softhsm2.conf and tokens/
	tokens   string
	module   string
	util     string
	missing  string // why SoftHSM2 is unavailable (skip, or fail under VIGIL_REQUIRE_EXTERNAL)
	misconfd string // a variable set but wrong (always a failure)
}

var tokenSeq atomic.Int64

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if err := setupSoftHSM(); err != nil {
			fmt.Fprintln(os.Stderr, "hsm tests:", err)
			return 1
		}
		if softhsm.dir != "" {
			defer os.RemoveAll(softhsm.dir)
		}
		return m.Run()
	}())
}

func setupSoftHSM() error {
	if mod := os.Getenv("VIGIL_SOFTHSM_MODULE"); mod != "" {
		if _, err := os.Stat(mod); err != nil {
			softhsm.misconfd = fmt.Sprintf("VIGIL_SOFTHSM_MODULE=%s: %v", mod, err)
			return nil
		}
		softhsm.module = mod
	} else {
		for _, p := range []string{
			"/usr/lib/softhsm/libsofthsm2.so",
			"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
			"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
			"/usr/local/lib/softhsm/libsofthsm2.so",
			"/opt/homebrew/lib/softhsm/libsofthsm2.so",
		} {
			if _, err := os.Stat(p); err == nil {
				softhsm.module = p
				break
			}
		}
	}
	util, err := exec.LookPath("softhsm2-util")
	switch {
	case softhsm.module == "":
		softhsm.missing = "libsofthsm2.so not found (apt-get install softhsm2, or set VIGIL_SOFTHSM_MODULE)"
		return nil
	case err != nil:
		softhsm.missing = "softhsm2-util not on PATH (apt-get install softhsm2)"
		return nil
	}
	softhsm.util = util
	// A short path: SoftHSM2 and the tests keep token paths in messages.
	dir, err := os.MkdirTemp("/tmp", "vhsm")
	if err != nil {
		return err
	}
	softhsm.dir = dir
	softhsm.tokens = filepath.Join(dir, "tokens")
	if err := os.Mkdir(softhsm.tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", softhsm.tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	return os.Setenv("SOFTHSM2_CONF", conf)
}

// requireSoftHSM skips (or fails) the test when SoftHSM2 is unavailable.
func requireSoftHSM(t *testing.T) {
	t.Helper()
	if softhsm.misconfd != "" {
		t.Fatal(softhsm.misconfd)
	}
	if softhsm.missing != "" {
		testenv.Missing(t, "SoftHSM2", softhsm.missing)
	}
}

// newToken initialises a fresh token and returns a Config for it (CreateKEK set).
func newToken(t *testing.T) Config {
	t.Helper()
	requireSoftHSM(t)
	registry.mu.Lock()
	open := len(registry.mods)
	registry.mu.Unlock()
	if open != 0 {
		t.Fatal("a Store of an earlier test is still open: the module would not see the new token")
	}
	label := fmt.Sprintf("t%d-%s", tokenSeq.Add(1), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	if len(label) > 32 {
		label = label[:32]
	}
	out, err := exec.Command(softhsm.util, "--init-token", "--free", "--label", label,
		"--so-pin", testSOPIN, "--pin", testPIN).CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return Config{ModulePath: softhsm.module, TokenLabel: label, PIN: testPIN, CreateKEK: true, Logger: testLogger(t)}
}

// open opens a Store and closes it when the test ends.
func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// rawSession opens a logged-in session of its own on s's token (login is per token and process).
func rawSession(t *testing.T, s *Store) (*pkcs11.Ctx, pkcs11.SessionHandle) {
	t.Helper()
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		t.Fatal("store has no connection")
	}
	p := s.mod.ctx
	sh, err := p.OpenSession(c.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	t.Cleanup(func() { _ = p.CloseSession(sh) })
	return p, sh
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = tWriter{}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// testPassword is distinctive so that finding it anywhere in output is a real leak.
const testPassword = "Zq9-s3cr3t-Pw-4711"

// closedPort is a local TCP port nothing listens on (connections are refused at once).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}

// dsnForms are the ways a connection string can carry the password, for a server at host:port
// and database db, plus one that does not parse.
func dsnForms(user, host, port, db string) []struct{ name, dsn string } {
	return []struct{ name, dsn string }{
		{"URL userinfo", fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable", user, testPassword, host, port, db)},
		{"URL ?password=", fmt.Sprintf("postgres://%s@%s:%s/%s?sslmode=disable&password=%s", user, host, port, db, testPassword)},
		{"keyword/value", fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s sslmode=disable", host, port, db, user, testPassword)},
		{"keyword/value quoted", fmt.Sprintf("host=%s port=%s dbname=%s user=%s password='%s' sslmode=disable", host, port, db, user, testPassword)},
		{"JDBC with ?password=", fmt.Sprintf("jdbc:postgresql://%s:%s/%s?user=%s&password=%s&sslmode=disable", host, port, db, user, testPassword)},
	}
}

// unparsable connection strings, each holding the password.
var unparsableDSNs = []struct{ name, dsn string }{
	{"URL with a bad port", "postgres://vigil:" + testPassword + "@db.example:notaport/vigil"},
	{"URL with an unencoded # in the password and a bad host", "postgres://vigil:" + testPassword + "#x@[db.example/vigil"},
	{"keyword/value with an unclosed quote", "host=db.example password='" + testPassword},
	{"URL with a bad escape", "postgres://vigil:" + testPassword + "%zz@db.example/vigil"},
}

func TestDescribeDSN(t *testing.T) {
	t.Parallel()
	for _, f := range dsnForms("vigil", "db.example", "5433", "slashing") {
		dsn, err := fromJDBC(f.dsn)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		got := describeDSN(dsn)
		if want := "postgres host=db.example port=5433 database=slashing user=vigil"; got != want {
			t.Errorf("%s: describeDSN = %q, want %q", f.name, got, want)
		}
	}
	for _, f := range unparsableDSNs {
		if got := describeDSN(f.dsn); strings.Contains(got, testPassword) || !strings.Contains(got, "does not parse") {
			t.Errorf("%s: describeDSN = %q", f.name, got)
		}
	}
	// Secrets are found in every form, so that any error text can be scrubbed.
	for _, f := range append(dsnForms("vigil", "db.example", "5433", "slashing"), unparsableDSNs...) {
		msg := "failed: " + f.dsn + " / " + testPassword
		if got := scrubDSN(msg, f.dsn); strings.Contains(got, testPassword) {
			t.Errorf("%s: scrubDSN left the password: %q", f.name, got)
		}
	}
}

// runBin runs the vigil binary to completion and returns its exit code and outputs.
func runBin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(vigilBin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, testEnv()
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run vigil: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestPostgresPasswordNeverPrinted: whatever form carries the password, a real `vigil serve` and
// `vigil slashing export` against an unreachable server and a connection string that does not
// parse fail with a message naming the database, and the password appears nowhere in their
// output.
func TestPostgresPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	for _, f := range dsnForms("vigil", "127.0.0.1", port, "slashing") {
		for _, cmd := range [][]string{
			{"serve", "--http-listen-port=0", "--metrics-enabled=false", "--data-dir", t.TempDir(), "--init-slashing-protection", "--slashing-protection-db-url", f.dsn},
			{"slashing", "export", "--slashing-protection-db-url", f.dsn},
		} {
			t.Run(f.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				code, stdout, stderr := runBin(t, cmd...)
				if code == 0 {
					t.Fatalf("exit 0 against an unreachable database")
				}
				if strings.Contains(stdout+stderr, testPassword) {
					t.Errorf("password in the output:\nstdout: %s\nstderr: %s", stdout, stderr)
				}
				if want := "host=127.0.0.1 port=" + port + " database=slashing user=vigil"; !strings.Contains(stderr, want) {
					t.Errorf("stderr does not name the database (%q):\n%s", want, stderr)
				}
			})
		}
	}
	for _, f := range unparsableDSNs {
		for _, cmd := range [][]string{
			{"serve", "--http-listen-port=0", "--metrics-enabled=false", "--data-dir", t.TempDir(), "--init-slashing-protection", "--slashing-protection-db-url", f.dsn},
			{"slashing", "export", "--slashing-protection-db-url", f.dsn},
		} {
			t.Run(f.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				code, stdout, stderr := runBin(t, cmd...)
				if code != 2 {
					t.Errorf("exit %d, want 2 (a bad setting)", code)
				}
				if strings.Contains(stdout+stderr, testPassword) {
					t.Errorf("password in the output:\nstdout: %s\nstderr: %s", stdout, stderr)
				}
				if !strings.Contains(stderr, "does not parse") {
					t.Errorf("stderr does not say the connection string does not parse:\n%s", stderr)
				}
			})
		}
	}
}

// TestPostgresPasswordNeverPrintedRealServer: against a real server (trust authentication, so any
// password is accepted), serve starts and logs the database by host, port, database and user,
// and export writes the interchange; the password is in no output.
func TestPostgresPasswordNeverPrintedRealServer(t *testing.T) {
	admin := pgtest.AdminURL(t)
	if !strings.HasPrefix(admin, "postgres://") {
		t.Fatalf("needs a postgres:// admin URL; pgtest gave another form")
	}
	for _, f := range dsnForms("", "", "", "") {
		t.Run(f.name, func(t *testing.T) {
			pgURL := pgtest.NewDatabase(t)
			_, host, db := jdbcOf(t, pgURL)
			h, p, _ := strings.Cut(host, ":")
			var dsn string
			for _, g := range dsnForms("postgres", h, p, db) {
				if g.name == f.name {
					dsn = g.dsn
				}
			}
			if code, out, errs := runCLI(t, "slashing", "init", "--slashing-protection-db-url", pgURL); code != 0 {
				t.Fatalf("slashing init: %d %s%s", code, out, errs)
			}

			v := start(t, append(writeKeystores(t, 0), "--slashing-protection-db-url", dsn)...)
			signMainnetAttestation(t, v) // recorded, so that export has history to write
			v.stop(t)
			code, stdout, stderr := runBin(t, "slashing", "export", "--slashing-protection-db-url", dsn)
			if code != 0 {
				t.Fatalf("export: exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, `"interchange_format_version"`) {
				t.Errorf("export wrote no interchange: %s", stdout)
			}
			all := v.Stdout.String() + v.Stderr.String() + stdout + stderr
			if strings.Contains(all, testPassword) {
				t.Errorf("password in the output:\n%s", all)
			}
			if want := "host=" + h + " port=" + p + " database=" + db + " user=postgres"; !strings.Contains(v.Stderr.String(), want) {
				t.Errorf("serve log does not describe the database as %q:\n%s", want, v.Stderr)
			}
		})
	}
}

// TestHealthcheckHidesPathsAndVaultAddress: a truncated keystore and a Vault that does not answer,
// both failing at start, show in /healthcheck and GET /reload by name and count only; the log
// has the keystore's path and Vault's address.
func TestHealthcheckHidesPathsAndVaultAddress(t *testing.T) {
	dir := t.TempDir()
	keys, pw := filepath.Join(dir, "secret-keys-dir"), filepath.Join(dir, "password.txt")
	if _, err := keystore.WriteInteropKeystores(keys, pw, []uint64{0}, keystore.DevKDF()); err != nil {
		t.Fatal(err)
	}
	password, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := keystore.Encrypt(interopKey(t, 1), bytes.TrimRight(password, "\r\n"), keystore.DevKDF(), "")
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(keys, "truncated.json")
	if err := os.WriteFile(truncated, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(token, []byte("hvs.test-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	vaultAddr := "https://127.0.0.1:" + closedPort(t)

	v := start(t, "--keystores-path", keys, "--keystores-password-file", pw,
		"--vault-address", vaultAddr, "--vault-token-file", token, "--key-source-retry-interval", "0")
	stderr := v.Stderr.waitFor(t, truncated, 10*time.Second)
	if !strings.Contains(stderr, strings.TrimPrefix(vaultAddr, "https://")) {
		v.Stderr.waitFor(t, strings.TrimPrefix(vaultAddr, "https://"), 10*time.Second)
	}

	secrets := []string{dir, keys, truncated, vaultAddr, strings.TrimPrefix(vaultAddr, "https://")}
	hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if hc.status != http.StatusServiceUnavailable {
		t.Fatalf("/healthcheck: want 503, got %s", hc)
	}
	rl := do(t, http.MethodGet, v.URL+"/reload", "", nil)
	if rl.status != http.StatusOK {
		t.Fatalf("GET /reload: %s", rl)
	}
	for _, r := range []struct {
		name string
		body []byte
	}{{"/healthcheck", hc.body}, {"GET /reload", rl.body}} {
		for _, s := range secrets {
			if strings.Contains(string(r.body), s) {
				t.Errorf("%s shows %q: %s", r.name, s, r.body)
			}
		}
		if !strings.Contains(string(r.body), "truncated.json: malformed key file") {
			t.Errorf("%s does not name truncated.json with its reason: %s", r.name, r.body)
		}
	}

	h := decodeHealth(t, hc.body)
	subs := map[string]healthCheck{}
	for _, c := range h.Checks[2].Checks {
		subs[c.ID] = c
	}
	ks, vault := subs["keystores-bulk-loading"], subs["vault-loading"]
	if ks.Status != "DOWN" || ks.Data["keys-loaded"] != 1.0 || ks.Data["error-count"] != 1.0 {
		t.Errorf("keystores-bulk-loading %+v, want DOWN with 1 key loaded and 1 error", ks)
	}
	if vault.Status != "DOWN" || vault.Data["keys-loaded"] != 0.0 || vault.Data["source-error"] == nil {
		t.Errorf("vault-loading %+v, want DOWN with 0 keys and a source error", vault)
	}

	var st struct {
		Sources []struct {
			Name   string   `json:"name"`
			Status string   `json:"status"`
			Keys   int      `json:"keys"`
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		} `json:"sources"`
	}
	if err := json.Unmarshal(rl.body, &st); err != nil {
		t.Fatalf("GET /reload body: %v: %s", err, rl.body)
	}
	names := map[string]bool{}
	for _, s := range st.Sources {
		names[s.Name] = true
		if s.Status != "DOWN" {
			t.Errorf("GET /reload source %s is %s, want DOWN", s.Name, s.Status)
		}
		if s.Name == "vault" && s.Error == "" {
			t.Errorf("GET /reload: vault source has no error")
		}
	}
	if !names["vault"] || len(st.Sources) != 2 {
		t.Errorf("GET /reload sources %+v, want the keystore directory and vault", st.Sources)
	}
}

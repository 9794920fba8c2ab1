package vaulttest

// Black-box acceptance of the key sources: the vigil binary imports the same keystores into the
// local keyring, a real (in-process, TLS) Vault and a real SoftHSM2 token, serves each, and must
// return identical signatures; then each backend misbehaves (sealed, wrong PIN, bad secrets,
// deleted objects) and the signer must say so by name, never sign with a wrong key, and stay up.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/internal/testenv"
	"github.com/vigil-signer/vigil/keystore/vaulttest/vaultcore"
)

// vigilBin builds the vigil binary once, from the main module (its own go.mod and build cache).
var vigilBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "vigil-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vigil")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/vigil")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/vigil: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t testing.TB) string {
	t.Helper()
	bin, err := vigilBin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// env is the environment of the vigil processes: the caller's without VIGIL_*, plus extra.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") && !strings.HasPrefix(kv, "VAULT_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// cli runs the vigil binary and returns its output and exit code.
func cli(t testing.TB, environ []string, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(binary(t), args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &out, environ
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		t.Fatalf("vigil %v: %v", args, err)
	}
	return out.String(), 0
}

func mustCLI(t testing.TB, environ []string, args ...string) string {
	t.Helper()
	out, code := cli(t, environ, args...)
	if code != 0 {
		t.Fatalf("vigil %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// server is a running `vigil serve`.
type server struct {
	URL    string
	cmd    *exec.Cmd
	out    *syncBuf
	exited chan struct{}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// serve starts `vigil serve` on free ports with its own data dir and waits until /upcheck answers.
// It returns the server and the time from exec to the first 200 from /upcheck (the HTTP listener
// opens only after every key source was loaded).
func serve(t testing.TB, environ []string, args ...string) (*server, time.Duration) {
	t.Helper()
	dataDir := t.TempDir()
	s := &server{out: &syncBuf{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary(t), append([]string{"serve", "--network", "mainnet", "--http-listen-port", "0", "--init-slashing-protection",
		"--metrics-enabled=false", "--data-dir", dataDir, "--key-source-retry-interval", "0"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr, s.cmd.Env = s.out, s.out, environ
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("vigil serve %s:\n%s", strings.Join(args, " "), s.out)
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for s.URL == "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, "vigil.ports")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if p, ok := strings.CutPrefix(line, "http-port="); ok {
					s.URL = "http://127.0.0.1:" + p
				}
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("vigil serve exited: %s", s.out)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil serve did not start: %s", s.out)
		}
	}
	for {
		if r, err := http.Get(s.URL + "/upcheck"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return s, time.Since(t0)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/upcheck never answered: %s", s.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *server) do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *server) keys(t testing.TB) []string {
	t.Helper()
	code, b := s.do(t, http.MethodGet, "/api/v1/eth2/publicKeys", nil)
	var keys []string
	if code != http.StatusOK || json.Unmarshal(b, &keys) != nil {
		t.Fatalf("publicKeys: %d %s", code, b)
	}
	slices.Sort(keys)
	return keys
}

func (s *server) sign(t testing.TB, pub string, req map[string]any) (int, string) {
	t.Helper()
	code, b := s.do(t, http.MethodPost, "/api/v1/eth2/sign/"+pub, req)
	if code != http.StatusOK {
		return code, string(b)
	}
	var r struct{ Signature string }
	if json.Unmarshal(b, &r) != nil || r.Signature == "" {
		t.Fatalf("sign reply %s", b)
	}
	return code, r.Signature
}

// reload runs POST /reload and waits for its outcome.
func (s *server) reload(t testing.TB) map[string]any {
	t.Helper()
	if code, b := s.do(t, http.MethodPost, "/reload", nil); code != http.StatusAccepted {
		t.Fatalf("POST /reload: %d %s", code, b)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, b := s.do(t, http.MethodGet, "/reload", nil)
		var st map[string]any
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("GET /reload: %s", b)
		}
		if st["status"] != "running" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("reload never finished: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Requests: mainnet DENEB blocks (no slashing history needed across servers: each has its own
// database) with fixed headers.
var (
	mainnetGVR = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	denebFork  = map[string]any{"previous_version": "0x03000000", "current_version": "0x04000000", "epoch": "269568"}
)

func blockReq(slot uint64, seed byte) map[string]any {
	root := "0x" + strings.Repeat(fmt.Sprintf("%02x", seed), 32)
	return map[string]any{
		"type":      "BLOCK_V2",
		"fork_info": map[string]any{"fork": denebFork, "genesis_validators_root": mainnetGVR},
		"beacon_block": map[string]any{"version": "DENEB", "block_header": map[string]any{
			"slot": fmt.Sprint(slot), "proposer_index": "7", "parent_root": root, "state_root": root, "body_root": root,
		}},
	}
}

// softHSM makes a fresh SoftHSM2 token in its own directory and returns the module path, the
// SOFTHSM2_CONF setting for the vigil processes, the token label and a PIN file.
func softHSM(t testing.TB) (module, confEnv, label, pinFile string) {
	return softHSMIn(t, "/tmp")
}

// softHSMIn is softHSM with the token directory under base.
func softHSMIn(t testing.TB, base string) (module, confEnv, label, pinFile string) {
	t.Helper()
	for _, p := range []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"} {
		if _, err := os.Stat(p); err == nil {
			module = p
		}
	}
	util, err := exec.LookPath("softhsm2-util")
	if module == "" || err != nil {
		testenv.Missing(t, "SoftHSM2", "apt-get install softhsm2")
	}
	dir, err := os.MkdirTemp(base, "vhsm-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Mkdir(filepath.Join(dir, "tokens"), 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, fmt.Appendf(nil, "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", dir), 0o600)
	confEnv = "SOFTHSM2_CONF=" + conf
	label = "vigil-e2e"
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", "87654321", "--pin", "123456")
	cmd.Env = append(os.Environ(), confEnv)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	pinFile = filepath.Join(dir, "pin")
	os.WriteFile(pinFile, []byte("123456\n"), 0o600)
	return module, confEnv, label, pinFile
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// backends holds the flags of the three stores for one test.
type backends struct {
	environ                        []string
	local, vault, hsm              []string
	vaultSrv                       *vaultcore.Server
	hsmModule, hsmLabel, hsmPinDir string
}

func newBackends(t *testing.T) *backends {
	t.Helper()
	work := t.TempDir()
	ctx := context.Background()
	v := vaultcore.StartT(t, vaultcore.Options{TLS: true})
	if err := v.PutPolicy(ctx, "vigil", vaultcore.StorePolicy("secret", "vigil/validators")); err != nil {
		t.Fatal(err)
	}
	tok, err := v.CreateToken(ctx, []string{"vigil"}, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	module, confEnv, label, pinFile := softHSM(t)
	b := &backends{environ: env(confEnv), vaultSrv: v, hsmModule: module, hsmLabel: label, hsmPinDir: filepath.Dir(pinFile)}
	b.local = []string{"--keyring-path", filepath.Join(work, "keyring"), "--keyring-password-file", writeFile(t, work, "kr", "keyring password")}
	b.vault = []string{"--vault-address", v.Addr, "--vault-token-file", writeFile(t, work, "vault-token", tok), "--vault-ca-file", v.CAFile}
	b.hsm = []string{"--hsm-module", module, "--hsm-token-label", label, "--hsm-pin-file", pinFile}
	return b
}

func TestSignThroughEverySource(t *testing.T) {
	b := newBackends(t)
	work := t.TempDir()
	ks := filepath.Join(work, "keystores")
	var pubs []string
	for _, line := range strings.Split(mustCLI(t, b.environ, "keys", "generate", "--count", "4", "--out", ks, "--kdf", "dev"), "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 {
			pubs = append(pubs, f[0])
		}
	}
	if len(pubs) != 4 {
		t.Fatalf("generated %v", pubs)
	}
	slices.Sort(pubs)
	imp := []string{"keys", "import", "--keystores", ks, "--password-file", filepath.Join(ks, "password.txt")}
	for _, target := range []struct {
		name  string
		flags []string
	}{{"local", b.local}, {"vault", b.vault}, {"hsm", b.hsm}} {
		args := append(append(slices.Clone(imp), "--to", target.name), target.flags...)
		if out := mustCLI(t, b.environ, args...); !strings.Contains(out, "4 imported, 0 duplicate, 0 failed") {
			t.Fatalf("import into %s:\n%s", target.name, out)
		}
		if out := mustCLI(t, b.environ, args...); !strings.Contains(out, "0 imported, 4 duplicate, 0 failed") {
			t.Fatalf("re-import into %s:\n%s", target.name, out)
		}
		out := mustCLI(t, b.environ, append([]string{"keys", "list", "--from", target.name}, target.flags...)...)
		for _, pk := range pubs {
			if !strings.Contains(out, pk+"\t"+target.name+"\tok") {
				t.Fatalf("keys list --from %s lacks %s:\n%s", target.name, pk, out)
			}
		}
	}

	ref, _ := serve(t, b.environ, "--keystores-path", ks, "--keystores-password-file", filepath.Join(ks, "password.txt"))
	servers := map[string]*server{}
	servers["local"], _ = serve(t, b.environ, b.local...)
	servers["vault"], _ = serve(t, b.environ, b.vault...)
	servers["hsm"], _ = serve(t, b.environ, b.hsm...)
	for name, s := range servers {
		if got := s.keys(t); !slices.Equal(got, pubs) {
			t.Fatalf("%s serves %v; want %v", name, got, pubs)
		}
	}
	const slot = 9_000_000
	for i, pk := range pubs {
		_, want := ref.sign(t, pk, blockReq(slot, byte(i)))
		for name, s := range servers {
			if code, got := s.sign(t, pk, blockReq(slot, byte(i))); code != http.StatusOK || got != want {
				t.Fatalf("%s: %s signed %d %s; keystore signature %s", pk, name, code, got, want)
			}
		}
	}

	// Vault sealed: a reload reports it by name and keeps the loaded keys; signing goes on.
	vs := servers["vault"]
	if err := b.vaultSrv.Seal(); err != nil {
		t.Fatal(err)
	}
	st := vs.reload(t)
	src := st["sources"].([]any)[0].(map[string]any)
	if st["status"] != "degraded" || !strings.Contains(fmt.Sprint(src["error"]), "sealed") || st["keys"].(float64) != 4 {
		t.Fatalf("reload with Vault sealed: %v", st)
	}
	if code, hc := vs.do(t, http.MethodGet, "/healthcheck", nil); code != http.StatusServiceUnavailable || !strings.Contains(string(hc), "sealed") {
		t.Fatalf("healthcheck with Vault sealed: %d %s", code, hc)
	}
	if code, _ := vs.sign(t, pubs[0], blockReq(slot+1, 1)); code != http.StatusOK {
		t.Fatalf("signing with Vault sealed: %d", code)
	}
	if err := b.vaultSrv.Unseal(); err != nil {
		t.Fatal(err)
	}
	if st := vs.reload(t); st["status"] != "completed" {
		t.Fatalf("reload after unseal: %v", st)
	}

	// A Vault secret rewritten with another key's secret, one not hex: each named, the right key
	// kept, nothing signed with a wrong key.
	c, err := b.vaultSrv.Client()
	if err != nil {
		t.Fatal(err)
	}
	kv := c.KVv2("secret")
	other, err := kv.Get(context.Background(), "vigil/validators/"+pubs[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "vigil/validators/"+pubs[0], other.Data); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "vigil/validators/"+pubs[2], map[string]any{"value": "not hex at all"}); err != nil {
		t.Fatal(err)
	}
	st = vs.reload(t)
	errs := fmt.Sprint(st["sources"].([]any)[0].(map[string]any)["errors"])
	if st["status"] != "degraded" || !strings.Contains(errs, pubs[0]) || !strings.Contains(errs, pubs[2]) || strings.Contains(errs, "not hex at all") {
		t.Fatalf("bad secrets: %v", st)
	}
	_, want := ref.sign(t, pubs[0], blockReq(slot+2, 2))
	if code, got := vs.sign(t, pubs[0], blockReq(slot+2, 2)); code != http.StatusOK || got != want {
		t.Fatalf("key with a swapped secret signed %d %s; want its own signature %s", code, got, want)
	}

	// HSM object deleted: gone after a reload, refused with 404.
	hs := servers["hsm"]
	mustCLI(t, b.environ, append([]string{"keys", "delete", "--from", "hsm", "--pubkeys", pubs[3]}, b.hsm...)...)
	if st := hs.reload(t); st["status"] != "completed" || st["removed"].(float64) != 1 {
		t.Fatalf("reload after HSM delete: %v", st)
	}
	if code, _ := hs.sign(t, pubs[3], blockReq(slot+3, 3)); code != http.StatusNotFound {
		t.Fatalf("deleted HSM key signed: %d", code)
	}
}

// TestSourceFailuresAtStart: each bad configuration starts the signer with the failure named in
// /healthcheck (the other sources keep serving), and --require-all-keys refuses to start.
func TestSourceFailuresAtStart(t *testing.T) {
	b := newBackends(t)
	work := t.TempDir()
	ks := filepath.Join(work, "ks")
	mustCLI(t, b.environ, "keys", "generate", "--count", "1", "--out", ks, "--kdf", "dev", "--interop")
	mustCLI(t, b.environ, append([]string{"keys", "import", "--to", "hsm", "--keystores", ks, "--password-file", filepath.Join(ks, "password.txt")}, b.hsm...)...)
	good := []string{"--keystores-path", ks, "--keystores-password-file", filepath.Join(ks, "password.txt")}

	revoked, err := b.vaultSrv.CreateToken(context.Background(), []string{"vigil"}, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := b.vaultSrv.Client()
	if err := c.Auth().Token().RevokeTreeWithContext(context.Background(), revoked); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		flags []string
		want  string // in /healthcheck
		never string // never in /healthcheck (paths and addresses go to the log only)
	}{
		{"wrong PIN", []string{"--hsm-module", b.hsmModule, "--hsm-token-label", b.hsmLabel, "--hsm-pin-file", writeFile(t, work, "badpin", "000000")}, "PIN", b.hsmModule},
		{"wrong token label", []string{"--hsm-module", b.hsmModule, "--hsm-token-label", "no-such-token", "--hsm-pin-file", filepath.Join(b.hsmPinDir, "pin")}, "no-such-token", b.hsmModule},
		{"missing module", []string{"--hsm-module", "/nonexistent/libpkcs11.so", "--hsm-token-label", b.hsmLabel, "--hsm-pin-file", filepath.Join(b.hsmPinDir, "pin")}, "libpkcs11.so", "/nonexistent"},
		{"revoked Vault token", []string{"--vault-address", b.vaultSrv.Addr, "--vault-ca-file", b.vaultSrv.CAFile, "--vault-token-file", writeFile(t, work, "revoked", revoked)}, "token", b.vaultSrv.Addr},
		{"Vault unreachable", []string{"--vault-address", "https://127.0.0.1:1", "--vault-token-file", writeFile(t, work, "tok", "s.whatever"), "--vault-timeout", "2s"}, "(address)", "127.0.0.1:1"},
		{"Vault without the CA", []string{"--vault-address", b.vaultSrv.Addr, "--vault-token-file", writeFile(t, work, "tok2", "s.whatever")}, "certificate", b.vaultSrv.Addr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := serve(t, b.environ, append(slices.Clone(good), tc.flags...)...)
			if keys := s.keys(t); len(keys) != 1 {
				t.Fatalf("keys %v; want the keystore's one key", keys)
			}
			code, hc := s.do(t, http.MethodGet, "/healthcheck", nil)
			if code != http.StatusServiceUnavailable || !strings.Contains(string(hc), tc.want) {
				t.Fatalf("healthcheck %d %s; want 503 naming %q", code, hc, tc.want)
			}
			if strings.Contains(string(hc), tc.never) {
				t.Fatalf("healthcheck %s shows %q (a path or address: the log only)", hc, tc.never)
			}
			for _, secret := range []string{"000000", "123456", revoked} {
				if strings.Contains(string(hc), secret) || strings.Contains(s.out.String(), secret) {
					t.Fatalf("a secret leaked into the health report or log")
				}
			}
			out, code2 := cli(t, b.environ, append(append([]string{"serve", "--network", "mainnet", "--http-listen-port", "0", "--metrics-enabled=false", "--data-dir", t.TempDir(), "--require-all-keys", "--init-slashing-protection"}, good...), tc.flags...)...)
			if code2 != 1 || !strings.Contains(out, "--require-all-keys") {
				t.Fatalf("--require-all-keys: exit %d\n%s", code2, out)
			}
		})
	}
}

// BenchmarkStartup10k measures `vigil serve` from exec to the first /upcheck answer (the listener
// opens after every key is loaded) with 10,000 keys in each store. Run with -benchtime 1x.
func BenchmarkStartup10k(b *testing.B) {
	const n = 10000
	work := b.TempDir()
	v := vaultcore.StartT(b, vaultcore.Options{})
	// SoftHSM2's file backend rewrites files on every object creation; on tmpfs the 10,000-key
	// import takes minutes instead of tens of minutes. Startup reads are hardly affected.
	base := "/tmp"
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	module, confEnv, label, pinFile := softHSMIn(b, base)
	environ := env(confEnv)
	tokFile := writeFile(b, work, "tok", v.RootToken)
	flags := map[string][]string{
		"local": {"--keyring-path", filepath.Join(work, "keyring"), "--keyring-password-file", writeFile(b, work, "kr", "pw")},
		"vault": {"--vault-address", v.Addr, "--vault-token-file", tokFile},
		"hsm":   {"--hsm-module", module, "--hsm-token-label", label, "--hsm-pin-file", pinFile},
	}
	// Keys: generated in-process (fast) as cheap keystores, then imported by the CLI.
	ks := filepath.Join(work, "ks")
	mustCLI(b, environ, "keys", "generate", "--count", fmt.Sprint(n), "--out", ks, "--kdf", "dev", "--interop")
	for _, name := range []string{"local", "vault", "hsm"} {
		t0 := time.Now()
		mustCLI(b, environ, append([]string{"keys", "import", "--to", name, "--keystores", ks, "--password-file", filepath.Join(ks, "password.txt"), "--workers", "16"}, flags[name]...)...)
		b.Logf("import of %d keys into %s: %s", n, name, time.Since(t0).Round(time.Millisecond))
	}
	b.ResetTimer()
	for _, name := range []string{"local", "vault", "hsm"} {
		var total time.Duration
		var rss int64
		for range b.N {
			s, took := serve(b, environ, flags[name]...)
			if keys := s.keys(b); len(keys) != n {
				b.Fatalf("%s: %d keys", name, len(keys))
			}
			total += took
			rss = max(rss, vmRSS(b, s.cmd.Process.Pid))
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "s-startup-"+name)
		b.ReportMetric(float64(rss)/(1<<20), "MiB-rss-"+name)
	}
	b.ReportMetric(0, "ns/op")
}

// vmRSS is the resident set of process pid in bytes (VmRSS in /proc/<pid>/status).
func vmRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/vigil-signer/vigil/internal/signingtest"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("vigil %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// generated lists the "<pubkey>\t<path>\t<file>" lines `keys generate` prints.
func generated(out string) []string {
	var pubs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); len(f) == 3 && strings.HasPrefix(f[0], "0x") {
			pubs = append(pubs, f[0])
		}
	}
	return pubs
}

func (v *vigil) publicKeys(t *testing.T) []string {
	t.Helper()
	r := do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
	var keys []string
	if r.status != http.StatusOK || json.Unmarshal(r.body, &keys) != nil {
		t.Fatalf("publicKeys: %s", r)
	}
	slices.Sort(keys)
	return keys
}

// blockRequest is a mainnet DENEB block header sign request at slot.
func blockRequest(t *testing.T, slot phase0.Slot, seed byte) map[string]any {
	fd := signingtest.MainnetFork("DENEB")
	return map[string]any{"type": "BLOCK_V2", "fork_info": signingtest.ForkInfoJSON(fd), "beacon_block": map[string]any{"version": "DENEB", "block_header": signingtest.BlockHeader(slot, seed)}}
}

// waitReload polls GET /reload until the reload that started at or after since has finished.
func waitReload(t *testing.T, v *vigil, since time.Time) map[string]any {
	t.Helper()
	// Every load ends with a "keys loaded" log line: look again whenever the process writes.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		_, changed := v.Stderr.snapshot()
		r := do(t, http.MethodGet, v.URL+"/reload", "", nil)
		var st map[string]any
		if r.status != http.StatusOK || json.Unmarshal(r.body, &st) != nil {
			t.Fatalf("GET /reload: %s", r)
		}
		started, _ := time.Parse(time.RFC3339Nano, st["started"].(string))
		if st["status"] != "running" && !started.Before(since.Add(-time.Millisecond)) {
			return st
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("reload did not finish: %s", r.body)
		}
	}
}

// TestE2EKeysLocalKeyring: keystores generated, imported into the local keyring (idempotently),
// listed, served with the same signatures as the keystores themselves, and hot-reloaded through
// POST /reload and SIGHUP; a removed key is unloaded, never disabled: back in its source, it signs.
func TestE2EKeysLocalKeyring(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	ksDir := filepath.Join(work, "keystores")
	krPw := filepath.Join(work, "keyring-password.txt")
	if err := os.WriteFile(krPw, []byte("keyring pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := []string{"--data-dir", dataDir, "--keyring-password-file", krPw}

	seedFile := filepath.Join(work, "seed.hex")
	out := mustCLI(t, "keys", "generate", "--count", "3", "--out", ksDir, "--kdf", "dev", "--seed-file", seedFile)
	pubs := generated(out)
	if len(pubs) != 3 {
		t.Fatalf("generate printed %d keys:\n%s", len(pubs), out)
	}
	for _, f := range []string{filepath.Join(ksDir, "password.txt"), seedFile} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// The keys derive from the seed at m/12381/3600/i/0/0.
	seed, err := hex.DecodeString(strings.TrimSpace(string(must(os.ReadFile(seedFile)))))
	if err != nil {
		t.Fatal(err)
	}
	for i, pk := range pubs {
		sk, err := keystore.DeriveSecretKey(seed, fmt.Sprintf("m/12381/3600/%d/0/0", i))
		if err != nil || sk.PublicKey().String() != pk {
			t.Fatalf("key %d is not the seed's m/12381/3600/%d/0/0", i, i)
		}
	}
	pwFile := filepath.Join(ksDir, "password.txt")

	// --out -: keystores printed one per line, each decrypting with the password.
	lines := strings.Split(strings.TrimSpace(mustCLI(t, "keys", "generate", "--count", "2", "--out", "-", "--password-file", pwFile, "--kdf", "dev", "--interop", "--start-index", "7")), "\n")
	pw, _ := os.ReadFile(pwFile)
	for i, line := range lines {
		sk, err := keystore.DecryptKeystore([]byte(line), []byte(strings.TrimSpace(string(pw))))
		if err != nil || len(lines) != 2 || sk.PublicKey().String() != interopPub(t, uint64(7+i)) {
			t.Fatalf("printed keystore %d: %v (%d lines)", i, err, len(lines))
		}
	}

	// Import, then again: the second run reports duplicates and succeeds.
	out = mustCLI(t, append([]string{"keys", "import", "--to", "local", "--keystores", ksDir, "--password-file", pwFile}, store...)...)
	if !strings.Contains(out, "3 imported, 0 duplicate, 0 failed") {
		t.Fatalf("import:\n%s", out)
	}
	out = mustCLI(t, append([]string{"keys", "import", "--to", "local", "--keystores", ksDir, "--password-file", pwFile}, store...)...)
	if !strings.Contains(out, "0 imported, 3 duplicate, 0 failed") {
		t.Fatalf("re-import:\n%s", out)
	}
	// A wrong keystore password: the keystore is named, nothing imported, exit status 1.
	bad := filepath.Join(work, "badpw.txt")
	os.WriteFile(bad, []byte("nope"), 0o600)
	other := filepath.Join(work, "other")
	newPubs := generated(mustCLI(t, "keys", "generate", "--count", "1", "--out", other, "--kdf", "dev"))
	code, out, _ := runCLI(t, append([]string{"keys", "import", "--to", "local", "--keystores", other, "--password-file", bad}, store...)...)
	if code != 1 || !strings.Contains(out, newPubs[0]) || !strings.Contains(out, "wrong password") || !strings.Contains(out, "0 imported, 0 duplicate, 1 failed") {
		t.Fatalf("wrong password import: exit %d\n%s", code, out)
	}
	// A wrong keyring password is refused before anything is decrypted.
	os.WriteFile(filepath.Join(work, "wrong-kr.txt"), []byte("not it"), 0o600)
	code, _, errs := runCLI(t, "keys", "import", "--to", "local", "--keystores", other, "--password-file", filepath.Join(other, "password.txt"), "--data-dir", dataDir, "--keyring-password-file", filepath.Join(work, "wrong-kr.txt"))
	if code != 1 || !strings.Contains(errs, "wrong password") {
		t.Fatalf("wrong keyring password: exit %d: %s", code, errs)
	}

	out = mustCLI(t, append([]string{"keys", "list"}, store...)...)
	for _, pk := range pubs {
		if !strings.Contains(out, pk+"\tlocal\tok") {
			t.Fatalf("list lacks %s:\n%s", pk, out)
		}
	}

	// Serve from the keyring and from the keystores: the same signatures.
	v := start(t, append([]string{"--network", "mainnet"}, store...)...)
	ref := start(t, "--network", "mainnet", "--keystores-path", ksDir, "--keystores-password-file", pwFile)
	want := slices.Clone(pubs)
	slices.Sort(want)
	if got := v.publicKeys(t); !slices.Equal(got, want) {
		t.Fatalf("keyring serves %v; want %v", got, want)
	}
	slot := signingtest.ForkSlot("DENEB", 900)
	for i, pk := range pubs {
		a, b := v.signJSON(t, pk, blockRequest(t, slot, byte(i))), ref.signJSON(t, pk, blockRequest(t, slot, byte(i)))
		if signature(t, a) != signature(t, b) {
			t.Fatalf("%s: keyring and keystore signatures differ", pk)
		}
	}
	hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if hc.status != http.StatusOK || !strings.Contains(string(hc.body), `"local-loading"`) || !strings.Contains(string(hc.body), `"keys-loaded":3`) {
		t.Fatalf("healthcheck: %s", hc)
	}

	// Hot reload by POST: a newly imported key appears.
	mustCLI(t, append([]string{"keys", "import", "--to", "local", "--keystores", other, "--password-file", filepath.Join(other, "password.txt")}, store...)...)
	t0 := time.Now()
	r := do(t, http.MethodPost, v.URL+"/reload", "", nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /reload: %s", r)
	}
	st := waitReload(t, v, t0)
	if st["status"] != "completed" || st["added"].(float64) != 1 || st["keys"].(float64) != 4 {
		t.Fatalf("reload status %v", st)
	}
	if got := v.publicKeys(t); !slices.Contains(got, newPubs[0]) || len(got) != 4 {
		t.Fatalf("after reload: %v", got)
	}

	// Reloads under load: requests for keys that stay keep being answered, none is dropped.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	served := 0
	for g := range 4 {
		wg.Go(func() {
			fd := signingtest.MainnetFork("DENEB")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req := map[string]any{"type": "RANDAO_REVEAL", "fork_info": signingtest.ForkInfoJSON(fd), "randao_reveal": map[string]any{"epoch": signingtest.Dec(fd.Epoch + phase0.Epoch(i))}}
				r := v.signJSON(t, pubs[1+g%2], req)
				mu.Lock()
				served++
				if r.status != http.StatusOK {
					failures = append(failures, r.String())
				}
				mu.Unlock()
			}
		})
	}
	for range 5 {
		t0 := time.Now()
		if r := do(t, http.MethodPost, v.URL+"/reload", "", nil); r.status != http.StatusAccepted {
			t.Errorf("POST /reload under load: %s", r)
			break
		}
		waitReload(t, v, t0)
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 || served < 20 {
		t.Fatalf("during reloads %d requests, failures: %v", served, failures)
	}

	// Hot reload by SIGHUP: a deleted key disappears (unloaded, not disabled in the slashing database).
	out = mustCLI(t, append([]string{"keys", "delete", "--from", "local", "--pubkeys", pubs[0]}, store...)...)
	if !strings.Contains(out, pubs[0]+"\tdeleted") {
		t.Fatalf("delete: %s", out)
	}
	code, out, _ = runCLI(t, append([]string{"keys", "delete", "--from", "local", "--pubkeys", pubs[0]}, store...)...)
	if code != 1 || !strings.Contains(out, "not found") {
		t.Fatalf("second delete: exit %d %s", code, out)
	}
	t0 = time.Now()
	if err := v.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st = waitReload(t, v, t0)
	if st["removed"].(float64) != 1 || slices.Contains(v.publicKeys(t), pubs[0]) {
		t.Fatalf("SIGHUP reload %v", st)
	}
	wantError(t, v.signJSON(t, pubs[0], blockRequest(t, slot+1, 9)), http.StatusNotFound, "")

	// Re-imported (a key file moved away for a moment, then back), the key signs again: a reload
	// never disables a key, only a keymanager DELETE does. Its history was kept: a different block
	// at a slot it signed is still refused.
	mustCLI(t, append([]string{"keys", "import", "--to", "local", "--keystores", ksDir, "--password-file", pwFile}, store...)...)
	t0 = time.Now()
	if r := do(t, http.MethodPost, v.URL+"/reload", "", nil); r.status != http.StatusAccepted {
		t.Fatalf("POST /reload: %s", r)
	}
	waitReload(t, v, t0)
	if !slices.Contains(v.publicKeys(t), pubs[0]) {
		t.Fatal("re-imported key not loaded")
	}
	signature(t, v.signJSON(t, pubs[0], blockRequest(t, slot+1, 9)))
	wantError(t, v.signJSON(t, pubs[0], blockRequest(t, slot, 77)), http.StatusPreconditionFailed, "double_proposal")
	if hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil); strings.Contains(string(hc.body), pubs[0]) {
		t.Fatalf("a reloaded key is reported disabled: %s", hc)
	}
	v.stop(t)
}

// TestE2EKeySourceFailure: a key source that fails at start is reported in /healthcheck and the
// metrics, the other sources still serve; with --require-all-keys the signer refuses to start.
func TestE2EKeySourceFailure(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	ksDir := filepath.Join(work, "keystores")
	krPw := filepath.Join(work, "kr.txt")
	os.WriteFile(krPw, []byte("right"), 0o600)
	mustCLI(t, "keys", "generate", "--count", "1", "--out", ksDir, "--kdf", "dev", "--interop")
	mustCLI(t, "keys", "import", "--to", "local", "--keystores", ksDir, "--password-file", filepath.Join(ksDir, "password.txt"), "--data-dir", dataDir, "--keyring-password-file", krPw)
	wrong := filepath.Join(work, "wrong.txt")
	os.WriteFile(wrong, []byte("wrong"), 0o600)

	args := append([]string{"--data-dir", dataDir, "--keyring-password-file", wrong, "--network", "mainnet"}, writeKeystores(t, 5)...)
	v := start(t, args...)
	if got := v.publicKeys(t); len(got) != 1 || got[0] != interopPub(t, 5) {
		t.Fatalf("keys with a failing keyring: %v", got)
	}
	hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if hc.status != http.StatusServiceUnavailable || !strings.Contains(string(hc.body), "wrong password") {
		t.Fatalf("healthcheck: %s", hc)
	}
	m := do(t, http.MethodGet, v.MetricsURL+"/metrics", "", nil)
	for _, want := range []string{`vigil_key_loads_total{outcome="degraded"} 1`, `vigil_key_source_up{source="local"} 0`, `vigil_key_source_up{source="keystore-dir"} 1`, `vigil_key_source_keys{source="keystore-dir"} 1`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	v.stop(t)

	code, out, errs := runCLI(t, append([]string{"serve", "--http-listen-port", "0", "--metrics-enabled=false", "--require-all-keys", "--init-slashing-protection"}, args...)...)
	if code != 1 || !strings.Contains(errs, "--require-all-keys") || !strings.Contains(errs, "source local") {
		t.Fatalf("--require-all-keys with a failing source: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestE2EKeyringCreatedWhileServing: a signer started with a keyring password but no keyring yet
// is healthy with no keys from it, and picks the keyring up at the first reload after an import.
func TestE2EKeyringCreatedWhileServing(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	krPw := filepath.Join(work, "kr.txt")
	os.WriteFile(krPw, []byte("pw"), 0o600)
	v := start(t, "--network", "mainnet", "--data-dir", dataDir, "--keyring-password-file", krPw)
	if hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil); hc.status != http.StatusOK || len(v.publicKeys(t)) != 0 {
		t.Fatalf("no keyring yet: %s", hc)
	}
	ks := filepath.Join(work, "ks")
	pubs := generated(mustCLI(t, "keys", "generate", "--count", "2", "--out", ks, "--kdf", "dev"))
	if len(pubs) != 2 {
		t.Fatalf("generated %v", pubs)
	}
	mustCLI(t, "keys", "import", "--to", "local", "--keystores", ks, "--password-file", filepath.Join(ks, "password.txt"), "--data-dir", dataDir, "--keyring-password-file", krPw)
	t0 := time.Now()
	if r := do(t, http.MethodPost, v.URL+"/reload", "", nil); r.status != http.StatusAccepted {
		t.Fatalf("POST /reload: %s", r)
	}
	if st := waitReload(t, v, t0); st["status"] != "completed" || st["added"].(float64) != 2 {
		t.Fatalf("reload: %v", st)
	}
	slices.Sort(pubs)
	if got := v.publicKeys(t); !slices.Equal(got, pubs) {
		t.Fatalf("keys %v; want %v", got, pubs)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/signingtest"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// Safety of the slashing database itself: it is never silently created, replaced or shared.

// runServe runs `vigil serve args...` to completion (for start-up refusals) and returns its exit
// code and output.
func runServe(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(vigilBin, append([]string{"serve", "--http-listen-port", "0", "--metrics-listen-port", "0"}, args...)...)
	cmd.Env = testEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("vigil serve %v did not exit; output:\n%s", args, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestE2ESlashingDatabaseNeverSilentlyReplaced is the probe's HIGH finding: a lost database was
// recreated empty and Vigil then double-voted. Now a missing database is a start-up error that
// explains what to do, a database deleted while serving fails closed at once (503, health DOWN,
// a log line from the health tick), and the restart refuses rather than starting empty.
func TestE2ESlashingDatabaseNeverSilentlyReplaced(t *testing.T) {
	data := t.TempDir()
	keys := writeKeystores(t, 1)
	args := append([]string{"--network", "mainnet", "--data-dir", data}, keys...)
	db := filepath.Join(data, "slashing-protection.sqlite")

	code, out := runServe(t, args...)
	if code != 1 {
		t.Fatalf("serve on a data dir without a database: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"no slashing-protection database at " + db, "--init-slashing-protection", "vigil slashing init", "vigil slashing import --file"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("a refused start created %s (%v)", db, err)
	}

	e := signingtest.NowEpoch()
	v := start(t, args...) // start passes --init-slashing-protection
	v.Stderr.waitFor(t, "slashing protection database CREATED", 10*time.Second)
	pub := interopPub(t, 1)
	first := signature(t, v.signJSON(t, pub, signingtest.VoteRequest(e-1, e, 1)))
	v.stop(t)

	v = start(t, args...)
	log := v.Stderr.waitFor(t, "slashing protection database opened", 10*time.Second)
	if !strings.Contains(log, "validators=1") || !strings.Contains(log, "attestations=1") {
		t.Errorf("the start-up log does not count the records:\n%s", log)
	}
	if got := signature(t, v.signJSON(t, pub, signingtest.VoteRequest(e-1, e, 1))); got != first {
		t.Fatal("an identical repeat got another signature")
	}

	// The file goes away while serving: every signature is refused and health is DOWN.
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		_ = os.Remove(p)
	}
	wantError(t, v.signJSON(t, pub, signingtest.VoteRequest(e-1, e, 2)), http.StatusServiceUnavailable, "gone")
	hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if hc.status != http.StatusServiceUnavailable || !strings.Contains(string(hc.body), `"DOWN"`) {
		t.Fatalf("healthcheck after the database was deleted: %s", hc)
	}
	if r := do(t, http.MethodGet, v.URL+"/readyz", "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz after the database was deleted: %s", r)
	}
	v.Stderr.waitFor(t, "slashing protection database DOWN", 3*healthInterval)
	v.stop(t)

	// The restart refuses: the double vote (root 2 at the target already signed with root 1)
	// can never be signed from an empty database.
	if code, out := runServe(t, args...); code != 1 || !strings.Contains(out, "no slashing-protection database") {
		t.Fatalf("restart after the database was deleted: exit %d\n%s", code, out)
	}
	// Not even with --init-slashing-protection left on the command line (a unit file): this data
	// dir has served before, so the database was lost, not never made.
	if code, out := runServe(t, append(args, "--init-slashing-protection")...); code != 1 || !strings.Contains(out, "has served before") {
		t.Fatalf("restart with --init after the database was deleted: exit %d\n%s", code, out)
	}
}

// Two `vigil serve` on one data dir: the second refuses to start and leaves vigil.ports alone.
func TestE2ESecondServeOnOneDataDirRefused(t *testing.T) {
	data := t.TempDir()
	v := start(t, "--network", "mainnet", "--data-dir", data)
	ports, err := os.ReadFile(filepath.Join(data, "vigil.ports"))
	if err != nil {
		t.Fatal(err)
	}
	code, out := runServe(t, "--network", "mainnet", "--data-dir", data, "--init-slashing-protection")
	if code != 1 || !strings.Contains(out, "in use by another vigil serve (pid "+strconv.Itoa(v.cmd.Process.Pid)+",") {
		t.Fatalf("second serve: exit %d, want 1 naming pid %d\n%s", code, v.cmd.Process.Pid, out)
	}
	if again, _ := os.ReadFile(filepath.Join(data, "vigil.ports")); !bytes.Equal(again, ports) {
		t.Fatalf("vigil.ports changed: %q → %q", ports, again)
	}
	v.kill() // kill -9: the kernel drops the lock; a new start must not be blocked by the lock file
	v2 := start(t, "--network", "mainnet", "--data-dir", data)
	v2.stop(t)
}

// `vigil slashing init` creates a database once (mode 0600) and leaves an existing one alone.
func TestE2ESlashingInit(t *testing.T) {
	data := t.TempDir()
	code, out, errs := runCLI(t, "slashing", "init", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "created an empty slashing-protection database") {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	fi, err := os.Stat(filepath.Join(data, "slashing-protection.sqlite"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	code, out, _ = runCLI(t, "slashing", "init", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "already exists, left as it is") {
		t.Fatalf("second init: exit %d %s", code, out)
	}
	code, _, errs = runCLI(t, "slashing", "export", "--data-dir", t.TempDir())
	if code != 1 || !strings.Contains(errs, "no slashing-protection database") {
		t.Fatalf("export of a missing database: exit %d %s", code, errs)
	}
}

// asUnprivileged runs the command as nobody when the tests run as root (root ignores file
// permissions, so only an unprivileged process meets them, as a real service user does).
func asUnprivileged(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	if err := os.Chmod(filepath.Dir(vigilBin), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

// A read-only database file, and a database directory the service user may not enter, are
// start-up errors that name the cause.
func TestE2EUnwritableDatabaseRefused(t *testing.T) {
	run := func(args ...string) (int, string) {
		cmd := exec.Command(vigilBin, append([]string{"serve", "--network", "mainnet", "--http-listen-port", "0", "--metrics-enabled=false"}, args...)...)
		cmd.Env = testEnv()
		asUnprivileged(t, cmd)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	owned := func(dir string) string { // a directory the unprivileged user owns
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // t.TempDir makes them 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	data := owned(filepath.Join(base, "ro"))
	if code, out, errs := runCLI(t, "slashing", "init", "--data-dir", data); code != 0 {
		t.Fatalf("init: %s%s", out, errs)
	}
	db := filepath.Join(data, "slashing-protection.sqlite")
	if os.Geteuid() == 0 {
		if err := os.Chown(db, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(db, 0o400); err != nil {
		t.Fatal(err)
	}
	if code, out := run("--data-dir", data); code != 1 || !strings.Contains(out, "is not writable") {
		t.Fatalf("read-only database: exit %d\n%s", code, out)
	}

	closed := filepath.Join(base, "closed") // mode 0700, owned by root (or by us and then closed)
	if err := os.MkdirAll(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(closed, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(closed, 0o700) })
	}
	data2 := owned(filepath.Join(base, "data2"))
	code, out := run("--data-dir", data2, "--slashing-db-path", filepath.Join(closed, "slashing.sqlite"), "--init-slashing-protection")
	if code != 1 || !strings.Contains(out, "permission denied") || strings.Contains(out, "no such file") {
		t.Fatalf("database in a directory without permission: exit %d\n%s", code, out)
	}
}

// Genesis: the far-future guard is on for every network or the operator says it is off; a root
// of another chain is a 400 that never pins the database.
func TestE2EGenesisAndFarFutureGuard(t *testing.T) {
	keys := writeKeystores(t, 1)
	pub := interopPub(t, 1)

	// minimal without a genesis time: refuse, naming the ways on.
	code, out := runServe(t, append([]string{"--network", "minimal", "--data-dir", t.TempDir(), "--init-slashing-protection"}, keys...)...)
	if code != 2 || !strings.Contains(out, "--genesis-time") || !strings.Contains(out, "--slashing-far-future-epochs 0") {
		t.Fatalf("minimal without genesis time: exit %d\n%s", code, out)
	}
	off := start(t, append([]string{"--network", "minimal", "--slashing-far-future-epochs", "0"}, keys...)...)
	off.Stderr.waitFor(t, "far-future guard OFF", 10*time.Second)
	off.stop(t)

	// --dev: a genesis time recorded at the first start keeps the guard on; far-future refused.
	dev := start(t, "--dev")
	log := dev.Stderr.waitFor(t, "far-future guard on", 10*time.Second)
	if !strings.Contains(log, "from=\"--dev") {
		t.Errorf("guard source not logged:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dev.DataDir, "dev-genesis-time")); err != nil {
		t.Fatal(err)
	}
	devFork := phase0.Fork{PreviousVersion: phase0.Version{0, 0, 0, 1}, CurrentVersion: phase0.Version{0, 0, 0, 1}}
	far := map[string]any{"type": "ATTESTATION", "fork_info": map[string]any{
		"fork":                    map[string]any{"previous_version": signingtest.Hex(devFork.PreviousVersion[:]), "current_version": signingtest.Hex(devFork.CurrentVersion[:]), "epoch": "0"},
		"genesis_validators_root": signingtest.Hex(signingtest.MainnetGVR[:]),
	}, "attestation": map[string]any{"slot": "8000000", "index": "0", "beacon_block_root": signingtest.Hex(signingtest.MainnetGVR[:]),
		"source": map[string]any{"epoch": "0", "root": signingtest.Hex(signingtest.MainnetGVR[:])}, "target": map[string]any{"epoch": "1000000", "root": signingtest.Hex(signingtest.MainnetGVR[:])}}}
	wantError(t, dev.signJSON(t, interopPub(t, 0), far), http.StatusPreconditionFailed, "epoch")
	dev.stop(t)

	// mainnet: a request with another chain's root is refused (400) and does not pin the
	// database; the real root still signs afterwards, across a restart.
	data := t.TempDir()
	v := start(t, append([]string{"--network", "mainnet", "--data-dir", data}, keys...)...)
	e := signingtest.NowEpoch()
	wrong := signingtest.VoteRequest(e-1, e, 1)
	wrong["fork_info"].(map[string]any)["genesis_validators_root"] = signingtest.Hex(bytes.Repeat([]byte{0xaa}, 32))
	wantError(t, v.signJSON(t, pub, wrong), http.StatusBadRequest, "not the genesis validators root of network mainnet")
	signature(t, v.signJSON(t, pub, signingtest.VoteRequest(e-1, e, 1)))
	v.stop(t)
	v = start(t, append([]string{"--network", "mainnet", "--data-dir", data}, keys...)...)
	signature(t, v.signJSON(t, pub, signingtest.VoteRequest(e, e+1, 1)))
	v.stop(t)

	// A custom network takes genesis from its beacon node; one on another chain is refused.
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("PRESET_BASE: minimal\nCONFIG_NAME: devnet\nGENESIS_FORK_VERSION: 0x10000001\nSECONDS_PER_SLOT: 6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	genesis := time.Now().Add(-time.Hour).Unix()
	bn := func(fork string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/eth/v1/beacon/genesis" {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{
				"genesis_time": strconv.FormatInt(genesis, 10), "genesis_validators_root": signingtest.Hex(bytes.Repeat([]byte{0x5a}, 32)), "genesis_fork_version": fork,
			}})
		}))
		t.Cleanup(s.Close)
		return s
	}
	data = t.TempDir()
	c := start(t, append([]string{"--network", cfg, "--data-dir", data, "--beacon-node-url", "http://127.0.0.1:1," + bn("0x10000001").URL}, keys...)...)
	log = c.Stderr.waitFor(t, "far-future guard on", 10*time.Second)
	if !strings.Contains(log, "genesis validators root known") || !strings.Contains(log, fmt.Sprint(time.Unix(genesis, 0).UTC().Format(time.RFC3339))) {
		t.Errorf("beacon node genesis not used:\n%s", log)
	}
	c.stop(t)
	// The beacon node is gone at the next start: its cached answer in the data dir is used.
	c = start(t, append([]string{"--network", cfg, "--data-dir", data, "--beacon-node-url", "http://127.0.0.1:1"}, keys...)...)
	c.Stderr.waitFor(t, "far-future guard on", 10*time.Second)
	c.stop(t)
	if code, out := runServe(t, append([]string{"--network", cfg, "--data-dir", t.TempDir(), "--init-slashing-protection", "--beacon-node-url", bn("0x20000001").URL}, keys...)...); code != 1 || !strings.Contains(out, "another chain") {
		t.Fatalf("beacon node of another chain: exit %d\n%s", code, out)
	}

	// A custom network's root given by --genesis-validators-root: a request carrying another is
	// a 400 and pins nothing; the given root signs. (minimal preset, 6 s slots: epoch 75 now.)
	given := bytes.Repeat([]byte{0x77}, 32)
	customFork := phase0.Fork{PreviousVersion: phase0.Version{0x10, 0, 0, 1}, CurrentVersion: phase0.Version{0x10, 0, 0, 1}}
	customVote := func(root []byte) map[string]any {
		req := signingtest.AttestationRequest(customFork, signingtest.AttestationData(74*8, 73, 74, 1))
		req["fork_info"].(map[string]any)["genesis_validators_root"] = signingtest.Hex(root)
		return req
	}
	g := start(t, append([]string{"--network", cfg, "--genesis-time", strconv.FormatInt(genesis, 10), "--genesis-validators-root", signingtest.Hex(given)}, keys...)...)
	if log := g.Stderr.waitFor(t, "far-future guard on", 10*time.Second); !strings.Contains(log, "genesis validators root known") || !strings.Contains(log, signingtest.Hex(given)) {
		t.Errorf("--genesis-validators-root not used:\n%s", log)
	}
	wantError(t, g.signJSON(t, pub, customVote(bytes.Repeat([]byte{0x5a}, 32))), http.StatusBadRequest, "not the genesis validators root")
	signature(t, g.signJSON(t, pub, customVote(given)))
	g.stop(t)
	// With no root known at all, the start says that the first request will pin it (WARN).
	u := start(t, append([]string{"--network", cfg, "--genesis-time", strconv.FormatInt(genesis, 10)}, keys...)...)
	if log := u.Stderr.waitFor(t, "far-future guard on", 10*time.Second); !strings.Contains(log, "genesis validators root unknown: the first block or attestation signed pins it") {
		t.Errorf("an unknown root is not announced:\n%s", log)
	}
	u.stop(t)
}

// A database pinned to another chain's genesis validators root (here by an import) is a start-up
// error on a network that knows its root.
func TestE2EDatabaseOfAnotherChainRefused(t *testing.T) {
	data := t.TempDir()
	doc := filepath.Join(t.TempDir(), "other-chain.json")
	other := phase0.Root{0xaa, 0xbb}
	if err := os.WriteFile(doc, slashingtest.Document(other, slashing.ValidatorHistory{
		Pubkey: slashingtest.Key(1), SignedAttestations: []slashing.SignedAttestation{slashingtest.A(1, 2, 3)},
	}), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "slashing", "import", "--data-dir", data, "--file", doc); code != 0 || !strings.Contains(errs, "created a new slashing-protection database") {
		t.Fatalf("import into a missing database: exit %d\n%s%s", code, out, errs)
	}
	code, out := runServe(t, "--network", "mainnet", "--data-dir", data)
	if code != 1 || !strings.Contains(out, "belongs to another chain") || !strings.Contains(out, "0xaabb") {
		t.Fatalf("serve on another chain's database: exit %d\n%s", code, out)
	}
}

// A key deleted through the keymanager (disabled in the slashing database) that an operator's
// source brings back is served but refused, and /healthcheck says so; a reload never disables.
func TestE2EHealthcheckListsDisabledKeys(t *testing.T) {
	const k = 40
	pub := interopPub(t, k)
	dataDir := t.TempDir()
	ksDir := filepath.Join(t.TempDir(), "keystores")
	pw := filepath.Join(t.TempDir(), "password.txt")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(ksDir, 0o700); err != nil {
		t.Fatal(err)
	}
	v := start(t, "--network", "mainnet", "--key-manager-api-enabled", "--data-dir", dataDir,
		"--keystores-path", ksDir, "--keystores-password-file", pw)
	raw, err := os.ReadFile(filepath.Join(dataDir, "keymanager-token"))
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + strings.TrimSpace(string(raw))
	if st := kmImport(t, v, auth, map[string]any{"keystores": []string{kmKeystoreJSON(t, k, "km")}, "passwords": []string{"km"}}); len(st) != 1 || st[0].Status != "imported" {
		t.Fatalf("import: %+v", st)
	}
	e := signingtest.NowEpoch()
	signature(t, v.signJSON(t, pub, signingtest.VoteRequest(e-1, e, 1)))
	if st, _ := kmDelete(t, v, auth, pub); len(st) != 1 || st[0].Status != "deleted" {
		t.Fatalf("delete: %+v", st)
	}
	if hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil); strings.Contains(string(hc.body), "disabled-keys") {
		t.Fatalf("a key that is not loaded is listed as disabled: %s", hc)
	}

	// The operator puts the same key into the keystore directory and reloads: it is served (a
	// reload loads, it never enables or disables) but refused, and health names it.
	if err := os.WriteFile(filepath.Join(ksDir, "k.json"), []byte(kmKeystoreJSON(t, k, "pw")), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if r := do(t, http.MethodPost, v.URL+"/reload", "", nil); r.status != http.StatusAccepted {
		t.Fatalf("POST /reload: %s", r)
	}
	waitReload(t, v, t0)
	wantError(t, v.signJSON(t, pub, signingtest.VoteRequest(e, e+1, 1)), http.StatusPreconditionFailed, "disabled")
	hc := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if !strings.Contains(string(hc.body), `"disabled-keys":["`+pub+`"]`) {
		t.Fatalf("healthcheck does not list the disabled key: %s", hc)
	}
	v.stop(t)
}

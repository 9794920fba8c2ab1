package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/internal/signingtest"
)

// hasKey reports whether n serves pub in its publicKeys (reads work on a standby too).
func hasKey(t testing.TB, n *haNode, pub string) bool {
	r := do(t.(*testing.T), http.MethodGet, n.v.URL+"/api/v1/eth2/publicKeys", "", nil)
	return r.status == http.StatusOK && strings.Contains(string(r.body), pub)
}

// waitKey waits until n serves pub (want) or no longer serves it (!want).
func waitKey(t *testing.T, n *haNode, pub string, want bool, timeout time.Duration) {
	t.Helper()
	if !haPollEvery(100*time.Millisecond, timeout, func() bool { return hasKey(t, n, pub) == want }) {
		t.Fatalf("%s: key %s served = %v after %s, want %v\n%s", n.id, pub, !want, timeout, want, haTailLines(haQuietLog(n.v.Stderr.String()), 30))
	}
}

// Keys follow the leader (#12 item 4): a keystore imported through the keymanager API on the
// leader, and one imported with `vigil keys import --to shared` (no instance involved), are
// signing on the leader without a reload and on the other instance after a kill -9 takeover;
// deletes (keymanager on the new leader, `vigil keys delete --from shared`) reach both. A
// local keyring in a pair is warned about at start.
func TestHAKeysFollowTheLeader(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	if err := os.WriteFile(kek, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + strings.Repeat("ab", 32)
	p := newHAPair(t, haPairOptions{keys: 1, extraArgs: []string{
		"--key-manager-api-enabled", "--key-manager-api-token-file", token, "--ha-key-encryption-key-file", kek,
		"--keyring-path", filepath.Join(dir, "no-keyring-here"),
	}})
	p.requireHA(t)
	a, b := p.nodes[0], p.nodes[1]
	p.checkRoles(t, a, b)
	if !strings.Contains(a.v.Stderr.String(), "its keys do not follow the leader") {
		t.Errorf("a local keyring in a pair is not warned about:\n%s", haTailLines(a.v.Stderr.String(), 40))
	}

	const viaKM, viaCLI = 40, 41
	pubKM, pubCLI := interopPub(t, viaKM), interopPub(t, viaCLI)
	e := signingtest.NowEpoch()

	// 1. keymanager import on the leader: it signs there at once; the standby loads it.
	kmStatuses(t, "import", kmImport(t, a.v, auth, map[string]any{"keystores": []string{kmKeystoreJSON(t, viaKM, "pw")}, "passwords": []string{"pw"}}), "imported")
	signature(t, a.v.signJSON(t, pubKM, signingtest.VoteRequest(e-2, e-1, 1)))
	waitKey(t, b, pubKM, true, 10*time.Second)

	// 2. `vigil keys import --to shared` while the pair runs: both pick it up by themselves.
	ksArgs := writeKeystores(t, viaCLI)
	code, out, errs := runCLI(t, "keys", "import", "--to", "shared", "--keystores", ksArgs[1], "--password-file", ksArgs[3],
		"--slashing-protection-db-url", p.dbURL, "--ha-key-encryption-key-file", kek)
	if code != 0 || !strings.Contains(out, "1 imported") || !strings.Contains(out, "pick the new keys up by themselves") {
		t.Fatalf("keys import --to shared: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCLI(t, "keys", "import", "--to", "shared", "--keystores", ksArgs[1], "--password-file", ksArgs[3],
		"--slashing-protection-db-url", p.dbURL, "--ha-key-encryption-key-file", kek); code != 0 || !strings.Contains(out, "1 duplicate") {
		t.Fatalf("a second import of the same keystore: exit %d, want a duplicate\n%s", code, out)
	}
	waitKey(t, a, pubCLI, true, 10*time.Second)
	waitKey(t, b, pubCLI, true, 10*time.Second)
	signature(t, a.v.signJSON(t, pubCLI, signingtest.VoteRequest(e-2, e-1, 1)))
	if code, out, errs := runCLI(t, "keys", "list", "--from", "shared", "--slashing-protection-db-url", p.dbURL, "--ha-key-encryption-key-file", kek); code != 0 ||
		!strings.Contains(out, pubKM+"\tshared\tok") || !strings.Contains(out, pubCLI+"\tshared\tok") {
		t.Fatalf("keys list --from shared: exit %d\n%s%s", code, out, errs)
	}

	// 3. kill -9 the leader: the other instance signs both keys, with their history (a double
	// vote of what the old leader signed is refused).
	a.signal(t, syscall.SIGKILL)
	b.waitTransition(t, "leader", 0, 3*p.lease+20*time.Second)
	for _, pub := range []string{pubKM, pubCLI} {
		signature(t, b.v.signJSON(t, pub, signingtest.VoteRequest(e-1, e, 1)))
		wantError(t, b.v.signJSON(t, pub, signingtest.VoteRequest(e-2, e-1, 2)), http.StatusPreconditionFailed, "double")
	}
	p.mustRestart(t, a)
	a.waitTransition(t, "standby", 0, 3*p.lease+20*time.Second)
	waitKey(t, a, pubKM, true, 10*time.Second)

	// 4. Deletes reach both: keymanager DELETE on the new leader, `keys delete --from shared`.
	if st, _ := kmDelete(t, b.v, auth, pubKM); len(st) != 1 || st[0].Status != "deleted" {
		t.Fatalf("keymanager delete on the new leader: %+v", st)
	}
	waitKey(t, a, pubKM, false, 10*time.Second)
	if code, out, errs := runCLI(t, "keys", "delete", "--from", "shared", "--pubkeys", pubCLI,
		"--slashing-protection-db-url", p.dbURL, "--ha-key-encryption-key-file", kek); code != 0 || !strings.Contains(out, pubCLI+"\tdeleted") {
		t.Fatalf("keys delete --from shared: exit %d\n%s%s", code, out, errs)
	}
	waitKey(t, b, pubCLI, false, 10*time.Second)
	waitKey(t, a, pubCLI, false, 10*time.Second)
	wantError(t, b.v.signJSON(t, pubCLI, signingtest.VoteRequest(e, e+1, 1)), http.StatusNotFound, "")

	// Without the pair's key-encryption key the shared store is refused by name.
	if code, out, errs := runCLI(t, "keys", "list", "--from", "shared", "--slashing-protection-db-url", p.dbURL); code == 0 || !strings.Contains(out+errs, "needs --slashing-protection-db-url (or VIGIL_SLASHING_PROTECTION_DB_URL) and --ha-key-encryption-key-file") {
		t.Fatalf("shared store without a KEK: exit %d\n%s%s", code, out, errs)
	}
}

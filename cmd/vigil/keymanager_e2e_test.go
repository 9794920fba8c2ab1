package main

// End-to-end test of the keymanager API (/eth/v1/keystores) against the real binary: import with
// slashing protection, list, duplicates, per-keystore errors, delete with the exported history,
// readonly keys, restart with the same data dir, authentication and malformed requests. Uses the
// process and HTTP helpers of e2e_test.go.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/vigil-signer/vigil/internal/signingtest"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing"
)

// kmRequest sends a keymanager request with "Authorization: <auth>" (none when auth is "").
func kmRequest(t *testing.T, v *vigil, method, auth string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, v.URL+"/eth/v1/keystores", rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s /eth/v1/keystores: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
}

type kmStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type kmKey struct {
	Pubkey         string `json:"validating_pubkey"`
	DerivationPath string `json:"derivation_path"`
	Readonly       bool   `json:"readonly"`
}

func kmDecode(t *testing.T, r reply, v any) {
	t.Helper()
	if r.status != http.StatusOK || r.ctype != ctJSON {
		t.Fatalf("want 200 %s, got %s", ctJSON, r)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func kmStatuses(t *testing.T, what string, got []kmStatus, want ...string) {
	t.Helper()
	var s []string
	for _, g := range got {
		s = append(s, g.Status)
	}
	if !slices.Equal(s, want) {
		t.Fatalf("%s: statuses %v (%+v), want %v", what, s, got, want)
	}
}

func kmList(t *testing.T, v *vigil, auth string) []kmKey {
	t.Helper()
	var body struct {
		Data []kmKey `json:"data"`
	}
	kmDecode(t, kmRequest(t, v, http.MethodGet, auth, nil), &body)
	return body.Data
}

func kmImport(t *testing.T, v *vigil, auth string, body any) []kmStatus {
	t.Helper()
	var resp struct {
		Data []kmStatus `json:"data"`
	}
	kmDecode(t, kmRequest(t, v, http.MethodPost, auth, body), &resp)
	return resp.Data
}

func kmDelete(t *testing.T, v *vigil, auth string, pubs ...string) ([]kmStatus, map[string][]phase0.Slot) {
	t.Helper()
	var resp struct {
		Data               []kmStatus `json:"data"`
		SlashingProtection *string    `json:"slashing_protection"`
	}
	kmDecode(t, kmRequest(t, v, http.MethodDelete, auth, map[string]any{"pubkeys": pubs}), &resp)
	if resp.SlashingProtection == nil {
		t.Fatalf("DELETE reply without slashing_protection: %s", resp.Data)
	}
	dec := slashing.NewDecoder(strings.NewReader(*resp.SlashingProtection))
	meta, err := dec.Metadata()
	if err != nil {
		t.Fatalf("slashing_protection %s: %v", *resp.SlashingProtection, err)
	}
	if meta.GenesisValidatorsRoot != signingtest.MainnetGVR {
		t.Errorf("slashing_protection genesis root %#x, want mainnet's", meta.GenesisValidatorsRoot)
	}
	blocks := map[string][]phase0.Slot{}
	for {
		h, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("slashing_protection %s: %v", *resp.SlashingProtection, err)
		}
		pk := signingtest.Hex(h.Pubkey[:])
		blocks[pk] = []phase0.Slot{}
		for _, b := range h.SignedBlocks {
			blocks[pk] = append(blocks[pk], b.Slot)
		}
	}
	return resp.Data, blocks
}

// kmKeystoreJSON is interop key i's keystore under password (cheap pbkdf2) with an EIP-2334 path.
func kmKeystoreJSON(t *testing.T, i uint64, password string) string {
	t.Helper()
	b, err := keystore.Encrypt(interopKey(t, i), []byte(password), keystore.DevKDF(), fmt.Sprintf("m/12381/3600/%d/0/0", i))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestE2EKeyManager(t *testing.T) {
	const a, b, c, d, unknown = 20, 21, 22, 23, 30 // c: operator-managed (--keystores-path)
	pubA, pubB, pubC, pubUnknown := interopPub(t, a), interopPub(t, b), interopPub(t, c), interopPub(t, unknown)
	dataDir := t.TempDir()
	args := append([]string{"--network", "mainnet", "--key-manager-api-enabled", "--data-dir", dataDir}, writeKeystores(t, c)...)
	v := start(t, args...)

	// The token file: created at first start, 0600, 32 random bytes in hex; its path is printed,
	// the token itself never.
	tokenFile := filepath.Join(dataDir, "keymanager-token")
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	token := strings.TrimSpace(string(raw))
	if b, err := hex.DecodeString(token); err != nil || len(b) != 32 {
		t.Fatalf("token %d characters, want 64 hex digits", len(token))
	}
	if fi, _ := os.Stat(tokenFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	v.Stdout.waitFor(t, "keymanager API at "+v.URL+"/eth/v1/keystores (bearer token in "+tokenFile+")", 5*time.Second)
	auth := "Bearer " + token

	// Authentication: no token 401, a wrong one 403 (the spec's Unauthorized / Forbidden).
	wantError(t, kmRequest(t, v, http.MethodGet, "", nil), http.StatusUnauthorized, "bearer token")
	wantError(t, kmRequest(t, v, http.MethodGet, "Bearer "+strings.Repeat("0", 64), nil), http.StatusForbidden, "invalid")
	wantError(t, kmRequest(t, v, http.MethodPost, "Basic "+token, map[string]any{"keystores": []string{}, "passwords": []string{}}), http.StatusUnauthorized, "")
	wantError(t, kmRequest(t, v, http.MethodDelete, "Bearer nope", map[string]any{"pubkeys": []string{pubC}}), http.StatusForbidden, "")

	if got := kmList(t, v, auth); len(got) != 1 || got[0] != (kmKey{Pubkey: pubC, Readonly: true}) {
		t.Fatalf("initial list %+v, want the operator key, readonly", got)
	}

	// Blocks at slot S: the history sent with the import has A's block at S (root of signingtest.BlockHeader(S, 1))
	// and one for C, which is not being imported and so must be ignored.
	fd := signingtest.MainnetFork("DENEB")
	slot := signingtest.ForkSlot("DENEB", 700)
	blockReq := func(s phase0.Slot, seed byte) (map[string]any, phase0.Root) {
		h := signingtest.BlockHeader(s, seed)
		return map[string]any{"type": "BLOCK_V2", "fork_info": signingtest.ForkInfoJSON(fd), "beacon_block": map[string]any{"version": "DENEB", "block_header": h}},
			signingtest.ForkedRoot(t, signingtest.DomainBeaconProposer, fd, signingtest.EpochOf(s), signingtest.HashTreeRoot(t, h))
	}
	_, rootS1 := blockReq(slot, 1)
	otherRoot := signingtest.Root32(77)
	interchange := func(gvr phase0.Root) string {
		return fmt.Sprintf(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"%s"},"data":[`+
			`{"pubkey":"%s","signed_blocks":[{"slot":"%d","signing_root":"%s"}],"signed_attestations":[]},`+
			`{"pubkey":"%s","signed_blocks":[{"slot":"%d","signing_root":"%s"}],"signed_attestations":[]}]}`,
			signingtest.Hex(gvr[:]), pubA, slot, signingtest.Hex(rootS1[:]), pubC, slot, signingtest.Hex(otherRoot[:]))
	}

	// Import A, B and D (wrong password): D is an error with a message, A and B are imported.
	res := kmImport(t, v, auth, map[string]any{
		"keystores":           []string{kmKeystoreJSON(t, a, "pw-a"), kmKeystoreJSON(t, b, "pw-b"), kmKeystoreJSON(t, d, "pw-d")},
		"passwords":           []string{"pw-a", "pw-b", "not-pw-d"},
		"slashing_protection": interchange(signingtest.MainnetGVR),
	})
	kmStatuses(t, "import", res, "imported", "imported", "error")
	if !strings.Contains(res[2].Message, "wrong password") {
		t.Errorf("wrong password message %q", res[2].Message)
	}
	for _, pub := range []string{pubA, pubB} {
		for _, p := range []string{filepath.Join(dataDir, "keymanager", "keystores", pub+".json"), filepath.Join(dataDir, "keymanager", "passwords", pub+".txt")} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("persisted %s: %v %v", p, err, fi)
			}
		}
	}

	// Signing: A's imported history holds (another root at S is 412, the identical block signs
	// again), a later slot signs; C's entry was not imported.
	// The first request for A is the conflicting one: only the imported history can refuse it.
	body, _ := blockReq(slot, 2)
	wantError(t, v.signJSON(t, pubA, body), http.StatusPreconditionFailed, "double_proposal")
	body, root := blockReq(slot, 1)
	wantSignature(t, a, root, signature(t, v.signJSON(t, pubA, body)))
	body, root = blockReq(slot+1, 3)
	wantSignature(t, a, root, signature(t, v.signJSON(t, pubA, body)))
	body, root = blockReq(slot, 4)
	wantSignature(t, b, root, signature(t, v.signJSON(t, pubB, body)))
	body, root = blockReq(slot, 5)
	wantSignature(t, c, root, signature(t, v.signJSON(t, pubC, body)))

	// List: sorted, imported keys with their derivation path, the operator key readonly.
	want := []kmKey{
		{Pubkey: pubA, DerivationPath: "m/12381/3600/20/0/0"},
		{Pubkey: pubB, DerivationPath: "m/12381/3600/21/0/0"},
		{Pubkey: pubC, Readonly: true},
	}
	slices.SortFunc(want, func(x, y kmKey) int { return strings.Compare(x.Pubkey, y.Pubkey) })
	if got := kmList(t, v, auth); !slices.Equal(got, want) {
		t.Errorf("list %+v, want %+v", got, want)
	}

	// Duplicates: an imported key and the operator key.
	res = kmImport(t, v, auth, map[string]any{
		"keystores": []string{kmKeystoreJSON(t, a, "x"), kmKeystoreJSON(t, c, "y")}, "passwords": []string{"x", "y"},
	})
	kmStatuses(t, "duplicates", res, "duplicate", "duplicate")

	// Malformed requests: 400, nothing imported (D with the right password but a document for
	// another network).
	wantError(t, kmRequest(t, v, http.MethodPost, auth, `{"keystores":[`), http.StatusBadRequest, "JSON")
	wantError(t, kmRequest(t, v, http.MethodPost, auth, map[string]any{"keystores": []string{"a", "b"}, "passwords": []string{"p"}}), http.StatusBadRequest, "passwords")
	wantError(t, kmRequest(t, v, http.MethodDelete, auth, `{"pubkeys":["0x12"]}`), http.StatusBadRequest, "pubkeys[0]")
	wantError(t, kmRequest(t, v, http.MethodPost, auth, map[string]any{
		"keystores": []string{kmKeystoreJSON(t, d, "pw-d")}, "passwords": []string{"pw-d"}, "slashing_protection": interchange(signingtest.Root32(9)),
	}), http.StatusBadRequest, "genesis")
	if got := kmList(t, v, auth); len(got) != 3 {
		t.Errorf("a refused import changed the keys: %+v", got)
	}

	// Delete: A deleted with its history, the unknown key not_found, the operator key an error,
	// A repeated not_active.
	del, hist := kmDelete(t, v, auth, pubA, pubUnknown, pubC, pubA)
	kmStatuses(t, "delete", del, "deleted", "not_found", "error", "not_active")
	if !strings.Contains(del[2].Message, "readonly") {
		t.Errorf("readonly delete message %q", del[2].Message)
	}
	if got := hist[pubA]; !slices.Equal(got, []phase0.Slot{slot, slot + 1}) || len(hist) != 1 {
		t.Errorf("exported history %v, want A's blocks at %d and %d only", hist, slot, slot+1)
	}
	body, _ = blockReq(slot+2, 6)
	wantError(t, v.signJSON(t, pubA, body), http.StatusNotFound, "")
	if _, err := os.Stat(filepath.Join(dataDir, "keymanager", "keystores", pubA+".json")); err == nil {
		t.Error("deleted key's keystore still persisted")
	}

	// Again: not_active, the history is still there.
	del, hist = kmDelete(t, v, auth, pubA)
	kmStatuses(t, "delete again", del, "not_active")
	if got := hist[pubA]; !slices.Equal(got, []phase0.Slot{slot, slot + 1}) {
		t.Errorf("second export %v", hist)
	}

	// The token never reaches the output.
	if strings.Contains(v.Stdout.String(), token) || strings.Contains(v.Stderr.String(), token) {
		t.Error("the token appears in vigil's output")
	}
	for _, pw := range []string{"pw-a", "pw-b", "not-pw-d"} {
		if strings.Contains(v.Stderr.String(), pw) {
			t.Errorf("password %q appears in the log", pw)
		}
	}

	// Restart with the same data dir: B comes back (not A), with the same token.
	v.stop(t)
	v = start(t, args...)
	want = []kmKey{{Pubkey: pubB, DerivationPath: "m/12381/3600/21/0/0"}, {Pubkey: pubC, Readonly: true}}
	slices.SortFunc(want, func(x, y kmKey) int { return strings.Compare(x.Pubkey, y.Pubkey) })
	if got := kmList(t, v, auth); !slices.Equal(got, want) {
		t.Errorf("list after restart %+v, want %+v", got, want)
	}
	wantError(t, v.signJSON(t, pubA, body), http.StatusNotFound, "")
	body, root = blockReq(slot+1, 7)
	wantSignature(t, b, root, signature(t, v.signJSON(t, pubB, body)))

	// Import A again: enabled again; its history still refuses a second block at S.
	res = kmImport(t, v, auth, map[string]any{"keystores": []string{kmKeystoreJSON(t, a, "again")}, "passwords": []string{"again"}})
	kmStatuses(t, "re-import", res, "imported")
	body, _ = blockReq(slot, 2)
	wantError(t, v.signJSON(t, pubA, body), http.StatusPreconditionFailed, "")
	body, root = blockReq(slot+2, 8)
	wantSignature(t, a, root, signature(t, v.signJSON(t, pubA, body)))
}

func TestKeyManagerTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "token")
	tok, created, err := keyManagerToken(path)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("create: %q %v %v", tok, created, err)
	}
	again, created, err := keyManagerToken(path)
	if err != nil || created || again != tok {
		t.Fatalf("read back: %v %v, same token %v", created, err, again == tok)
	}
	for content, ok := range map[string]bool{"  abc\n": true, "\n\n": false, "a b\n": false, "": false} {
		p := filepath.Join(dir, fmt.Sprintf("t%d", len(content)))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, _, err := keyManagerToken(p)
		if ok != (err == nil) || (ok && got != "abc") {
			t.Errorf("token file %q: %q %v", content, got, err)
		}
	}

	// The managed key directory is a key source when the API is on, or when keys were imported
	// before (they keep loading with the API off).
	f := keyManagerFlags{maxBodyBytes: 1 << 20}
	if m, err := f.managedKeys(dir); m != nil || err != nil {
		t.Errorf("API off, nothing imported: %v %v", m, err)
	}
	f.enabled = true
	if m, err := f.managedKeys(dir); m == nil || err != nil {
		t.Errorf("API on: %v %v", m, err)
	}
	if err := os.MkdirAll(keyManagerDir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	f.enabled = false
	if m, err := f.managedKeys(dir); m == nil || err != nil {
		t.Errorf("API off, keys imported before: %v %v", m, err)
	}
	f.maxBodyBytes = 10
	if _, err := f.managedKeys(dir); err == nil {
		t.Error("tiny body limit accepted")
	}
}

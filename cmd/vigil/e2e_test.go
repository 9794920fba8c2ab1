package main

// End-to-end acceptance test of the signing core: the real vigil binary, started as a subprocess,
// driven over HTTP. Expected signatures come from outside the product: the Lodestar v1.5.1 golden
// samples, and signing roots computed by internal/signingtest from go-eth2-client's generated
// (static, mainnet-sized) HashTreeRoot methods plus the spec's compute_domain /
// compute_signing_root, signed with the interop secret keys. Nothing here calls the signer
// package.
//
// The tests are split by concern: proc_test.go (the binary, its processes, HTTP and key
// helpers), e2e_mainnet_test.go (every sign type and fork on mainnet), e2e_badinput_test.go
// (refused requests), and this file (golden samples, health, bad key files, dev mode).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/signingtest"
	"github.com/vigil-signer/vigil/keystore"
)

// ---------------------------------------------------------------------------------------------
// 2a. The Lodestar golden samples.

const lodestarDir = "/work/shared/testdata/lodestar-v1.5.1-requests"

type lodestarSample struct {
	name    string
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
	} `json:"request"`
	Index    *uint64         `json:"interop_validator_index"`
	Body     json.RawMessage `json:"body"`
	Response struct {
		Status int `json:"status"`
		Body   struct {
			Signature string `json:"signature"`
		} `json:"body"`
	} `json:"response"`
}

func TestE2ELodestarSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(lodestarDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Lodestar samples in %s (%v)", lodestarDir, err)
	}
	var samples []lodestarSample
	var indices []uint64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s lodestarSample
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if s.Index == nil || len(s.Body) == 0 {
			continue // keymanager-remotekeys.json: not a sign request
		}
		s.name = strings.TrimSuffix(filepath.Base(f), ".json")
		samples = append(samples, s)
		if !slices.Contains(indices, *s.Index) {
			indices = append(indices, *s.Index)
		}
	}
	if len(samples) != 25 {
		t.Fatalf("found %d sign samples, want 25", len(samples))
	}

	// One server for all samples: every key signs at most one block and one attestation, so
	// nothing conflicts; the second pass re-signs everything (identical repeats are allowed).
	// The samples come from a devnet whose genesis lies in the past: a genesis time a day ago
	// keeps the far-future guard on and every sample well inside it.
	v := start(t, append([]string{"--network", "minimal", "--genesis-time", dayAgo()}, writeKeystores(t, indices...)...)...)
	for pass, accept := range []string{"sample", ""} {
		for _, s := range samples {
			t.Run(fmt.Sprintf("%s/pass%d", s.name, pass+1), func(t *testing.T) {
				pub := strings.TrimPrefix(s.Request.Path, signPath(""))
				if pub != interopPub(t, *s.Index) {
					t.Fatalf("sample path key %s is not interop key %d", pub, *s.Index)
				}
				if s.Request.Method != http.MethodPost || s.Response.Status != http.StatusOK {
					t.Fatalf("unexpected sample shape %s / %d", s.Request.Method, s.Response.Status)
				}
				hdr := accept
				if accept == "sample" {
					hdr = s.Request.Headers["accept"]
				}
				r := do(t, http.MethodPost, v.URL+s.Request.Path, hdr, []byte(s.Body))
				var got keystore.Signature
				if hdr == "" {
					if r.status != http.StatusOK || r.ctype != ctText {
						t.Fatalf("want 200 %s, got %s", ctText, r)
					}
					got = parseSig(t, string(r.body))
				} else {
					got = signature(t, r)
				}
				if want := s.Response.Body.Signature; got.String() != want {
					t.Fatalf("signature\n got %s\nwant %s", got, want)
				}
				// The sample's signingRoot was checked by the server against its own computation;
				// check the signature really signs it.
				var b struct {
					SigningRoot string `json:"signingRoot"`
				}
				_ = json.Unmarshal(s.Body, &b)
				wantSignature(t, *s.Index, signingtest.MustRoot(b.SigningRoot), got)
			})
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Health.

type healthCheck struct {
	ID     string         `json:"id"`
	Status string         `json:"status"`
	Data   map[string]any `json:"data"`
	Checks []healthCheck  `json:"checks"`
}

type health struct {
	Status  string        `json:"status"`
	Checks  []healthCheck `json:"checks"`
	Outcome string        `json:"outcome"`
}

func decodeHealth(t *testing.T, b []byte) health {
	t.Helper()
	var h health
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("/healthcheck body: %v: %s", err, b)
	}
	return h
}

// wantHealth checks Web3Signer's /healthcheck shape and returns the keystores sub-check.
func wantHealth(t *testing.T, h health, status string, loaded, errs int) healthCheck {
	t.Helper()
	if h.Status != status || h.Outcome != status {
		t.Errorf("status/outcome %s/%s, want %s", h.Status, h.Outcome, status)
	}
	var ids []string
	for _, c := range h.Checks {
		ids = append(ids, c.ID)
	}
	if want := []string{"default-check", "slashing-protection-db-health-check", "keys-check"}; !slices.Equal(ids, want) {
		t.Fatalf("check ids %v, want %v", ids, want)
	}
	if h.Checks[0].Status != "UP" || h.Checks[1].Status != "UP" {
		t.Errorf("default/db checks: %+v %+v", h.Checks[0], h.Checks[1])
	}
	keys := h.Checks[2]
	if len(keys.Checks) != 1 || keys.Checks[0].ID != "keystores-bulk-loading" {
		t.Fatalf("keys-check sub-checks: %+v", keys.Checks)
	}
	sub := keys.Checks[0]
	wantStatus := "UP"
	if errs > 0 {
		wantStatus = "DOWN"
	}
	if keys.Status != wantStatus || sub.Status != wantStatus {
		t.Errorf("keys-check %s, keystores-bulk-loading %s, want %s", keys.Status, sub.Status, wantStatus)
	}
	if sub.Data["keys-loaded"] != float64(loaded) || sub.Data["error-count"] != float64(errs) {
		t.Errorf("keystores-bulk-loading data %v, want keys-loaded %d error-count %d", sub.Data, loaded, errs)
	}
	return sub
}

// ---------------------------------------------------------------------------------------------
// 4. Bad key files.

func TestE2EBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	keys, pw := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	good, err := keystore.WriteInteropKeystores(keys, pw, []uint64{0}, keystore.DevKDF())
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := keystore.Encrypt(interopKey(t, 1), []byte("not the directory's password"), keystore.DevKDF(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "wrong-password.json"), wrong, 0o600); err != nil {
		t.Fatal(err)
	}
	password, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := keystore.Encrypt(interopKey(t, 2), bytes.TrimRight(password, "\r\n"), keystore.DevKDF(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "truncated.json"), whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}

	v := start(t, "--network", "minimal", "--genesis-time", dayAgo(), "--keystores-path", keys, "--keystores-password-file", pw)
	stderr := v.Stderr.waitFor(t, "truncated.json", 10*time.Second)
	if !strings.Contains(stderr, "wrong-password.json") {
		t.Errorf("stderr does not name wrong-password.json:\n%s", stderr)
	}

	f := phase0.Fork{PreviousVersion: phase0.Version{0, 0, 0, 1}, CurrentVersion: phase0.Version{1, 0, 0, 1}}
	randao := map[string]any{"type": "RANDAO_REVEAL", "fork_info": map[string]any{
		"fork":                    map[string]any{"previous_version": signingtest.Hex(f.PreviousVersion[:]), "current_version": signingtest.Hex(f.CurrentVersion[:]), "epoch": "0"},
		"genesis_validators_root": signingtest.Hex(signingtest.MainnetGVR[:]),
	}, "randao_reveal": map[string]any{"epoch": "3"}}
	root := signingtest.ComputeSigningRoot(t, signingtest.Uint64Root(3), signingtest.ComputeDomain(t, signingtest.DomainRandao, f.CurrentVersion, signingtest.MainnetGVR))
	wantSignature(t, 0, root, signature(t, v.signJSON(t, good[0].String(), randao)))
	for _, i := range []uint64{1, 2} {
		wantError(t, v.signJSON(t, interopPub(t, i), randao), http.StatusNotFound, "")
	}

	r := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if r.status != http.StatusServiceUnavailable || r.ctype != ctJSON {
		t.Fatalf("/healthcheck: want 503 JSON, got %s", r)
	}
	sub := wantHealth(t, decodeHealth(t, r.body), "DOWN", 1, 2)
	errs, _ := sub.Data["errors"].([]any)
	joined := fmt.Sprint(errs)
	if len(errs) != 2 || !strings.Contains(joined, "wrong-password.json") || !strings.Contains(joined, "truncated.json") {
		t.Errorf("keystores-bulk-loading errors %v do not name both bad files", sub.Data["errors"])
	}
	r = do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
	if want := `["` + good[0].String() + `"]`; strings.TrimSpace(string(r.body)) != want {
		t.Errorf("publicKeys %s, want %s", r.body, want)
	}
}

// ---------------------------------------------------------------------------------------------
// 5. Dev mode.

func TestE2EDevMode(t *testing.T) {
	v := start(t, "--dev")
	out := v.Stdout.waitFor(t, "try: curl", 10*time.Second)
	if !strings.Contains(out, "serving the signing API at "+v.URL+" ") {
		t.Errorf("stdout does not print the URL %s:\n%s", v.URL, out)
	}
	var want []string
	for i := range uint64(4) {
		pub := interopPub(t, i)
		want = append(want, pub)
		if !strings.Contains(out, "  "+pub+"\n") {
			t.Errorf("stdout does not list interop key %d (%s):\n%s", i, pub, out)
		}
	}
	r := do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
	var got []string
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("publicKeys: %v: %s", err, r.body)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("publicKeys %v, want %v", got, want)
	}
}

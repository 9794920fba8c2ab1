package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
)

type fakeReloader struct {
	mu      sync.Mutex
	running bool
	timeout time.Duration
	status  signer.ReloadStatus
}

func (f *fakeReloader) Reload(timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running {
		return signer.ErrReloadRunning
	}
	f.running, f.timeout = true, timeout
	f.status = signer.ReloadStatus{State: signer.ReloadRunning, Started: time.Unix(1700000000, 0)}
	return nil
}

func (f *fakeReloader) Status() signer.ReloadStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func TestReloadRoutes(t *testing.T) {
	rl := &fakeReloader{}
	h := newHandler(t, &fakeSigner{}, func(o *Options) { o.Reloader = rl; o.ReloadTimeout = 7 * time.Second })

	rec := do(h, http.MethodPost, "/reload", "")
	if rec.Code != http.StatusAccepted || rl.timeout != 7*time.Second {
		t.Fatalf("POST /reload = %d %s (timeout %v)", rec.Code, rec.Body, rl.timeout)
	}
	rec = do(h, http.MethodPost, "/reload", "")
	if rec.Code != http.StatusConflict {
		t.Fatalf("POST /reload while running = %d; want 409", rec.Code)
	}
	var e struct{ Message string }
	if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Message == "" {
		t.Fatalf("409 body %s", rec.Body)
	}

	rl.mu.Lock()
	rl.running = false
	rl.status = signer.ReloadStatus{State: signer.ReloadDegraded, Started: time.Unix(1700000000, 0), Finished: time.Unix(1700000002, 0),
		Keys: 5, Added: 2, Removed: 1, Kept: 3, Sources: []signer.SourceReport{
			{Name: "vault", Loaded: 3, Kept: 3, Err: errors.New("vault at https://v:8200: sealed")},
			{Name: "local", Loaded: 2, Errors: []keystore.LoadError{{Item: "k.key", Err: keystore.ErrMalformed}}},
		}}
	rl.mu.Unlock()
	rec = do(h, http.MethodGet, "/reload", "")
	var got reloadStatusJSON
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
		t.Fatalf("GET /reload = %d %s", rec.Code, rec.Body)
	}
	if got.Status != "degraded" || got.Keys != 5 || got.Added != 2 || got.Removed != 1 || len(got.Sources) != 2 ||
		got.Sources[0].Status != "DOWN" || got.Sources[0].Error == "" || got.Sources[0].Kept != 3 || len(got.Sources[1].Errors) != 1 {
		t.Fatalf("GET /reload body %s", rec.Body)
	}
	// Without a Reloader the routes do not exist.
	if rec := do(newHandler(t, &fakeSigner{}, nil), http.MethodPost, "/reload", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("POST /reload without a reloader = %d", rec.Code)
	}
}

// Health and reload reports hide addresses and host names, shorten paths, and keep the reason.
func TestPublicTextHidesWhere(t *testing.T) {
	for in, want := range map[string]string{
		"vault at https://vault.corp.example:8200: LIST secret/metadata/x: sealed":    "vault at (address): LIST secret/metadata/x: sealed",
		"dial tcp: lookup vault.corp.example on 127.0.0.53:53: no such host":          "dial tcp: lookup (address) on (address): no such host",
		"x509: certificate is valid for vault.corp.example, not vault2.corp.example":  "x509: certificate is valid for (address), not (address)",
		"failed to connect to `host=db.corp.example user=vigil database=slashing`: x": "failed to connect to `host=(address) user=(address) database=(address)`: x",
		"open /var/lib/vigil/keystores/k.json: permission denied":                     "open k.json: permission denied",
		"hsm: CKR_PIN_INCORRECT": "hsm: CKR_PIN_INCORRECT",
	} {
		if got := publicText(in); got != want {
			t.Errorf("publicText(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// fakeSigner is a hand-written api.Signer: sign decides each Sign call; Health returns health.
type fakeSigner struct {
	sign   func(id string, r *signer.Request) (keystore.Signature, error)
	keys   *signer.KeySet
	health signer.Health
	leader error // CheckLeader's answer (nil: the leader)
	busy   error // Admitting's answer (nil: admitting)

	mu            sync.Mutex
	signCalls     int
	ids           []string
	healthCalls   int
	healthTimeout time.Duration
}

var _ Signer = (*fakeSigner)(nil)

func (f *fakeSigner) Sign(ctx context.Context, id string, r *signer.Request) (keystore.Signature, error) {
	f.mu.Lock()
	f.signCalls++
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	if ctx == nil || r == nil {
		return keystore.Signature{}, errors.New("fakeSigner: nil context or request")
	}
	if f.sign == nil {
		return testSig, nil
	}
	return f.sign(id, r)
}

func (f *fakeSigner) Keys() *signer.KeySet {
	if f.keys == nil {
		return keyset.New(nil)
	}
	return f.keys
}

func (f *fakeSigner) Health(_ context.Context, timeout time.Duration) signer.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthCalls++
	f.healthTimeout = timeout
	return f.health
}

func (f *fakeSigner) CheckLeader(context.Context) error { return f.leader }
func (f *fakeSigner) Admitting() error                  { return f.busy }

func (f *fakeSigner) counts() (sign, health int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.signCalls, f.healthCalls
}

var testSig = func() keystore.Signature {
	var s keystore.Signature
	for i := range s {
		s[i] = byte(i)
	}
	return s
}()

const (
	testKey  = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"
	signPath = "/api/v1/eth2/sign/" + testKey
	// randaoBody is a minimal valid sign request.
	randaoBody = `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},` +
		`"genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000000"},"randao_reveal":{"epoch":"3"}}`
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newHandler(t *testing.T, f *fakeSigner, mod func(*Options)) http.Handler {
	o := Options{Signer: f, Logger: testLogger(t)}
	if mod != nil {
		mod(&o)
	}
	return Handler(o)
}

// do sends one request to h. A POST, a DELETE or a request with a body declares Content-Type: application/json, as
// every validator client does, unless header sets a Content-Type itself.
func do(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	if _, set := req.Header["Content-Type"]; !set && (body != "" || method == http.MethodPost || method == http.MethodDelete) {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type errorBody struct {
	Code    int     `json:"code"`
	Message *string `json:"message"`
}

// wantError checks a JSON error response with the status and returns its message.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d (body %q)", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var b errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
	}
	if b.Message == nil || *b.Message == "" {
		t.Fatalf("error body %q has no message", rec.Body)
	}
	if b.Code != status {
		t.Errorf("body code = %d, want %d", b.Code, status)
	}
	return *b.Message
}

func TestStatusFor(t *testing.T) {
	t.Parallel()
	_, decodeErr := signer.DecodeRequest([]byte("{}"))
	tests := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{signer.ErrInvalidRequest, http.StatusBadRequest},
		{decodeErr, http.StatusBadRequest},
		{fmt.Errorf("%w: no key", signer.ErrUnknownKey), http.StatusNotFound},
		{fmt.Errorf("%w: token", signer.ErrForbidden), http.StatusForbidden},
		{signer.ErrSlashable, http.StatusPreconditionFailed},
		{slashing.Refuse(slashing.DoubleProposal, "slot 3"), http.StatusPreconditionFailed},
		{fmt.Errorf("wrapped: %w", slashing.Refuse(slashing.FarFuture, "x")), http.StatusPreconditionFailed},
		{signer.ErrNotLeader, http.StatusServiceUnavailable},
		{fmt.Errorf("%w: 4096 in flight", signer.ErrOverloaded), http.StatusServiceUnavailable},
		{fmt.Errorf("%w: timeout", slashing.ErrUnavailable), http.StatusServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError},
		{context.DeadlineExceeded, http.StatusInternalServerError},
	}
	for _, tc := range tests {
		if got := statusFor(tc.err); got != tc.want {
			t.Errorf("statusFor(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	const secret = "dsn=postgres://vigil:hunter2@db/vigil"
	tests := []struct {
		name   string
		err    error
		status int
		msg    string // substring of the message; for 500 the whole message
	}{
		{"invalid", fmt.Errorf("%w: fork version 0xdeadbeef", signer.ErrInvalidRequest), 400, "0xdeadbeef"},
		{"unknown key", fmt.Errorf("%w: no key loaded for %s", signer.ErrUnknownKey, testKey), 404, "no key loaded"},
		{"forbidden", fmt.Errorf("%w: not yours", signer.ErrForbidden), 403, "not yours"},
		{"refused", slashing.Refuse(slashing.DoubleVote, "target 7"), 412, "double_vote"},
		{"not leader", fmt.Errorf("%w: standby", signer.ErrNotLeader), 503, "standby"},
		{"overloaded", fmt.Errorf("%w: 10 requests in flight", signer.ErrOverloaded), 503, "in flight"},
		{"unavailable", fmt.Errorf("%w: ping timeout", slashing.ErrUnavailable), 503, "ping timeout"},
		{"internal", fmt.Errorf("sign with key: %s: broken pipe", secret), 500, "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSigner{sign: func(string, *signer.Request) (keystore.Signature, error) { return keystore.Signature{}, tc.err }}
			rec := do(newHandler(t, f, nil), http.MethodPost, signPath, randaoBody, "Accept", "application/json")
			msg := wantError(t, rec, tc.status)
			if tc.status == 500 {
				if msg != tc.msg {
					t.Errorf("500 message = %q, want %q", msg, tc.msg)
				}
				if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "broken pipe") {
					t.Errorf("500 body leaks the internal error: %s", rec.Body)
				}
			} else if !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not contain %q", msg, tc.msg)
			}
			if strings.Contains(rec.Body.String(), "signature") {
				t.Errorf("error body carries a signature: %s", rec.Body)
			}
			if got, want := rec.Header().Get("Retry-After") != "", tc.name == "overloaded"; got != want {
				t.Errorf("Retry-After present = %v, want %v", got, want)
			}
		})
	}
}

// TestSignShedsBeforeReadingTheBody: while the signer is refusing new requests, a sign request
// gets 503 with Retry-After before its body is read, and never reaches Sign.
func TestSignShedsBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	f := &fakeSigner{
		sign: func(string, *signer.Request) (keystore.Signature, error) { return testSig, nil },
		busy: fmt.Errorf("%w: 3000 requests queued", signer.ErrOverloaded),
	}
	h := newHandler(t, f, nil)
	body := &countingReader{r: strings.NewReader(randaoBody)}
	req := httptest.NewRequest(http.MethodPost, signPath, body)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if msg := wantError(t, rec, http.StatusServiceUnavailable); !strings.Contains(msg, "queued") {
		t.Errorf("message %q does not say why", msg)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After on the 503")
	}
	if body.n != 0 {
		t.Errorf("%d body bytes read before refusing, want 0", body.n)
	}
	if f.signCalls != 0 {
		t.Errorf("Sign called %d times while refusing", f.signCalls)
	}
	f.busy = nil
	if rec := do(h, http.MethodPost, signPath, randaoBody); rec.Code != http.StatusOK {
		t.Errorf("admitting again: status %d, want 200", rec.Code)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestSignPassesIdentifierAndRequest(t *testing.T) {
	t.Parallel()
	var got *signer.Request
	f := &fakeSigner{sign: func(_ string, r *signer.Request) (keystore.Signature, error) { got = r; return testSig, nil }}
	h := newHandler(t, f, nil)
	upper := "/api/v1/eth2/sign/" + strings.ToUpper(strings.TrimPrefix(testKey, "0x"))
	rec := do(h, http.MethodPost, upper, randaoBody)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if len(f.ids) != 1 || f.ids[0] != strings.TrimPrefix(upper, "/api/v1/eth2/sign/") {
		t.Errorf("Sign got identifiers %q", f.ids)
	}
	if got == nil || got.Type != signer.TypeRandaoReveal || got.Epoch == nil || *got.Epoch != 3 {
		t.Errorf("Sign got request %+v", got)
	}
}

func TestSignMalformedBody(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{"empty", "", "empty"},
		{"not JSON", "signature please", "not a JSON object"},
		{"unknown type", `{"type":"BLOB_SIDECAR"}`, "unknown type"},
		{"missing fork_info", `{"type":"ATTESTATION","attestation":{}}`, "fork_info"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSigner{}
			msg := wantError(t, do(newHandler(t, f, nil), http.MethodPost, signPath, tc.body), http.StatusBadRequest)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not mention %q", msg, tc.want)
			}
			if n, _ := f.counts(); n != 0 {
				t.Errorf("Sign called %d times for a malformed body", n)
			}
		})
	}
}

func TestSignAcceptNegotiation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		accept []string // each a separate Accept header line
		json   bool
	}{
		{"application/json", []string{"application/json"}, true},
		{"any", []string{"*/*"}, true},
		{"text/plain", []string{"text/plain"}, false},
		{"no Accept header", nil, false},
		{"list with json second", []string{"text/html, application/json;q=0.9"}, true},
		{"mixed case", []string{"Application/JSON"}, true},
		{"with parameters and spaces", []string{"  application/json ; charset=utf-8 "}, true},
		{"second header line", []string{"text/html", "application/json"}, true},
		{"html only", []string{"text/html, text/plain;q=0.5"}, false},
		{"json subtype wildcard is not */*", []string{"application/*"}, false},
		{"json-like type", []string{"application/jsonl"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var header []string
			for _, a := range tc.accept {
				header = append(header, "Accept", a)
			}
			rec := do(newHandler(t, &fakeSigner{}, nil), http.MethodPost, signPath, randaoBody, header...)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			ct := rec.Header().Get("Content-Type")
			if tc.json {
				wantEqual(t, "Content-Type", ct, "application/json; charset=utf-8")
				var b map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
					t.Fatalf("body %q: %v", rec.Body, err)
				}
				if len(b) != 1 || b["signature"] != testSig.String() {
					t.Errorf("body = %v, want {signature: %s}", b, testSig)
				}
				return
			}
			wantEqual(t, "Content-Type", ct, "text/plain; charset=utf-8")
			wantEqual(t, "body", rec.Body.String(), testSig.String())
		})
	}
}

func TestSignBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 1024
	f := &fakeSigner{}
	h := newHandler(t, f, func(o *Options) { o.MaxBodyBytes = limit })

	exact := randaoBody + strings.Repeat(" ", limit-len(randaoBody))
	if rec := do(h, http.MethodPost, signPath, exact); rec.Code != http.StatusOK {
		t.Errorf("body of exactly the limit: status %d (%s), want 200", rec.Code, rec.Body)
	}
	msg := wantError(t, do(h, http.MethodPost, signPath, exact+" "), http.StatusRequestEntityTooLarge)
	if !strings.Contains(msg, "1024") {
		t.Errorf("413 message %q does not give the limit", msg)
	}
	if n, _ := f.counts(); n != 1 {
		t.Errorf("Sign called %d times, want 1 (not for the oversized body)", n)
	}

	// The default limit applies when none is configured.
	big := randaoBody + strings.Repeat(" ", DefaultMaxBodyBytes)
	wantError(t, do(newHandler(t, &fakeSigner{}, nil), http.MethodPost, signPath, big), http.StatusRequestEntityTooLarge)
}

type healthBody struct {
	Status  string  `json:"status"`
	Outcome string  `json:"outcome"`
	Checks  []check `json:"checks"`
}

func findCheck(checks []check, id string) *check {
	for i := range checks {
		if checks[i].ID == id {
			return &checks[i]
		}
	}
	return nil
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	loadErr := keystore.LoadError{Item: "bad.json", Err: keystore.ErrWrongPassword}
	tests := []struct {
		name     string
		health   signer.Health
		status   int
		overall  string
		db, keys string
		sub      map[string]check // sub-checks of keys-check by id (Data compared as JSON numbers)
	}{
		{
			name:   "all up",
			health: signer.Health{Keys: 4, Sources: []signer.SourceReport{{Name: "keystore-dir", Loaded: 3}, {Name: "key-config", Loaded: 1}}},
			status: 200, overall: "UP", db: "UP", keys: "UP",
			sub: map[string]check{
				"keystores-bulk-loading": {Status: "UP", Data: map[string]any{"keys-loaded": 3.0, "error-count": 0.0}},
				"config-files-loading":   {Status: "UP", Data: map[string]any{"keys-loaded": 1.0, "error-count": 0.0}},
			},
		},
		{
			name:   "no sources",
			health: signer.Health{},
			status: 200, overall: "UP", db: "UP", keys: "UP", sub: map[string]check{},
		},
		{
			name:   "store down",
			health: signer.Health{Store: fmt.Errorf("%w: connection refused", slashing.ErrUnavailable), Sources: []signer.SourceReport{{Name: "keystore-dir", Loaded: 2}}},
			status: 503, overall: "DOWN", db: "DOWN", keys: "UP",
			sub: map[string]check{"keystores-bulk-loading": {Status: "UP", Data: map[string]any{"keys-loaded": 2.0, "error-count": 0.0}}},
		},
		{
			name:   "a key failed to load",
			health: signer.Health{Keys: 2, Sources: []signer.SourceReport{{Name: "keystore-dir", Loaded: 2, Errors: []keystore.LoadError{loadErr}}, {Name: "vault", Loaded: 1}}},
			status: 503, overall: "DOWN", db: "UP", keys: "DOWN",
			sub: map[string]check{
				"keystores-bulk-loading": {Status: "DOWN", Data: map[string]any{"keys-loaded": 2.0, "error-count": 1.0, "errors": []any{loadErr.Error()}}},
				"vault-loading":          {Status: "UP", Data: map[string]any{"keys-loaded": 1.0, "error-count": 0.0}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeSigner{health: tc.health}
			rec := do(newHandler(t, f, func(o *Options) { o.HealthTimeout = 1500 * time.Millisecond }), http.MethodGet, "/healthcheck", "")
			wantEqual(t, "status", rec.Code, tc.status)
			wantEqual(t, "Content-Type", rec.Header().Get("Content-Type"), "application/json; charset=utf-8")
			var b healthBody
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			wantEqual(t, "status field", b.Status, tc.overall)
			wantEqual(t, "outcome field", b.Outcome, tc.overall)
			ids := make([]string, len(b.Checks))
			for i, c := range b.Checks {
				ids[i] = c.ID
			}
			if !slices.Equal(ids, []string{"default-check", "slashing-protection-db-health-check", "keys-check"}) {
				t.Fatalf("check ids = %v", ids)
			}
			wantEqual(t, "default-check", b.Checks[0].Status, "UP")
			db := b.Checks[1]
			wantEqual(t, "db check", db.Status, tc.db)
			if tc.db == "DOWN" && !strings.Contains(fmt.Sprint(db.Data["error"]), "connection refused") {
				t.Errorf("db check data = %v, want the ping error", db.Data)
			}
			keys := b.Checks[2]
			wantEqual(t, "keys check", keys.Status, tc.keys)
			if len(keys.Checks) != len(tc.sub) {
				t.Errorf("keys-check has %d sub-checks (%+v), want %d", len(keys.Checks), keys.Checks, len(tc.sub))
			}
			for id, want := range tc.sub {
				got := findCheck(keys.Checks, id)
				if got == nil {
					t.Errorf("sub-check %s missing from %+v", id, keys.Checks)
					continue
				}
				wantEqual(t, id+" status", got.Status, want.Status)
				gotData, _ := json.Marshal(got.Data)
				wantData, _ := json.Marshal(want.Data)
				wantEqual(t, id+" data", string(gotData), string(wantData))
			}
			if _, n := f.counts(); n != 1 || f.healthTimeout != 1500*time.Millisecond {
				t.Errorf("Health called %d times with timeout %v, want once with 1.5s", n, f.healthTimeout)
			}
		})
	}
}

func TestHealthTimeoutDefault(t *testing.T) {
	t.Parallel()
	f := &fakeSigner{}
	do(newHandler(t, f, nil), http.MethodGet, "/readyz", "")
	if f.healthTimeout != 2*time.Second {
		t.Errorf("default health timeout = %v, want 2s", f.healthTimeout)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	up := do(newHandler(t, &fakeSigner{}, nil), http.MethodGet, "/readyz", "")
	wantEqual(t, "status when up", up.Code, http.StatusOK)
	wantEqual(t, "body when up", up.Body.String(), "OK")

	down := do(newHandler(t, &fakeSigner{health: signer.Health{Store: errors.New("database is locked")}}, nil), http.MethodGet, "/readyz", "")
	wantEqual(t, "status when the store is down", down.Code, http.StatusServiceUnavailable)
	if !strings.Contains(down.Body.String(), "database is locked") {
		t.Errorf("body %q does not say why", down.Body)
	}
}

func TestUpcheckAndLivez(t *testing.T) {
	t.Parallel()
	// Liveness must not depend on the store: a down store still answers OK.
	f := &fakeSigner{health: signer.Health{Store: errors.New("down")}}
	h := newHandler(t, f, nil)
	for _, path := range []string{"/upcheck", "/livez"} {
		rec := do(h, http.MethodGet, path, "")
		wantEqual(t, path+" status", rec.Code, http.StatusOK)
		wantEqual(t, path+" Content-Type", rec.Header().Get("Content-Type"), "text/plain; charset=utf-8")
		wantEqual(t, path+" body", rec.Body.String(), "OK")
	}
	if _, n := f.counts(); n != 0 {
		t.Errorf("liveness endpoints called Health %d times", n)
	}
}

func TestPublicKeys(t *testing.T) {
	t.Parallel()
	var keys []keystore.Key
	var want []string
	for i := range uint64(4) {
		sk, err := keystore.InteropSecretKey(i)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, keystore.NewLocalKey(sk))
		want = append(want, sk.PublicKey().String())
	}
	slices.Sort(want) // lowercase hex of equal length sorts like the bytes
	slices.Reverse(keys)
	rec := do(newHandler(t, &fakeSigner{keys: keyset.New(keys)}, nil), http.MethodGet, "/api/v1/eth2/publicKeys", "")
	wantEqual(t, "status", rec.Code, http.StatusOK)
	wantEqual(t, "Content-Type", rec.Header().Get("Content-Type"), "application/json; charset=utf-8")
	var got []string
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("publicKeys = %v, want %v", got, want)
	}
	for _, k := range got {
		if len(k) != 98 || k != strings.ToLower(k) || !strings.HasPrefix(k, "0x") {
			t.Errorf("key %q is not lowercase 0x-prefixed 48-byte hex", k)
		}
	}

	empty := do(newHandler(t, &fakeSigner{}, nil), http.MethodGet, "/api/v1/eth2/publicKeys", "")
	wantEqual(t, "empty body", strings.TrimSpace(empty.Body.String()), "[]")
}

func TestUnknownRouteAndMethod(t *testing.T) {
	t.Parallel()
	h := newHandler(t, &fakeSigner{}, nil)
	wantError(t, do(h, http.MethodGet, "/api/v1/eth2/nope", ""), http.StatusNotFound)
	wantError(t, do(h, http.MethodPost, "/api/v1/eth2/sign/", randaoBody), http.StatusNotFound)
	wantError(t, do(h, http.MethodGet, signPath, ""), http.StatusMethodNotAllowed)
	wantError(t, do(h, http.MethodPost, "/api/v1/eth2/publicKeys", ""), http.StatusMethodNotAllowed)
	wantError(t, do(h, http.MethodDelete, "/upcheck", ""), http.StatusMethodNotAllowed)
}

func TestPanicInSignerIsRecovered(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	panics := 1
	f := &fakeSigner{sign: func(string, *signer.Request) (keystore.Signature, error) {
		mu.Lock()
		defer mu.Unlock()
		if panics > 0 {
			panics--
			panic("secret internal state 0xdeadbeef")
		}
		return testSig, nil
	}}
	srv := httptest.NewServer(newHandler(t, f, nil))
	defer srv.Close()

	post := func() (int, string, string) {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+signPath, "application/json", strings.NewReader(randaoBody))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	status, ct, body := post()
	wantEqual(t, "status after panic", status, http.StatusInternalServerError)
	wantEqual(t, "Content-Type after panic", ct, "application/json; charset=utf-8")
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Message == nil || *eb.Message != "internal error" {
		t.Errorf("panic body = %q, want {message: internal error}", body)
	}
	if strings.Contains(body, "deadbeef") {
		t.Errorf("panic body leaks the panic value: %s", body)
	}

	status, _, body = post()
	wantEqual(t, "status after recovery", status, http.StatusOK)
	wantEqual(t, "signature after recovery", body, testSig.String())
}

// counterValue reads one sample of a counter from a gathered registry (0 when absent).
func counterValue(t *testing.T, mfs []*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// labelValues lists the values of one label across a family.
func labelValues(mfs []*dto.MetricFamily, name, label string) []string {
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && !slices.Contains(out, lp.GetValue()) {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestMetricsCountByRoutePattern(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	panicked := false
	f := &fakeSigner{sign: func(id string, _ *signer.Request) (keystore.Signature, error) {
		switch {
		case strings.HasSuffix(id, "00"):
			return keystore.Signature{}, fmt.Errorf("%w: none", signer.ErrUnknownKey)
		case strings.HasSuffix(id, "ff") && !panicked:
			panicked = true
			panic("boom")
		}
		return testSig, nil
	}}
	h := newHandler(t, f, func(o *Options) { o.Metrics = m })
	do(h, http.MethodPost, signPath, randaoBody)
	do(h, http.MethodPost, "/api/v1/eth2/sign/0x"+strings.Repeat("11", 48), randaoBody)
	do(h, http.MethodPost, "/api/v1/eth2/sign/0x"+strings.Repeat("00", 48), randaoBody)
	do(h, http.MethodPost, "/api/v1/eth2/sign/0x"+strings.Repeat("ff", 48), randaoBody)
	do(h, http.MethodPost, signPath, "{")
	do(h, http.MethodGet, "/api/v1/eth2/publicKeys", "")
	do(h, http.MethodGet, "/upcheck", "")
	do(h, http.MethodGet, "/no/such/route/1", "")
	do(h, http.MethodGet, "/no/such/route/2", "")
	do(h, http.MethodGet, "/api/v1/eth2/sign/0x"+strings.Repeat("22", 48), "") // 405: still a bounded label

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	const name = "vigil_http_requests_total"
	sign := "/api/v1/eth2/sign/{identifier}"
	for _, tc := range []struct {
		route, code string
		want        float64
	}{
		{sign, "200", 2},
		{sign, "404", 1},
		{sign, "400", 1},
		{sign, "500", 1}, // the panic
		{"/api/v1/eth2/publicKeys", "200", 1},
		{"/upcheck", "200", 1},
		{"unmatched", "404", 2},
	} {
		if got := counterValue(t, mfs, name, map[string]string{"route": tc.route, "code": tc.code}); got != tc.want {
			t.Errorf("%s{route=%q,code=%q} = %v, want %v", name, tc.route, tc.code, got, tc.want)
		}
	}
	// Labels are bounded: no raw path or identifier ever becomes a route label.
	wantRoutes := []string{"/api/v1/eth2/publicKeys", sign, "/upcheck", "unmatched"}
	if got := labelValues(mfs, name, "route"); !slices.Equal(got, wantRoutes) {
		t.Errorf("route labels = %v, want %v", got, wantRoutes)
	}
}

func TestMetricsHandler(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// The handler serves the whole registry: what other packages and cmd register on it too.
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_keys_loaded", Help: "Keys."}, func() float64 { return 1 }),
		collectors.NewGoCollector())
	rec := do(m.Handler(), http.MethodGet, "/metrics", "")
	wantEqual(t, "status", rec.Code, http.StatusOK)
	for _, s := range []string{"vigil_keys_loaded 1", "go_goroutines"} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
	wantEqual(t, "other path", do(m.Handler(), http.MethodGet, "/", "").Code, http.StatusNotFound)
}

func wantEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// Keys held by a chunked slashing-protection import are named in keys-check, running ones apart
// from interrupted ones (which never sign again until the import is re-run); they do not take
// the instance out of service.
func TestHealthcheckNamesKeysHeldByImports(t *testing.T) {
	t.Parallel()
	k1, k2 := keystore.PublicKey{1}, keystore.PublicKey{2}
	f := &fakeSigner{health: signer.Health{Keys: 2, Disabled: []signer.PublicKey{k1},
		Importing: []signer.ImportingKey{{Key: k1}, {Key: k2, Interrupted: true}}}}
	rec := do(newHandler(t, f, nil), http.MethodGet, "/healthcheck", "")
	wantEqual(t, "status", rec.Code, http.StatusOK)
	var b healthBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	keys := findCheck(b.Checks, "keys-check")
	if keys == nil {
		t.Fatalf("no keys-check in %s", rec.Body)
	}
	got, _ := json.Marshal(keys.Data)
	for _, want := range []string{`"importing-keys":["` + k1.String() + `"]`, `"interrupted-import-keys":["` + k2.String() + `"]`,
		`"disabled-keys":["` + k1.String() + `"]`, `"interrupted-import-hint":"these keys are refused until`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("keys-check data %s lacks %s", got, want)
		}
	}
}

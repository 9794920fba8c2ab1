package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
)

// fakeKeyManager is a hand-written api.KeyManager recording its calls.
type fakeKeyManager struct {
	list      []signer.KeyInfo
	importRes []signer.ImportResult
	importErr error
	deleteRes signer.DeleteResponse
	deleteErr error

	mu          sync.Mutex
	calls       int
	keystores   []string
	passwords   []string
	sp          string
	deletedKeys []keystore.PublicKey
}

var _ KeyManager = (*fakeKeyManager)(nil)

func (f *fakeKeyManager) List() []signer.KeyInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.list
}

func (f *fakeKeyManager) Import(_ context.Context, keystores, passwords []string, sp string) ([]signer.ImportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.keystores, f.passwords, f.sp = keystores, passwords, sp
	return f.importRes, f.importErr
}

func (f *fakeKeyManager) Delete(_ context.Context, pubkeys []keystore.PublicKey) (signer.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.deletedKeys = pubkeys
	return f.deleteRes, f.deleteErr
}

const kmToken = "0123456789abcdef0123456789abcdef"

var kmAuth = []string{"Authorization", "Bearer " + kmToken}

func kmHandler(t *testing.T, km *fakeKeyManager, mod func(*Options)) http.Handler {
	return newHandler(t, &fakeSigner{}, func(o *Options) {
		o.KeyManager = km
		o.KeyManagerToken = kmToken
		if mod != nil {
			mod(o)
		}
	})
}

func testPub(b byte) keystore.PublicKey {
	var pk keystore.PublicKey
	for i := range pk {
		pk[i] = b + byte(i)
	}
	return pk
}

func decodeBody(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200 (body %s)", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
}

func TestKeyManagerRoutesOnlyWhenEnabled(t *testing.T) {
	h := newHandler(t, &fakeSigner{}, nil)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		wantError(t, do(h, m, "/eth/v1/keystores", "{}", kmAuth...), http.StatusNotFound)
	}
}

func TestKeyManagerAuth(t *testing.T) {
	km := &fakeKeyManager{}
	h := kmHandler(t, km, nil)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		for _, c := range []struct {
			name   string
			header []string
			status int
		}{
			{"no header", nil, http.StatusUnauthorized},
			{"empty bearer", []string{"Authorization", "Bearer "}, http.StatusUnauthorized},
			{"basic", []string{"Authorization", "Basic " + kmToken}, http.StatusUnauthorized},
			{"bare token", []string{"Authorization", kmToken}, http.StatusUnauthorized},
			{"wrong token", []string{"Authorization", "Bearer nope"}, http.StatusForbidden},
			{"token prefix", []string{"Authorization", "Bearer " + kmToken[:10]}, http.StatusForbidden},
			{"token plus", []string{"Authorization", "Bearer " + kmToken + "0"}, http.StatusForbidden},
		} {
			rec := do(h, m, "/eth/v1/keystores", `{"keystores":[],"passwords":[],"pubkeys":[]}`, c.header...)
			msg := wantError(t, rec, c.status)
			if strings.Contains(msg, kmToken) {
				t.Errorf("%s %s: message leaks the token", m, c.name)
			}
			if c.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", m, c.name)
			}
		}
	}
	if km.calls != 0 {
		t.Errorf("unauthenticated requests reached the keymanager %d times", km.calls)
	}
	// The scheme is case-insensitive.
	if rec := do(h, http.MethodGet, "/eth/v1/keystores", "", "Authorization", "bearer "+kmToken); rec.Code != http.StatusOK {
		t.Errorf("lower-case scheme: %d", rec.Code)
	}
	// No configured token: nothing gets in, not even an empty token.
	h = newHandler(t, &fakeSigner{}, func(o *Options) { o.KeyManager = km })
	wantError(t, do(h, http.MethodGet, "/eth/v1/keystores", "", "Authorization", "Bearer x"), http.StatusForbidden)
}

func TestKeyManagerList(t *testing.T) {
	km := &fakeKeyManager{list: []signer.KeyInfo{
		{Pubkey: testPub(1), DerivationPath: "m/12381/3600/0/0/0"},
		{Pubkey: testPub(2), Readonly: true},
	}}
	rec := do(kmHandler(t, km, nil), http.MethodGet, "/eth/v1/keystores", "", kmAuth...)
	var body struct {
		Data []map[string]any `json:"data"`
	}
	decodeBody(t, rec, &body)
	want := []map[string]any{
		{"validating_pubkey": testPub(1).String(), "derivation_path": "m/12381/3600/0/0/0", "readonly": false},
		{"validating_pubkey": testPub(2).String(), "readonly": true},
	}
	if fmt.Sprint(body.Data) != fmt.Sprint(want) {
		t.Errorf("data %v, want %v", body.Data, want)
	}
	// No keys: an empty array, not null.
	rec = do(kmHandler(t, &fakeKeyManager{}, nil), http.MethodGet, "/eth/v1/keystores", "", kmAuth...)
	if strings.TrimSpace(rec.Body.String()) != `{"data":[]}` {
		t.Errorf("empty list body %s", rec.Body)
	}
}

func TestKeyManagerImport(t *testing.T) {
	km := &fakeKeyManager{importRes: []signer.ImportResult{
		{Status: signer.ImportImported, Pubkey: testPub(1)},
		{Status: signer.ImportDuplicate},
		{Status: signer.ImportError, Message: "wrong password or corrupt keystore (checksum mismatch)"},
	}}
	var logs bytes.Buffer
	h := kmHandler(t, km, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	body := `{"keystores":["{\"version\":4}","ks2",{"version":4,"crypto":{}}],"passwords":["secret-one","secret-two","secret-three"],` +
		`"slashing_protection":"{\"metadata\":{}}","unknown":1}`
	rec := do(h, http.MethodPost, "/eth/v1/keystores", body, kmAuth...)
	var resp struct {
		Data []map[string]string `json:"data"`
	}
	decodeBody(t, rec, &resp)
	want := []map[string]string{{"status": "imported"}, {"status": "duplicate"},
		{"status": "error", "message": "wrong password or corrupt keystore (checksum mismatch)"}}
	if fmt.Sprint(resp.Data) != fmt.Sprint(want) {
		t.Errorf("data %v, want %v", resp.Data, want)
	}
	if !slices.Equal(km.keystores, []string{`{"version":4}`, "ks2", `{"version":4,"crypto":{}}`}) {
		t.Errorf("keystores passed %q", km.keystores)
	}
	if !slices.Equal(km.passwords, []string{"secret-one", "secret-two", "secret-three"}) || km.sp != `{"metadata":{}}` {
		t.Errorf("passwords or slashing_protection not passed through")
	}
	if strings.Contains(logs.String(), "secret-") {
		t.Errorf("a password reached the log:\n%s", logs.String())
	}

	// slashing_protection as the document itself, or null / absent.
	for _, c := range []struct{ body, want string }{
		{`{"keystores":[],"passwords":[],"slashing_protection":{"metadata":{"a":1},"data":[]}}`, `{"metadata":{"a":1},"data":[]}`},
		{`{"keystores":[],"passwords":[],"slashing_protection":null}`, ""},
		{`{"keystores":[],"passwords":[]}`, ""},
	} {
		km.importRes = []signer.ImportResult{}
		rec := do(h, http.MethodPost, "/eth/v1/keystores", c.body, kmAuth...)
		if rec.Code != http.StatusOK || km.sp != c.want || strings.TrimSpace(rec.Body.String()) != `{"data":[]}` {
			t.Errorf("%s: %d %s, slashing_protection %q", c.body, rec.Code, rec.Body, km.sp)
		}
	}
}

func TestKeyManagerImportBadRequests(t *testing.T) {
	km := &fakeKeyManager{}
	h := kmHandler(t, km, func(o *Options) { o.KeyManagerMaxBodyBytes = 4096 })
	for _, c := range []struct {
		name, body string
		status     int
		substr     string
	}{
		{"malformed JSON", `{"keystores":[`, http.StatusBadRequest, "JSON"},
		{"not an object", `["a"]`, http.StatusBadRequest, "object"},
		{"empty", ``, http.StatusBadRequest, "object"},
		{"no keystores", `{"passwords":[]}`, http.StatusBadRequest, "keystores"},
		{"no passwords", `{"keystores":[]}`, http.StatusBadRequest, "passwords"},
		{"keystores not array", `{"keystores":"x","passwords":[]}`, http.StatusBadRequest, "keystores"},
		{"password not string", `{"keystores":["k"],"passwords":[12345]}`, http.StatusBadRequest, "passwords[0]"},
		{"lengths differ", `{"keystores":["a","b"],"passwords":["p"]}`, http.StatusBadRequest, "2 keystores but 1 passwords"},
		{"slashing_protection number", `{"keystores":[],"passwords":[],"slashing_protection":5}`, http.StatusBadRequest, "slashing_protection"},
		{"too large", `{"keystores":["` + strings.Repeat("x", 5000) + `"],"passwords":["p"]}`, http.StatusRequestEntityTooLarge, "4096"},
	} {
		msg := wantError(t, do(h, http.MethodPost, "/eth/v1/keystores", c.body, kmAuth...), c.status)
		if !strings.Contains(msg, c.substr) {
			t.Errorf("%s: message %q does not mention %q", c.name, msg, c.substr)
		}
		if strings.Contains(msg, "12345") {
			t.Errorf("%s: message quotes a password: %q", c.name, msg)
		}
	}
	if km.calls != 0 {
		t.Errorf("bad requests reached the keymanager %d times", km.calls)
	}
}

func TestKeyManagerErrorsMapToStatus(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		substr string
	}{
		{signer.ErrInvalidRequest, http.StatusBadRequest, "invalid request"},
		{fmt.Errorf("%w: db down", signer.ErrUnavailable), http.StatusServiceUnavailable, "db down"},
		{errors.New("disk exploded at /secret/path"), http.StatusInternalServerError, "internal error"},
	} {
		km := &fakeKeyManager{importErr: c.err, deleteErr: c.err}
		h := kmHandler(t, km, nil)
		msg := wantError(t, do(h, http.MethodPost, "/eth/v1/keystores", `{"keystores":["k"],"passwords":["p"]}`, kmAuth...), c.status)
		if !strings.Contains(msg, c.substr) {
			t.Errorf("import %v: message %q", c.err, msg)
		}
		msg = wantError(t, do(h, http.MethodDelete, "/eth/v1/keystores", `{"pubkeys":[]}`, kmAuth...), c.status)
		if !strings.Contains(msg, c.substr) {
			t.Errorf("delete %v: message %q", c.err, msg)
		}
	}
}

func TestKeyManagerDelete(t *testing.T) {
	doc := `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x04"},"data":[]}`
	km := &fakeKeyManager{deleteRes: signer.DeleteResponse{
		Results: []signer.DeleteResult{
			{Status: signer.DeleteDeleted}, {Status: signer.DeleteNotActive}, {Status: signer.DeleteNotFound},
			{Status: signer.DeleteError, Message: "Unable to delete readonly key"},
		},
		SlashingProtection: []byte(doc),
	}}
	h := kmHandler(t, km, nil)
	pubs := []keystore.PublicKey{testPub(1), testPub(2), testPub(3), testPub(4)}
	upper := "0X" + strings.ToUpper(pubs[1].String()[2:])
	body := fmt.Sprintf(`{"pubkeys":[%q,%q,%q,%q]}`, pubs[0], upper, pubs[2], pubs[3])
	rec := do(h, http.MethodDelete, "/eth/v1/keystores", body, kmAuth...)
	var resp struct {
		Data               []map[string]string `json:"data"`
		SlashingProtection string              `json:"slashing_protection"`
	}
	decodeBody(t, rec, &resp)
	want := []map[string]string{{"status": "deleted"}, {"status": "not_active"}, {"status": "not_found"},
		{"status": "error", "message": "Unable to delete readonly key"}}
	if fmt.Sprint(resp.Data) != fmt.Sprint(want) {
		t.Errorf("data %v, want %v", resp.Data, want)
	}
	if resp.SlashingProtection != doc {
		t.Errorf("slashing_protection %q, want the document as a string", resp.SlashingProtection)
	}
	if !slices.Equal(km.deletedKeys, pubs) {
		t.Errorf("pubkeys passed %v", km.deletedKeys)
	}

	for _, c := range []struct{ name, body, substr string }{
		{"malformed", `{"pubkeys":`, "JSON"},
		{"missing", `{}`, "pubkeys"},
		{"not hex", `{"pubkeys":["0x` + strings.Repeat("zz", 48) + `"]}`, "pubkeys[0]"},
		{"short", `{"pubkeys":["0x1234"]}`, "pubkeys[0]"},
		{"no prefix", `{"pubkeys":["` + strings.Repeat("ab", 49) + `"]}`, "pubkeys[0]"},
		{"not string", `{"pubkeys":[1]}`, "pubkeys[0]"},
	} {
		msg := wantError(t, do(h, http.MethodDelete, "/eth/v1/keystores", c.body, kmAuth...), http.StatusBadRequest)
		if !strings.Contains(msg, c.substr) {
			t.Errorf("%s: message %q does not mention %q", c.name, msg, c.substr)
		}
	}
}

func TestKeyManagerMetricsRoute(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	h := kmHandler(t, &fakeKeyManager{}, func(o *Options) { o.Metrics = m })
	do(h, http.MethodGet, "/eth/v1/keystores", "", kmAuth...)
	do(h, http.MethodGet, "/eth/v1/keystores", "")
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, mfs, "vigil_http_requests_total", map[string]string{"route": "/eth/v1/keystores", "code": "200"}); got != 1 {
		t.Errorf("200 count %v", got)
	}
	if got := counterValue(t, mfs, "vigil_http_requests_total", map[string]string{"route": "/eth/v1/keystores", "code": "401"}); got != 1 {
		t.Errorf("401 count %v", got)
	}
}

package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
)

// fakeClients is a hand-written ClientIdentifier: tokens and certificate common names map to
// client names.
type fakeClients struct {
	tokens, certs map[string]string
	known         map[string]bool
}

func (f *fakeClients) Configured() bool { return len(f.known) > 0 }
func (f *fakeClients) ByToken(t string) (string, bool) {
	n, ok := f.tokens[t]
	return n, ok
}
func (f *fakeClients) ByCertificate(c *x509.Certificate) (string, bool) {
	n, ok := f.certs[c.Subject.CommonName]
	return n, ok
}
func (f *fakeClients) Known(n string) bool { return f.known[n] }

func TestClientIdentity(t *testing.T) {
	t.Parallel()
	clients := &fakeClients{tokens: map[string]string{"tok-vc1": "vc1", "tok-vc2": "vc2"}, certs: map[string]string{"vc2.example": "vc2"},
		known: map[string]bool{"vc1": true, "vc2": true}}
	var got []string
	record := func(allow bool) http.Handler {
		return newHandler(t, &fakeSigner{sign: func(string, *signer.Request) (keystore.Signature, error) { return testSig, nil }}, func(o *Options) {
			o.Clients, o.AllowUnidentified = clients, allow
			o.Signer = callerRecorder{Signer: o.Signer, got: &got}
		})
	}
	h := record(false)
	body := `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},"genesis_validators_root":"0x` + strings.Repeat("00", 32) + `"},"randao_reveal":{"epoch":"1"}}`
	path := "/api/v1/eth2/sign/0x" + strings.Repeat("ab", 48)
	cert := func(cn string) *tls.ConnectionState {
		c := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	cases := []struct {
		name     string
		handler  http.Handler
		token    string
		tls      *tls.ConnectionState
		status   int
		caller   string
		contains string
	}{
		{"no credential", h, "", nil, http.StatusUnauthorized, "", "unidentified client"},
		{"token", h, "tok-vc1", nil, http.StatusOK, "vc1", ""},
		{"unknown token", h, "tok-nobody", nil, http.StatusUnauthorized, "", "unknown bearer token"},
		{"certificate", h, "", cert("vc2.example"), http.StatusOK, "vc2", ""},
		{"unknown certificate", h, "", cert("mallory"), http.StatusUnauthorized, "", "names no configured client"},
		{"certificate and another client's token", h, "tok-vc1", cert("vc2.example"), http.StatusUnauthorized, "", "another client"},
		{"listener", ForClient("vc1", h), "", nil, http.StatusOK, "vc1", ""},
		{"listener and its own token", ForClient("vc1", h), "tok-vc1", nil, http.StatusOK, "vc1", ""},
		{"listener and another client's token", ForClient("vc1", h), "tok-vc2", nil, http.StatusUnauthorized, "", "another client"},
		{"listener of a removed client", ForClient("gone", h), "", nil, http.StatusUnauthorized, "", "no longer configured"},
		{"no credential, unidentified allowed", record(true), "", nil, http.StatusOK, "anonymous", ""},
	}
	for _, c := range cases {
		got = got[:0]
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		req.TLS = c.tls
		rec := httptest.NewRecorder()
		c.handler.ServeHTTP(rec, req)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, rec.Code, rec.Body, c.status, c.contains)
			continue
		}
		if c.status == http.StatusUnauthorized {
			if len(got) != 0 {
				t.Errorf("%s: a refused request reached the signer", c.name)
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", c.name)
			}
			if strings.Contains(rec.Body.String(), "vc1") || strings.Contains(rec.Body.String(), "vc2") {
				t.Errorf("%s: the refusal names a client: %s", c.name, rec.Body)
			}
		} else if len(got) != 1 || got[0] != c.caller {
			t.Errorf("%s: signer saw callers %v, want %s", c.name, got, c.caller)
		}
	}
}

// callerRecorder records the caller the api put into each Sign call's context.
type callerRecorder struct {
	Signer
	got *[]string
}

func (c callerRecorder) Sign(ctx context.Context, id string, r *signer.Request) (keystore.Signature, error) {
	*c.got = append(*c.got, signer.CallerFrom(ctx).Name)
	return c.Signer.Sign(ctx, id, r)
}

type fakeReport struct{}

func (fakeReport) FailoverStatus(context.Context) (any, error) {
	return []map[string]any{{"name": "vc1", "fenced": true}}, nil
}
func (fakeReport) FailoverHistory(context.Context) (any, error) {
	return nil, errors.New("database is down")
}

// The failover admin routes sit behind the keymanager token.
func TestFailoverAdminRoutes(t *testing.T) {
	t.Parallel()
	h := kmHandler(t, &fakeKeyManager{}, func(o *Options) { o.Failover = fakeReport{} })
	if rec := do(h, http.MethodGet, "/vigil/v1/failover/status", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", rec.Code)
	}
	rec := do(h, http.MethodGet, "/vigil/v1/failover/status", "", kmAuth...)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"fenced":true`) {
		t.Fatalf("status: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodGet, "/vigil/v1/failover/history", "", kmAuth...); rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "database") {
		t.Fatalf("history with the ledger failing: %d %s (want 500 without internals)", rec.Code, rec.Body)
	}
}

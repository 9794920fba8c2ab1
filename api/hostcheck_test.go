package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
)

func TestParseHostAllowlist(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		list string
		ok   bool
	}{
		{DefaultHostAllowlist, true},
		{"*", true},
		{"all", true},
		{"ALL", true},
		{" signer.internal , 10.0.0.7 ", true},
		{"::1", true},
		{"[::1]", true},
		{"Signer.Internal.", true},
		{"", false},                   // empty: nothing allowed is a mistake, not a setting
		{" , ", false},                // same
		{"localhost:9000", false},     // ports are not part of an entry
		{"[::1", false},               // unclosed bracket
		{"example.com/path", false},   // not a host name
		{"exa mple.com", false},       // not a host name
		{"fe80::1::2", false},         // not an address
		{"localhost,bad host", false}, // one bad entry spoils the list
	} {
		_, err := ParseHostAllowlist("http-host-allowlist", tc.list)
		if (err == nil) != tc.ok {
			t.Errorf("ParseHostAllowlist(%q): err %v, want ok=%v", tc.list, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--http-host-allowlist") {
			t.Errorf("ParseHostAllowlist(%q): error %q does not name the flag", tc.list, err)
		}
	}
}

func TestHostAllowlistAllows(t *testing.T) {
	t.Parallel()
	def, _ := ParseHostAllowlist("http-host-allowlist", DefaultHostAllowlist)
	v6, _ := ParseHostAllowlist("http-host-allowlist", "::1,signer.internal")
	anyHost, _ := ParseHostAllowlist("http-host-allowlist", "signer.internal,*")
	for _, tc := range []struct {
		list *HostAllowlist
		host string
		want bool
	}{
		{def, "localhost", true},
		{def, "localhost:9000", true},
		{def, "LOCALHOST:9000", true},
		{def, "localhost.", true},
		{def, "127.0.0.1", true},
		{def, "127.0.0.1:9000", true},
		{def, "attacker.example", false},
		{def, "attacker.example:9000", false},
		{def, "localhost.attacker.example", false},
		{def, "127.0.0.1.nip.io", false},
		{def, "127.0.0.2", false},
		{def, "", false},
		{def, "localhost:", true}, // empty port (RFC 3986 allows it)
		{def, "localhost:abc", false},
		{def, "localhost:9000:1", false},
		{def, "[::1]:9000", false}, // not in the default list
		{v6, "[::1]:9000", true},
		{v6, "[::1]", true},
		{v6, "[0:0:0:0:0:0:0:1]:9000", true}, // same address, long form
		{v6, "::1", false},                   // a bare IPv6 literal is not a valid Host
		{v6, "[::1", false},
		{v6, "Signer.Internal:443", true},
		{anyHost, "attacker.example", true},
		{anyHost, "", true},
		{nil, "attacker.example", true}, // no list: no check
	} {
		if got := tc.list.Allows(tc.host); got != tc.want {
			t.Errorf("%v.Allows(%q) = %v, want %v", tc.list, tc.host, got, tc.want)
		}
	}
}

// doHost sends a request with the given Host header (and JSON Content-Type unless header sets
// one, like do).
func doHost(h http.Handler, method, path, host, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	if _, set := req.Header["Content-Type"]; !set && method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// exitBody is the VOLUNTARY_EXIT a hostile web page would ask for.
const exitBody = `{"type":"VOLUNTARY_EXIT","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},` +
	`"genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000000"},"voluntary_exit":{"epoch":"5","validator_index":"7"}}`

func defaultAllowlist(t *testing.T) *HostAllowlist {
	a, err := ParseHostAllowlist("http-host-allowlist", DefaultHostAllowlist)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The request of the issue: a web page (Host attacker.example, Content-Type text/plain, which a
// browser sends cross-origin without a preflight) asks for a VOLUNTARY_EXIT signature.
func TestHostGuardRefusesForeignHost(t *testing.T) {
	t.Parallel()
	f := &fakeSigner{}
	h := newHandler(t, f, func(o *Options) { o.HostAllowlist = defaultAllowlist(t) })

	msg := wantError(t, doHost(h, http.MethodPost, signPath, "attacker.example", exitBody, "Content-Type", "text/plain"), http.StatusForbidden)
	if !strings.Contains(msg, "attacker.example") || !strings.Contains(msg, "--http-host-allowlist") {
		t.Errorf("403 message %q does not name the Host and the flag", msg)
	}
	// Even with the right Content-Type the Host decides.
	wantError(t, doHost(h, http.MethodPost, signPath, "attacker.example:9000", exitBody), http.StatusForbidden)
	// Routes with information are checked too.
	for _, path := range []string{"/api/v1/eth2/publicKeys", "/healthcheck", "/no/such/route"} {
		wantError(t, doHost(h, http.MethodGet, path, "attacker.example", ""), http.StatusForbidden)
	}
	if n, _ := f.counts(); n != 0 {
		t.Errorf("Sign called %d times for a foreign Host", n)
	}
	// The listener's own names sign.
	for _, host := range []string{"127.0.0.1:9000", "localhost", "LocalHost:9000"} {
		if rec := doHost(h, http.MethodPost, signPath, host, exitBody); rec.Code != http.StatusOK {
			t.Errorf("Host %q: status %d (%s), want 200", host, rec.Code, rec.Body)
		}
	}
}

// Probes carry no information and come from load balancers and kubelets by pod IP or without a
// Host: they are exempt.
func TestHostGuardExemptsProbes(t *testing.T) {
	t.Parallel()
	h := newHandler(t, &fakeSigner{}, func(o *Options) { o.HostAllowlist = defaultAllowlist(t) })
	for _, path := range []string{"/upcheck", "/livez", "/readyz"} {
		for _, host := range []string{"10.42.0.17:9000", "attacker.example", ""} {
			rec := doHost(h, http.MethodGet, path, host, "")
			if rec.Code != http.StatusOK || rec.Body.String() != "OK" {
				t.Errorf("GET %s Host %q: %d %q, want 200 OK", path, host, rec.Code, rec.Body)
			}
		}
		// Only reads are exempt.
		wantError(t, doHost(h, http.MethodPost, path, "attacker.example", "{}"), http.StatusForbidden)
	}
}

func TestSignRequiresJSONContentType(t *testing.T) {
	t.Parallel()
	f := &fakeSigner{}
	h := newHandler(t, f, func(o *Options) { o.HostAllowlist = defaultAllowlist(t) })
	for _, ct := range []string{"", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
		"multipart/form-data; boundary=x", "application/jsonp", "application/json-seq", "json", ";;"} {
		rec := doHost(h, http.MethodPost, signPath, "127.0.0.1:9000", exitBody, "Content-Type", ct)
		msg := wantError(t, rec, http.StatusUnsupportedMediaType)
		if !strings.Contains(msg, "application/json") {
			t.Errorf("Content-Type %q: 415 message %q does not say what to send", ct, msg)
		}
	}
	if n, _ := f.counts(); n != 0 {
		t.Errorf("Sign called %d times without a JSON Content-Type", n)
	}
	for _, ct := range []string{"application/json", "Application/JSON", "application/json; charset=utf-8",
		"application/json;charset=UTF-8", "application/json ; charset=\"utf-8\""} {
		if rec := doHost(h, http.MethodPost, signPath, "localhost:9000", exitBody, "Content-Type", ct); rec.Code != http.StatusOK {
			t.Errorf("Content-Type %q: status %d (%s), want 200", ct, rec.Code, rec.Body)
		}
	}
}

func TestKeyManagerRequiresJSONContentType(t *testing.T) {
	t.Parallel()
	km := &fakeKeyManager{}
	h := kmHandler(t, km, nil)
	for _, m := range []string{http.MethodPost, http.MethodDelete} {
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
			hdr := append([]string{"Content-Type", ct}, kmAuth...)
			wantError(t, do(h, m, "/eth/v1/keystores", `{"keystores":[],"passwords":[],"pubkeys":[]}`, hdr...), http.StatusUnsupportedMediaType)
		}
	}
	if km.calls != 0 {
		t.Errorf("keymanager called %d times without a JSON Content-Type", km.calls)
	}
	// A GET has no body and needs no Content-Type.
	req := httptest.NewRequest(http.MethodGet, "/eth/v1/keystores", nil)
	req.Header.Set(kmAuth[0], kmAuth[1])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("GET without Content-Type: %d %s", rec.Code, rec.Body)
	}
}

func TestSignBodyBudget(t *testing.T) {
	t.Parallel()
	const limit = 2048
	budget := NewBodyBudget(3 * limit)
	held := make(chan struct{})
	release := make(chan struct{})
	f := &fakeSigner{sign: func(_ string, r *signer.Request) (keystore.Signature, error) {
		if r.Epoch != nil && *r.Epoch == 99 { // the "large" requests wait, holding their bytes
			held <- struct{}{}
			<-release
		}
		return testSig, nil
	}}
	h := newHandler(t, f, func(o *Options) { o.MaxBodyBytes = limit; o.BodyBudget = budget })
	large := `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},` +
		`"genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000000"},"randao_reveal":{"epoch":"99"}}`
	large += strings.Repeat(" ", 1800-len(large))

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rec := do(h, http.MethodPost, signPath, large); rec.Code != http.StatusOK {
				t.Errorf("held request: %d %s", rec.Code, rec.Body)
			}
		}()
		<-held
	}
	if got := budget.Reserved(); got != 3*1800 {
		t.Errorf("reserved %d, want %d", got, 3*1800)
	}
	// 5400 of 6144 bytes are taken: a large body does not fit and is refused at once, unread.
	rec := do(h, http.MethodPost, signPath, large)
	msg := wantError(t, rec, http.StatusServiceUnavailable)
	if !strings.Contains(msg, "overloaded") || rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 %q (Retry-After %q)", msg, rec.Header().Get("Retry-After"))
	}
	// A body without Content-Length reserves the whole limit: it does not fit either.
	req := httptest.NewRequest(http.MethodPost, signPath, strings.NewReader(randaoBody))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	wantError(t, rec, http.StatusServiceUnavailable)
	// An ordinary small request still fits and is signed.
	if rec := do(h, http.MethodPost, signPath, randaoBody); rec.Code != http.StatusOK {
		t.Errorf("small request while the budget is nearly spent: %d %s", rec.Code, rec.Body)
	}
	// A declared length over the limit is refused before reading, without touching the budget.
	req = httptest.NewRequest(http.MethodPost, signPath, strings.NewReader(large+large))
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	wantError(t, rec, http.StatusRequestEntityTooLarge)

	close(release)
	wg.Wait()
	if got := budget.Reserved(); got != 0 {
		t.Errorf("after all requests: %d bytes still reserved", got)
	}
	if got := budget.Rejected(); got != 2 {
		t.Errorf("Rejected() = %d, want 2", got)
	}
	if n, _ := f.counts(); n != 4 {
		t.Errorf("Sign called %d times, want 4 (3 held + 1 small)", n)
	}
}

// After a large peak drains, the budget hands memory back, at most once per interval.
func TestBodyBudgetFreesMemoryAfterPeak(t *testing.T) {
	t.Parallel()
	b := NewBodyBudget(1 << 20)
	freed := make(chan time.Time, 4)
	b.freeOS = func() { freed <- time.Now() }
	b.FreeThreshold, b.FreeInterval = 512<<10, 200*time.Millisecond

	small := int64(1000)
	if !b.Reserve(small) {
		t.Fatal("small reservation refused")
	}
	b.Release(small)
	select {
	case <-freed:
		t.Fatal("freed after a small request: no peak to return")
	default:
	}

	if !b.Reserve(600<<10) || b.Reserve(600<<10) {
		t.Fatal("want the first 600 KiB reserved and the second refused")
	}
	b.Release(600 << 10)
	first := waitFreed(t, freed)

	// A second peak right after: the free waits out the interval instead of running again now.
	if !b.Reserve(700 << 10) {
		t.Fatal("second peak refused")
	}
	b.Release(700 << 10)
	second := waitFreed(t, freed)
	if gap := second.Sub(first); gap < b.FreeInterval {
		t.Errorf("two frees %v apart, want at least %v", gap, b.FreeInterval)
	}
	if b.Reserved() != 0 {
		t.Errorf("reserved %d after everything was released", b.Reserved())
	}
}

func waitFreed(t *testing.T, freed <-chan time.Time) time.Time {
	t.Helper()
	select {
	case at := <-freed:
		return at
	case <-time.After(5 * time.Second):
		t.Fatal("memory was not handed back after the peak drained")
		return time.Time{}
	}
}

// attestationBody carries a slot, a source and a target epoch, and roots that must not reach the
// access log.
const (
	bodyMarker      = "0xabababababababababababababababababababababababababababababababab"
	attestationBody = `{"type":"ATTESTATION","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},` +
		`"genesis_validators_root":"0x0000000000000000000000000000000000000000000000000000000000000000"},` +
		`"attestation":{"slot":"4321","index":"2","beacon_block_root":"` + bodyMarker + `",` +
		`"source":{"epoch":"133","root":"` + bodyMarker + `"},"target":{"epoch":"135","root":"` + bodyMarker + `"}}}`
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(l.b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	var access, main lockedBuffer
	h := newHandler(t, &fakeSigner{}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&main, nil))
		o.AccessLog = slog.New(slog.NewJSONHandler(&access, nil)).With("component", "access")
		o.HostAllowlist = defaultAllowlist(t)
	})
	rec := doHost(h, http.MethodPost, signPath, "localhost:9000", attestationBody, "User-Agent", "Lighthouse/v7.0.0")
	if rec.Code != http.StatusOK {
		t.Fatalf("sign: %d %s", rec.Code, rec.Body)
	}
	lines := access.lines()
	if len(lines) != 1 {
		t.Fatalf("access log has %d lines for one request, want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if strings.Contains(lines[0], strings.TrimPrefix(bodyMarker, "0x")) || strings.Contains(lines[0], "beacon_block_root") {
		t.Errorf("access log line carries body content: %s", lines[0])
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("access log line is not JSON: %v: %s", err, lines[0])
	}
	for k, want := range map[string]any{
		"component": "access", "method": "POST", "path": signPath, "key": testKey, "type": "ATTESTATION",
		"slot": 4321.0, "epoch": 135.0, "source_epoch": 133.0, "status": 200.0, "remote": "192.0.2.1:1234",
		"user_agent": "Lighthouse/v7.0.0",
	} {
		if got[k] != want {
			t.Errorf("access log %s = %v (%T), want %v", k, got[k], got[k], want)
		}
	}
	if l, ok := got["latency_ms"].(float64); !ok || l < 0 {
		t.Errorf("access log latency_ms = %v", got["latency_ms"])
	}
	if len(main.lines()) != 0 {
		t.Errorf("a signed request wrote to the main log: %v", main.lines())
	}

	// Refusals are logged with their status (and, once decoded, the request's subject).
	doHost(h, http.MethodPost, signPath, "attacker.example", exitBody, "Content-Type", "text/plain")
	doHost(h, http.MethodPost, signPath, "localhost", exitBody, "Content-Type", "text/plain")
	lines = access.lines()
	if len(lines) != 3 || !strings.Contains(lines[1], `"status":403`) || !strings.Contains(lines[2], `"status":415`) {
		t.Errorf("access log after a 403 and a 415:\n%s", strings.Join(lines, "\n"))
	}

	// Off: nothing is logged anywhere for a signed request.
	var quiet lockedBuffer
	h = newHandler(t, &fakeSigner{}, func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(&quiet, nil)) })
	if rec := do(h, http.MethodPost, signPath, attestationBody); rec.Code != http.StatusOK {
		t.Fatalf("sign without access log: %d %s", rec.Code, rec.Body)
	}
	if l := quiet.lines(); len(l) != 0 {
		t.Errorf("access log off, but a signed request logged: %v", l)
	}
}

func TestRequestSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body                string
		slot, epoch, source string // "" = absent
	}{
		{attestationBody, "4321", "135", "133"},
		{exitBody, "", "5", ""},
		{randaoBody, "", "3", ""},
	} {
		r, err := signer.DecodeRequest([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		s := r.Subject()
		got := [3]string{}
		if s.Slot != nil {
			got[0] = jsonNum(uint64(*s.Slot))
		}
		if s.Epoch != nil {
			got[1] = jsonNum(uint64(*s.Epoch))
		}
		if s.SourceEpoch != nil {
			got[2] = jsonNum(uint64(*s.SourceEpoch))
		}
		if want := [3]string{tc.slot, tc.epoch, tc.source}; got != want {
			t.Errorf("%s: subject %v, want %v", r.Type, got, want)
		}
	}
}

func jsonNum(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

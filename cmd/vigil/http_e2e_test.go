package main

// End-to-end tests of the HTTP listener defences (httpserver.go, api/hostcheck.go,
// api/accesslog.go) against the real binary: Host allowlist and JSON-only bodies, and the access
// log; with the helpers of the listener tests. Connection and memory exhaustion (the connection
// cap, the body budget, RSS, the largest real request) are in e2e_exhaustion_test.go.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/internal/signingtest"
)

// freshClient opens a new connection per request, so a connection the server closed (evicted)
// is never reused by accident.
var freshClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// send posts (or gets, when body is "") with an explicit Host and Content-Type ("" sends none).
func send(t *testing.T, method, url, host, ctype, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := freshClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// randaoRequest is an honest, repeatable (not slashable) mainnet request of key 0, and its root.
func randaoRequest(t *testing.T) (string, phase0.Root) {
	fe := signingtest.MainnetFork("ELECTRA")
	epoch := fe.Epoch + 1
	b, err := json.Marshal(signingtest.RandaoRequest(fe, epoch))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), signingtest.ForkedRoot(t, signingtest.DomainRandao, fe, epoch, signingtest.Uint64Root(uint64(epoch)))
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metric reads one sample (name with its labels, exactly as exposed) from the metrics listener.
func metric(t *testing.T, v *vigil, name string) float64 {
	t.Helper()
	r := send(t, http.MethodGet, v.MetricsURL+"/metrics", "", "", "")
	for _, line := range strings.Split(string(r.body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exposed:\n%s", name, truncateBody(r.body))
	return 0
}

// pollUntil calls cond every interval until it returns true (then pollUntil returns true) or
// within has passed (false). Only for state of another process that it tells nobody about: a
// value on its metrics listener, its memory in /proc; everything the process writes (log lines,
// output) or the test itself controls is waited on as an event instead.
func pollUntil(within, interval time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond() // one last look
		}
	}
}

// waitMetric polls the metrics listener until cond holds for the metric (bounded: there is no
// event to wait on from outside the process; vigil logs none of these gauges and counters).
func waitMetric(t *testing.T, v *vigil, name string, cond func(float64) bool, what string) float64 {
	t.Helper()
	const within = 15 * time.Second
	var got float64
	if !pollUntil(within, 20*time.Millisecond, func() bool { got = metric(t, v, name); return cond(got) }) {
		t.Fatalf("%s: %s is %v after %v", what, name, got, within)
	}
	return got
}

func (v *vigil) pid() int { return v.cmd.Process.Pid }

// vmRSS is the process's resident set size in bytes (/proc/<pid>/status VmRSS).
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("read /proc fd: %v", err)
	}
	return len(es)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// dial opens a raw TCP connection to the signing listener; the test closes it.
func dial(t *testing.T, v *vigil) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", hostPort(v.URL))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ---------------------------------------------------------------------------------------------
// Item 5: Host allowlist and JSON-only bodies.

func TestE2EHostAllowlistAndJSONOnly(t *testing.T) {
	v := start(t, append([]string{"--network", "mainnet"}, writeKeystores(t, 0)...)...)
	pub0 := interopPub(t, 0)
	url := v.URL + signPath(pub0)
	_, port, _ := strings.Cut(hostPort(v.URL), ":")

	// Item 7: the largest real request, a maximal Altair full block, is signed under the default
	// body limit, with room to spare (first: the Deneb blocks below raise the low watermark).
	f := signingtest.MainnetFork("ALTAIR")
	blk := maximalAltairBlock(signingtest.ForkSlot("ALTAIR", 7))
	root := signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, f, signingtest.EpochOf(blk.Slot), blk)
	body := jsonString(t, map[string]any{"type": "BLOCK_V2", "fork_info": signingtest.ForkInfoJSON(f), "signingRoot": signingtest.Hex(root[:]),
		"beacon_block": map[string]any{"version": "ALTAIR", "block": blk}})
	t.Logf("maximal mainnet Altair BLOCK_V2 request: %d bytes (%s); default --http-max-body-bytes %d (%.1fx)",
		len(body), mib(int64(len(body))), api.DefaultMaxBodyBytes, float64(api.DefaultMaxBodyBytes)/float64(len(body)))
	if len(body)*2 > api.DefaultMaxBodyBytes {
		t.Errorf("maximal block request (%d bytes) leaves less than 2x margin under DefaultMaxBodyBytes %d", len(body), api.DefaultMaxBodyBytes)
	}
	wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, url, "127.0.0.1:"+port, "application/json", body)))

	// A web page's requests: a foreign name (DNS rebinding) or the right name with a body type
	// a browser sends cross-origin without a preflight (CSRF). A slashable block, so that a
	// signature that slipped through would show as a record.
	slot := signingtest.ForkSlot("DENEB", 3)
	evil, good := jsonString(t, blockRequest(t, slot, 1)), jsonString(t, blockRequest(t, slot, 2))
	exit := jsonString(t, map[string]any{"type": "VOLUNTARY_EXIT", "fork_info": signingtest.ForkInfoJSON(signingtest.MainnetFork("DENEB")),
		"voluntary_exit": map[string]any{"epoch": "1", "validator_index": "0"}})
	for _, c := range []struct {
		name, host, ctype, body string
		status                  int
		substr                  string
	}{
		{"exit from a web page: foreign Host, text/plain", "attacker.example", "text/plain", exit, 403, "attacker.example"},
		{"foreign Host with the port, JSON", "attacker.example:" + port, "application/json", evil, 403, "--http-host-allowlist"},
		{"rebinding name of 127.0.0.1", "127.0.0.1.nip.io:" + port, "application/json", evil, 403, "Host not authorized"},
		{"IPv6 loopback is not in the default list", "[::1]:" + port, "application/json", evil, 403, "Host not authorized"},
		{"right Host, text/plain (a form or fetch without preflight)", "127.0.0.1:" + port, "text/plain", evil, 415, "application/json"},
		{"right Host, form encoded", "localhost:" + port, "application/x-www-form-urlencoded", evil, 415, "application/json"},
		{"right Host, multipart", "localhost:" + port, "multipart/form-data; boundary=x", evil, 415, "application/json"},
		{"right Host, no Content-Type", "localhost", "", evil, 415, "missing Content-Type"},
		{"exit, right Host, text/plain", "localhost:" + port, "text/plain", exit, 415, "application/json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, send(t, http.MethodPost, url, c.host, c.ctype, c.body), c.status, c.substr)
		})
	}
	// Every validator client sends application/json (some with a charset), to its configured
	// host name: localhost or 127.0.0.1 by default, in any case.
	for _, c := range []struct{ host, ctype string }{
		{"127.0.0.1:" + port, "application/json"},
		{"LOCALHOST:" + port, "application/json; charset=UTF-8"},
		{"localhost.:" + port, "Application/JSON"},
	} {
		if r := send(t, http.MethodPost, url, c.host, c.ctype, good); r.status != http.StatusOK {
			t.Errorf("honest block (Host %q, %q): %s", c.host, c.ctype, r)
		}
	}
	// The refused block was never recorded: a different block for the same slot signed above;
	// had the refused one been recorded, that would have been a 412.
	if r := send(t, http.MethodPost, url, "localhost", "application/json", evil); r.status != http.StatusPreconditionFailed {
		t.Errorf("the conflicting block after the honest one: %s, want 412", r)
	}

	// Probes answer any Host (kubelet and load balancers use the pod IP, or no Host at all);
	// routes with information do not.
	for _, path := range []string{"/upcheck", "/livez", "/readyz"} {
		if r := send(t, http.MethodGet, v.URL+path, "10.42.0.17:"+port, "", ""); r.status != http.StatusOK {
			t.Errorf("GET %s by pod IP: %s", path, r)
		}
		c := dial(t, v)
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path) // HTTP/1.0: no Host header at all
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without Host: %v %v", path, resp, err)
		}
	}
	for _, path := range []string{"/healthcheck", "/api/v1/eth2/publicKeys"} {
		wantError(t, send(t, http.MethodGet, v.URL+path, "attacker.example", "", ""), 403, "Host not authorized")
	}
	// The metrics listener has its own allowlist, with the same default.
	wantError(t, send(t, http.MethodGet, v.MetricsURL+"/metrics", "attacker.example", "", ""), 403, "--metrics-host-allowlist")
	if r := send(t, http.MethodGet, v.MetricsURL+"/metrics", "localhost", "", ""); r.status != http.StatusOK {
		t.Errorf("metrics by localhost: %s", r)
	}

	// A bad allowlist is a usage error at start.
	cmd := exec.Command(vigilBin, "serve", "--data-dir", t.TempDir(), "--init-slashing-protection", "--http-listen-port", "0",
		"--metrics-listen-port", "0", "--http-host-allowlist", "localhost:9000")
	cmd.Env = testEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--http-host-allowlist") {
		t.Errorf("--http-host-allowlist localhost:9000: %v\n%s", err, out)
	}
}

// A custom allowlist replaces the default; * lets any Host through.
func TestE2EHostAllowlistCustom(t *testing.T) {
	v := start(t, append([]string{"--network", "mainnet", "--http-host-allowlist", "signer.internal,::1", "--metrics-host-allowlist", "*"},
		writeKeystores(t, 0)...)...)
	body, root := randaoRequest(t)
	url := v.URL + signPath(interopPub(t, 0))
	for _, host := range []string{"signer.internal:9000", "Signer.Internal", "[::1]:9000", "[0:0:0:0:0:0:0:1]"} {
		wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, url, host, "application/json", body)))
	}
	for _, host := range []string{"localhost", "127.0.0.1", "signer.internal.attacker.example"} {
		wantError(t, send(t, http.MethodPost, url, host, "application/json", body), 403, "Host not authorized")
	}
	if r := send(t, http.MethodGet, v.MetricsURL+"/metrics", "prometheus.monitoring.svc:9001", "", ""); r.status != http.StatusOK {
		t.Errorf("metrics with --metrics-host-allowlist *: %s", r)
	}
}

// ---------------------------------------------------------------------------------------------
// Item 12: the access log.

// accessLines returns the JSON access-log lines in out.
func accessLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, `"component":"access"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line is not JSON: %v: %s", err, l)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestE2EAccessLog(t *testing.T) {
	pub0 := interopPub(t, 0)
	f := signingtest.MainnetFork("ELECTRA")
	slot := signingtest.ForkSlot("ELECTRA", 40)
	a := signingtest.AttestationData(slot, signingtest.EpochOf(slot)-1, signingtest.EpochOf(slot), 9)
	att := jsonString(t, signingtest.AttestationRequest(f, a))
	root := signingtest.SigningRoot(t, signingtest.DomainBeaconAttester, f, a.Target.Epoch, a)
	marker := func(t *testing.T, v *vigil) {
		// A refused Host always logs a warning: once it is in the output, every line of the
		// requests before it is there too (one ordered stream).
		wantError(t, send(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "marker.example", "", ""), 403, "marker.example")
		v.Stderr.waitFor(t, `"host":"marker.example"`, 10*time.Second)
	}

	t.Run("on", func(t *testing.T) {
		// --log-level warn: the access log has its own switch.
		v := start(t, append([]string{"--network", "mainnet", "--http-access-log", "--log-format", "json", "--log-level", "warn"}, writeKeystores(t, 0)...)...)
		wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, v.URL+signPath(pub0), "", "application/json", att)))
		marker(t, v)
		var signs []map[string]any
		for _, l := range accessLines(t, v.Stderr.String()) {
			if l["key"] == pub0 {
				signs = append(signs, l)
			}
		}
		if len(signs) != 1 {
			t.Fatalf("%d access lines for one sign request, want 1:\n%v", len(signs), signs)
		}
		l := signs[0]
		t.Logf("access line: %v", l)
		for k, want := range map[string]any{"msg": "request", "method": "POST", "path": signPath(pub0), "type": "ATTESTATION",
			"slot": float64(slot), "epoch": float64(a.Target.Epoch), "source_epoch": float64(a.Source.Epoch), "status": 200.0} {
			if l[k] != want {
				t.Errorf("access line %s = %v, want %v", k, l[k], want)
			}
		}
		if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("access line remote %v", l["remote"])
		}
		if _, ok := l["latency_ms"].(float64); !ok {
			t.Errorf("access line without latency_ms: %v", l)
		}
		for _, secret := range []string{signingtest.Hex(a.BeaconBlockRoot[:]), signingtest.Hex(a.Target.Root[:]), "beacon_block_root", "fork_info"} {
			if strings.Contains(v.Stderr.String(), secret) {
				t.Errorf("the log carries body content %q", secret)
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		v := start(t, append([]string{"--network", "mainnet", "--log-format", "json"}, writeKeystores(t, 0)...)...)
		wantSignature(t, 0, root, signature(t, send(t, http.MethodPost, v.URL+signPath(pub0), "", "application/json", att)))
		marker(t, v)
		if l := accessLines(t, v.Stderr.String()); len(l) != 0 {
			t.Errorf("no --http-access-log, but %d access lines: %v", len(l), l)
		}
	})
}

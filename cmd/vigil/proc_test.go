package main

// The process helpers of the end-to-end tests: TestMain builds the vigil binary once; start runs
// `vigil serve` as a subprocess; do and signJSON drive it over HTTP; the interop keys sign the
// expected signatures. Signing roots and request bodies come from internal/signingtest.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// ---------------------------------------------------------------------------------------------
// The binary and its processes.

// vigilBin is the binary built once by TestMain.
var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-o", vigilBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build -o %s .: %v\n%s", vigilBin, err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.Cleanup() // the throwaway Postgres cluster of the tests that use one
	os.RemoveAll(dir)
	os.Exit(code)
}

// outBuf collects a subprocess's output and wakes waiters on every write.
type outBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newOutBuf() *outBuf { return &outBuf{changed: make(chan struct{})} }

func (o *outBuf) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns the output so far and a channel closed at the next write.
func (o *outBuf) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String(), o.changed
}

func (o *outBuf) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor blocks until the output contains substr (or fails the test after timeout).
func (o *outBuf) waitFor(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	return o.waitForOrExit(t, nil, substr, timeout)
}

// waitForOrExit is waitFor that also fails at once when v (if not nil) exits first.
func (o *outBuf) waitForOrExit(t *testing.T, v *vigil, substr string, timeout time.Duration) string {
	t.Helper()
	var exited <-chan struct{} // nil: never
	if v != nil {
		exited = v.exited
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		s, ch := o.b.String(), o.changed
		o.mu.Unlock()
		if strings.Contains(s, substr) {
			return s
		}
		select {
		case <-ch:
		case <-exited:
			o.mu.Lock()
			s = o.b.String()
			o.mu.Unlock()
			if strings.Contains(s, substr) {
				return s
			}
			t.Fatalf("vigil exited (%v) before printing %q; stdout:\n%s\nstderr:\n%s", v.cmd.ProcessState, substr, s, v.Stderr)
		case <-deadline.C:
			t.Fatalf("output never contained %q; got:\n%s", substr, s)
		}
	}
}

// vigil is one running `vigil serve`.
type vigil struct {
	URL        string // http://127.0.0.1:N
	MetricsURL string
	DataDir    string
	Stdout     *outBuf
	Stderr     *outBuf
	cmd        *exec.Cmd
	exited     chan struct{}
}

// testEnv is the environment without VIGIL_* settings of whoever runs the tests.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			env = append(env, kv)
		}
	}
	return env
}

// start runs `vigil serve --http-listen-port 0 --metrics-listen-port 0 args...` (with a fresh
// --data-dir unless args has one), waits until vigil.ports appears and /upcheck answers, and
// kills the process when the test ends. Its stderr is logged if the test failed.
func start(t *testing.T, args ...string) *vigil {
	t.Helper()
	return startProc(t, procOptions{init: true}, args...)
}

// procOptions change how startProc runs vigil serve.
type procOptions struct {
	init bool     // add --init-slashing-protection (create the database on a first start)
	wrap []string // run vigil through this command (argv before vigil's own), e.g. a shell
}

// startProc is start with options.
func startProc(t *testing.T, o procOptions, args ...string) *vigil {
	t.Helper()
	dataDir := ""
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
		}
	}
	if dataDir == "" {
		dataDir = t.TempDir()
		args = append(args, "--data-dir", dataDir)
	}
	portsFile := filepath.Join(dataDir, "vigil.ports")
	_ = os.Remove(portsFile)

	v := &vigil{DataDir: dataDir, Stdout: newOutBuf(), Stderr: newOutBuf(), exited: make(chan struct{})}
	argv := []string{vigilBin, "serve", "--http-listen-port", "0", "--metrics-listen-port", "0"}
	if o.init {
		// Create the database on a first start (a no-op on a restart).
		argv = append(argv, "--init-slashing-protection")
	}
	argv = append(append(o.wrap, argv...), args...)
	v.cmd = exec.Command(argv[0], argv[1:]...)
	v.cmd.Stdout, v.cmd.Stderr, v.cmd.Env = v.Stdout, v.Stderr, testEnv()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start vigil: %v", err)
	}
	go func() {
		_ = v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			t.Logf("vigil serve %s\n--- stdout ---\n%s--- stderr ---\n%s", strings.Join(args, " "), v.Stdout, v.Stderr)
		}
	})

	// The banner on stdout comes after vigil.ports is written and the listeners serve: wait for
	// it (an event: the process writes), or for the process to exit.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		s, changed := v.Stdout.snapshot()
		if strings.Contains(s, "serving the signing API at") {
			break
		}
		select {
		case <-changed:
		case <-v.exited:
			t.Fatalf("vigil exited before listening (%v); stderr:\n%s", v.cmd.ProcessState, v.Stderr)
		case <-deadline.C:
			t.Fatalf("vigil did not start serving within 30s; stderr:\n%s", v.Stderr)
		}
	}
	ports, err := os.ReadFile(portsFile)
	if err != nil {
		t.Fatalf("vigil serves but wrote no %s: %v", portsFile, err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(ports)), "\n") {
		k, val, _ := strings.Cut(line, "=")
		kv[k] = val
	}
	if kv["http-port"] == "" || kv["http-port"] == "0" {
		t.Fatalf("bad vigil.ports %q", ports)
	}
	v.URL = "http://127.0.0.1:" + kv["http-port"]
	v.MetricsURL = "http://127.0.0.1:" + kv["metrics-port"]
	if s, _ := v.Stdout.snapshot(); strings.Contains(s, "serving the signing API at https://") {
		v.URL = "https://127.0.0.1:" + kv["http-port"] // TLS: the test's own client checks it
		return v
	}
	if r := do(t, http.MethodGet, v.URL+"/upcheck", "", nil); r.status != http.StatusOK {
		t.Fatalf("/upcheck: %s; stderr:\n%s", r, v.Stderr)
	}
	return v
}

func (v *vigil) kill() {
	select {
	case <-v.exited:
	default:
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
}

// stop shuts the server down gracefully (SIGINT) and expects exit status 0.
func (v *vigil) stop(t *testing.T) {
	t.Helper()
	if err := v.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupt vigil: %v", err)
	}
	select {
	case <-v.exited:
	case <-time.After(15 * time.Second):
		v.kill()
		t.Fatalf("vigil did not stop within 15s of SIGINT")
	}
	if code := v.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("vigil exited with status %d after SIGINT; stderr:\n%s", code, v.Stderr)
	}
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

var client = &http.Client{Timeout: 30 * time.Second}

type reply struct {
	status int
	ctype  string
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s %s", r.status, r.ctype, truncateBody(r.body))
}

func truncateBody(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "..."
	}
	return string(b)
}

// do sends one request; accept "" sends no Accept header; body may be nil, []byte, string or a
// value to marshal as JSON.
func do(t *testing.T, method, url, accept string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
}

// dayAgo is a genesis time for minimal-network servers: a day of 48 s epochs before now.
func dayAgo() string { return strconv.FormatInt(time.Now().Add(-24*time.Hour).Unix(), 10) }

func signPath(pub string) string { return "/api/v1/eth2/sign/" + pub }

// signJSON posts a sign request with Accept: application/json and returns the reply.
func (v *vigil) signJSON(t *testing.T, pub string, body any) reply {
	t.Helper()
	return do(t, http.MethodPost, v.URL+signPath(pub), "application/json", body)
}

const (
	ctJSON = "application/json; charset=utf-8"
	ctText = "text/plain; charset=utf-8"
)

// signature extracts the signature of a 200 JSON reply.
func signature(t *testing.T, r reply) keystore.Signature {
	t.Helper()
	if r.status != http.StatusOK || r.ctype != ctJSON {
		t.Fatalf("want 200 %s, got %s", ctJSON, r)
	}
	var v struct {
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("reply is not {\"signature\":...}: %v: %s", err, r.body)
	}
	return parseSig(t, v.Signature)
}

func parseSig(t *testing.T, s string) keystore.Signature {
	t.Helper()
	if !strings.HasPrefix(s, "0x") || strings.ToLower(s) != s {
		t.Fatalf("signature %q is not lowercase 0x hex", s)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil || len(b) != 96 {
		t.Fatalf("signature %q is not 96 bytes of hex", s)
	}
	var sig keystore.Signature
	copy(sig[:], b)
	return sig
}

// wantError checks an error reply: status, a JSON body with a non-empty message containing
// substr, and the JSON content type.
func wantError(t *testing.T, r reply, status int, substr string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("want status %d, got %s", status, r)
	}
	if r.ctype != ctJSON {
		t.Errorf("error reply Content-Type %q, want %q", r.ctype, ctJSON)
	}
	var e struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.body)
	}
	if e.Message == "" {
		t.Fatalf("error body has no message: %s", r.body)
	}
	if !strings.Contains(e.Message, substr) {
		t.Errorf("error message %q does not mention %q", e.Message, substr)
	}
	return e.Message
}

// ---------------------------------------------------------------------------------------------
// Keys.

func interopKey(t *testing.T, i uint64) *keystore.SecretKey {
	t.Helper()
	sk, err := keystore.InteropSecretKey(i)
	if err != nil {
		t.Fatalf("interop key %d: %v", i, err)
	}
	return sk
}

func interopPub(t *testing.T, i uint64) string { return interopKey(t, i).PublicKey().String() }

// writeKeystores writes interop keystores for indices and returns the serve flags that load them.
func writeKeystores(t *testing.T, indices ...uint64) []string {
	t.Helper()
	dir := t.TempDir()
	keys, pw := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	if _, err := keystore.WriteInteropKeystores(keys, pw, indices, keystore.DevKDF()); err != nil {
		t.Fatalf("write keystores: %v", err)
	}
	return []string{"--keystores-path", keys, "--keystores-password-file", pw}
}

// wantSignature checks that sig is exactly interop key i's signature of root (BLS is
// deterministic) and that it verifies.
func wantSignature(t *testing.T, i uint64, root phase0.Root, sig keystore.Signature) {
	t.Helper()
	sk := interopKey(t, i)
	if want := sk.SignRoot(root); sig != want {
		t.Errorf("signature for signing root %#x:\n got %s\nwant %s", root[:], sig, want)
	}
	if !keystore.Verify(sk.PublicKey(), root[:], sig) {
		t.Errorf("signature does not verify against signing root %#x", root[:])
	}
}

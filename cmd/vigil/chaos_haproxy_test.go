package main

// HAProxy in front of the pair, as deployed: it sends signing traffic to the instance whose
// /readyz answers 200 (the leader) and retries a request elsewhere on a connection failure or a
// 503. deploy/haproxy/haproxy.cfg is used when it exists (it takes the backend addresses from
// the environment: SIGNER_FRONTEND_ADDR, SIGNER_A_ADDR, SIGNER_B_ADDR, SIGNER_STATS_ADDR);
// otherwise a minimal equivalent is written here. VIGIL_HAPROXY_CONFIG names another file to try
// (same variables).

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/internal/testenv"
)

type haproxyProc struct {
	url    string
	cfg    string // the config file used
	cmd    *exec.Cmd
	out    *outBuf
	exited chan struct{}
}

// haproxyBin returns the haproxy executable, or skips (fails under VIGIL_REQUIRE_EXTERNAL=1).
func haproxyBin(t testing.TB) string {
	t.Helper()
	return testenv.LookPath(t, "haproxy", "install HAProxy (Debian: apt-get install haproxy)")
}

const haproxyOwnConfig = `# written by the chaos test
global
    maxconn 2000
defaults
    mode http
    timeout connect 500ms
    timeout client 30s
    timeout server 1500ms
    timeout check 500ms
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
frontend vigil_signing
    bind 127.0.0.1:%d
    default_backend vigil_pair
backend vigil_pair
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fastinter 200ms downinter 200ms fall 2 rise 1
    server %s 127.0.0.1:%d check
    server %s 127.0.0.1:%d check
`

// repoHAProxyConfig is the deployment's config, if another change has added it.
var repoHAProxyConfig = filepath.Join("..", "..", "deploy", "haproxy", "haproxy.cfg")

// startHAProxy runs haproxy in the foreground in front of the pair's two instances and waits
// until it accepts connections; it is stopped when the test ends.
func startHAProxy(t testing.TB, p *haPair) *haproxyProc {
	t.Helper()
	bin := haproxyBin(t)
	port := haFreePort(t)
	a, b := p.nodes[0], p.nodes[1]
	env := testEnv()
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	path := repoHAProxyConfig
	if alt := os.Getenv("VIGIL_HAPROXY_CONFIG"); alt != "" {
		path = alt // another config to try, with the same variables
	}
	body, err := os.ReadFile(path)
	if err == nil && bytes.Contains(body, []byte("SIGNER_A_ADDR")) && bytes.Contains(body, []byte("SIGNER_B_ADDR")) {
		// The deployment's file takes its addresses from the environment.
		vars := []string{
			"SIGNER_FRONTEND_ADDR=127.0.0.1:" + strconv.Itoa(port),
			"SIGNER_A_ADDR=127.0.0.1:" + strconv.Itoa(a.port),
			"SIGNER_B_ADDR=127.0.0.1:" + strconv.Itoa(b.port),
			"SIGNER_STATS_ADDR=127.0.0.1:" + strconv.Itoa(haFreePort(t)),
		}
		env = append(env, vars...)
		if err := os.WriteFile(cfg, body, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("haproxy: %s with %v", path, vars)
	} else {
		if os.Getenv("VIGIL_HAPROXY_CONFIG") != "" {
			t.Fatalf("VIGIL_HAPROXY_CONFIG=%s: not readable or without SIGNER_A_ADDR and SIGNER_B_ADDR (%v)", path, err)
		}
		t.Logf("haproxy: no usable %s (%v): a minimal config of the test's own", path, err)
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(haproxyOwnConfig, port, a.id, a.port, b.id, b.port)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	check := exec.Command(bin, "-c", "-f", cfg)
	check.Env = env
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", cfg, err, out)
	}
	h := &haproxyProc{url: "http://127.0.0.1:" + strconv.Itoa(port), cfg: cfg, out: newOutBuf(), exited: make(chan struct{})}
	h.cmd = exec.Command(bin, "-db", "-f", cfg)
	h.cmd.Env = env
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", haTailLines(h.out.String(), 60))
		}
	})
	// HAProxy announces nothing when it listens: dialing is the only way to know (every 20 ms,
	// at most 10 s).
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if !haPollEvery(20*time.Millisecond, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}) {
		t.Fatalf("haproxy does not listen on %s; output:\n%s", addr, h.out)
	}
	return h
}

func (h *haproxyProc) target() signTarget { return signTarget{"haproxy", h.url} }

package main

// The harness of the HA and chaos tests: a pair of real `vigil serve` processes on one real
// Postgres database (each instance's database connections behind its own tcpProxy), a signing
// load whose clients fail over between instances, a takeover probe, and the record of every
// request and every signature returned with 200, which chaos_checker_test.go judges.
//
// Waiting is on events: process output (outBuf), process exit, and the signRecorder's "a result
// arrived" channel. Where only an HTTP request can observe a state (is this instance signing
// yet?), a helper polls with a bounded loop paced by a ticker and says why.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// haLease is the --ha-lease of the tests (VIGIL_HA_LEASE overrides it): short, so that a
// takeover after kill -9 is quick, yet long against scheduling hiccups on two shared cores.
func haLease(t testing.TB) time.Duration {
	if s := os.Getenv("VIGIL_HA_LEASE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("VIGIL_HA_LEASE=%q: %v", s, err)
		}
		return d
	}
	return 2 * time.Second
}

// ---------------------------------------------------------------------------------------------
// Transitions, as logged: msg="ha transition" from=... to=leader|standby term=N reason="...".

type haTransition struct {
	From, To string
	Term     int64
	Line     string
}

var (
	reTransTo   = regexp.MustCompile(`\bto=("?)(\w+)`)
	reTransFrom = regexp.MustCompile(`\bfrom=("?)(\w+)`)
	reTransTerm = regexp.MustCompile(`\bterm=(\d+)`)
)

func haParseTransitions(s string) []haTransition {
	var out []haTransition
	for _, line := range strings.Split(s, "\n") {
		if !strings.Contains(line, `msg="ha transition"`) {
			continue
		}
		tr := haTransition{Line: line}
		if m := reTransTo.FindStringSubmatch(line); m != nil {
			tr.To = m[2]
		}
		if m := reTransFrom.FindStringSubmatch(line); m != nil {
			tr.From = m[2]
		}
		if m := reTransTerm.FindStringSubmatch(line); m != nil {
			tr.Term, _ = strconv.ParseInt(m[1], 10, 64)
		}
		out = append(out, tr)
	}
	return out
}

// waitOut waits until pred holds for o's output (an event: every write wakes it) or timeout;
// it never fails the test (callers decide).
func haWaitOut(o *outBuf, timeout time.Duration, pred func(string) bool) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s, ch := o.snapshot()
		if pred(s) {
			return s, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return s, false
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Nodes and the pair.

type haNode struct {
	id      string
	port    int
	url     string
	dataDir string
	proxy   *tcpProxy // this node's database connections
	args    []string
	v       *vigil // the current process
	starts  int
	stopped bool // SIGSTOPped
}

// running reports whether the current process has not exited.
func (n *haNode) running() bool {
	if n.v == nil {
		return false
	}
	select {
	case <-n.v.exited:
		return false
	default:
		return true
	}
}

func (n *haNode) transitions() []haTransition { return haParseTransitions(n.v.Stderr.String()) }

// role is the role of the last transition the current process logged ("" before the first).
func (n *haNode) role() string {
	trs := n.transitions()
	if len(trs) == 0 {
		return ""
	}
	return trs[len(trs)-1].To
}

// waitTransition waits for a transition to `to` among the current process's transitions at
// index ≥ after, and fails the test after timeout.
func (n *haNode) waitTransition(t testing.TB, to string, after int, timeout time.Duration) haTransition {
	t.Helper()
	var got haTransition
	s, ok := haWaitOut(n.v.Stderr, timeout, func(s string) bool {
		trs := haParseTransitions(s)
		for i := after; i < len(trs); i++ {
			if trs[i].To == to {
				got = trs[i]
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("%s logged no ha transition to=%s (after #%d) within %s; transitions:\n%s", n.id, to, after, timeout, haTransitionLines(s))
	}
	return got
}

func haTransitionLines(s string) string {
	var b strings.Builder
	for _, tr := range haParseTransitions(s) {
		b.WriteString("  " + tr.Line + "\n")
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}

func (n *haNode) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := n.v.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", n.id, sig, err)
	}
}

type haPair struct {
	t        testing.TB
	ha       bool // --ha-enabled behaves (transitions are logged); else a plain pair
	lease    time.Duration
	dbURL    string // direct, not through a proxy
	keys     *chaosKeys
	loadKeys []uint64
	nodes    []*haNode
	rec      *signRecorder
	probeN   atomic.Uint64
}

type haPairOptions struct {
	keys      int      // load keys 0..keys-1 (the probe key is added)
	extraArgs []string // for both nodes
	directDB  bool     // connect straight to Postgres, not through the nodes' tcpProxy
}

// haFreePort returns a port that was free a moment ago, for a process to bind later. It is
// drawn below Linux's ephemeral range (32768–60999): a port the kernel hands out for port 0
// can be taken meanwhile as the source port of any outgoing connection (the parallel devnets'
// clients make many), which made a later bind fail with "address already in use". Ports handed
// out here are not handed out twice by this test process.
func haFreePort(t testing.TB) int {
	t.Helper()
	haPortsMu.Lock()
	defer haPortsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if haPortsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		haPortsUsed[p] = true
		return p
	}
	t.Fatal("no free port in 20000–31999")
	return 0
}

var (
	haPortsMu   sync.Mutex
	haPortsUsed = map[int]bool{}
)

// newHAPair starts node a (it becomes leader), then node b (standby), on a fresh Postgres
// database, both with --ha-enabled. When the binary does not yet implement HA (no transition
// logged and no "ha" object in /healthcheck), the pair runs as two plain instances on one
// database (safe by the database's per-key locks) and pair.ha is false.
func newHAPair(t testing.TB, o haPairOptions) *haPair {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	pu, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest URL %q: %v", dbURL, err)
	}
	p := &haPair{t: t, lease: haLease(t), dbURL: dbURL, rec: newSignRecorder()}
	indices := []uint64{chaosProbeKey}
	for i := range uint64(o.keys) {
		p.loadKeys = append(p.loadKeys, i)
		indices = append(indices, i)
	}
	keyFlags, keys := writeChaosKeystores(t, indices)
	p.keys = keys
	for _, id := range []string{"node-alpha", "node-bravo"} {
		n := &haNode{id: id, port: haFreePort(t), dataDir: t.TempDir(), proxy: newTCPProxy(t, pu.Host)}
		n.url = "http://127.0.0.1:" + strconv.Itoa(n.port)
		nodeDB := n.proxy.RewriteURL(t, dbURL)
		if o.directDB {
			nodeDB = dbURL
		}
		n.args = append([]string{
			"--network", "mainnet", "--http-listen-port", strconv.Itoa(n.port), "--data-dir", n.dataDir,
			"--slashing-protection-db-url", nodeDB,
			"--ha-enabled", "--ha-instance-id", id, "--ha-lease", p.lease.String(), "--ha-advertise-url", n.url,
		}, keyFlags...)
		n.args = append(n.args, o.extraArgs...)
		p.nodes = append(p.nodes, n)
	}
	a, b := p.nodes[0], p.nodes[1]
	p.startNode(a)
	_, p.ha = haWaitOut(a.v.Stderr, 3*p.lease+10*time.Second, func(s string) bool { return len(haParseTransitions(s)) > 0 })
	if !p.ha {
		if _, h := haNodeHealth(a); h != nil {
			t.Fatalf("a has an \"ha\" object in /healthcheck but logged no ha transition within %s:\n%s", 3*p.lease+10*time.Second, a.v.Stderr)
		}
		t.Logf("HA not implemented by this binary yet (no ha transition logged, no \"ha\" in /healthcheck): running a plain pair")
	} else {
		a.waitTransition(t, "leader", 0, 3*p.lease+10*time.Second)
	}
	p.startNode(b)
	if p.ha {
		b.waitTransition(t, "standby", 0, 3*p.lease+10*time.Second)
	}
	return p
}

// requireHA skips the test when the binary does not implement HA yet.
func (p *haPair) requireHA(t testing.TB) {
	t.Helper()
	if !p.ha {
		t.Fatal("a --ha-enabled instance logs no `msg=\"ha transition\"`")
	}
}

func (p *haPair) startNode(n *haNode) {
	p.t.Helper()
	n.v = haStartVigil(p.t, n.args...)
	n.starts++
	n.stopped = false
}

// mustRestart starts n again (restartNode) and fails the test if it does not come up.
func (p *haPair) mustRestart(t testing.TB, n *haNode) {
	t.Helper()
	if o, ok := p.restartNode(t, n); !ok {
		t.Fatalf("%s does not start again (%d starts in %s): %s", n.id, o.starts, o.took.Round(time.Millisecond), o.out)
	}
}

type restartOutcome struct {
	starts    int
	took      time.Duration
	out       string // the last refusal
	orphanPID uint32 // the backend named as holding n's instance id, if that was the refusal
}

var reIDInUse = regexp.MustCompile(`another live instance uses this instance id \(connected from [^,]*, backend (\d+)\)`)

// restartNode starts n again at once, as a supervisor would. A refusal naming n's id as in use
// is retried (every 100 ms, a supervisor's restart delay) for a lease and 3 s: the dead
// process's database sessions may take a moment to end. Any other exit, or that one beyond
// the window, is returned with ok false.
func (p *haPair) restartNode(t testing.TB, n *haNode) (restartOutcome, bool) {
	t.Helper()
	t0 := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var o restartOutcome
	for {
		o.starts++
		code, out := haRunServeUntilUp(t, n)
		o.took = time.Since(t0)
		if code < 0 {
			return o, true
		}
		o.out = haTailLines(out, 5)
		m := reIDInUse.FindStringSubmatch(out)
		if m == nil {
			return o, false
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, m[0]) {
				o.out = line
			}
		}
		pid, _ := strconv.ParseUint(m[1], 10, 32)
		o.orphanPID = uint32(pid)
		if o.took > p.lease+3*time.Second {
			return o, false
		}
		<-tick.C
	}
}

// haRunServeUntilUp starts n's process: -1 when it serves (n.v is then the new process), else
// the exit code and output of a process that exited before serving.
func haRunServeUntilUp(t testing.TB, n *haNode) (int, string) {
	t.Helper()
	v, served := haSpawn(t, n.args...)
	if !served {
		return v.cmd.ProcessState.ExitCode(), v.Stdout.String() + v.Stderr.String()
	}
	n.v = v
	n.starts++
	n.stopped = false
	return -1, ""
}

// haStartVigil is start (e2e_test.go) for any testing.TB, benchmarks included, and for
// restarts on fixed ports: it runs `vigil serve --metrics-listen-port 0
// --init-slashing-protection args...` (args name the HTTP port and the data dir) and waits for
// the banner; the process is killed when the test ends, its output logged if the test failed.
func haStartVigil(t testing.TB, args ...string) *vigil {
	t.Helper()
	v, served := haSpawn(t, args...)
	if !served {
		t.Fatalf("vigil exited before listening (%v); stderr:\n%s", v.cmd.ProcessState, v.Stderr)
	}
	return v
}

// haSpawn starts the process and waits for its banner (an event: the process writes) or its
// exit; served reports which.
func haSpawn(t testing.TB, args ...string) (v *vigil, served bool) {
	t.Helper()
	v = &vigil{Stdout: newOutBuf(), Stderr: newOutBuf(), exited: make(chan struct{})}
	for i, a := range args {
		switch {
		case a == "--data-dir" && i+1 < len(args):
			v.DataDir = args[i+1]
		case a == "--http-listen-port" && i+1 < len(args):
			v.URL = "http://127.0.0.1:" + args[i+1]
		}
	}
	if v.DataDir == "" || v.URL == "" {
		t.Fatalf("haSpawn: args %v name no --data-dir and --http-listen-port", args)
	}
	v.cmd = exec.Command(vigilBin, append([]string{"serve", "--metrics-listen-port", "0", "--init-slashing-protection"}, args...)...)
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
		if t.Failed() && served {
			t.Logf("vigil serve %s (pid %d, %v)\n--- stdout ---\n%s--- stderr (without per-request lines) ---\n%s", strings.Join(args, " "), v.cmd.Process.Pid, v.cmd.ProcessState, v.Stdout, haTailLines(haQuietLog(v.Stderr.String()), 80))
		}
	})
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		s, changed := v.Stdout.snapshot()
		if strings.Contains(s, "serving the signing API at") {
			return v, true
		}
		select {
		case <-changed:
		case <-v.exited:
			return v, false
		case <-deadline.C:
			t.Fatalf("vigil did not start serving within 30s; stderr:\n%s", v.Stderr)
		}
	}
}

// haQuietLog drops the per-request lines (refusals, standby answers) from a vigil log.
func haQuietLog(s string) string {
	var b strings.Builder
	dropped := 0
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.Contains(line, `msg="sign request failed"`) || strings.Contains(line, `msg="signing refused by slashing protection"`) {
			dropped++
			continue
		}
		b.WriteString(line)
	}
	return b.String() + fmt.Sprintf("(%d per-request lines left out)\n", dropped)
}

// haTailLines is the last n lines of s.
func haTailLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		return fmt.Sprintf("[... %d lines ...]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "")
	}
	return s
}

// other is the node that is not n.
func (p *haPair) other(n *haNode) *haNode {
	if p.nodes[0] == n {
		return p.nodes[1]
	}
	return p.nodes[0]
}

// leader is the node whose current process last logged to=leader while the other did not, or
// nil when that is not so (or the pair is plain).
func (p *haPair) leader() *haNode {
	var l *haNode
	for _, n := range p.nodes {
		if n.running() && n.role() == "leader" {
			if l != nil {
				return nil
			}
			l = n
		}
	}
	return l
}

// pollEvery runs try every interval until it returns true or timeout passes; it reports whether
// try succeeded. For states only an HTTP request can observe: the ticker paces the tries.
func haPollEvery(interval, timeout time.Duration, try func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if try() {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return try()
		}
	}
}

// haHealth is the HA part of /healthcheck: a top-level "ha" object, or (as the binary has it
// now) the data of the check with id "ha-check".
type haHealth struct {
	Role   string `json:"role"`
	Leader any    `json:"leader"`
	Term   any    `json:"term"`
}

func haNodeHealth(n *haNode) (int, *haHealth) {
	resp, err := haClient.Get(n.url + "/healthcheck")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var hc struct {
		HA     *haHealth `json:"ha"`
		Checks []struct {
			ID   string    `json:"id"`
			Data *haHealth `json:"data"`
		} `json:"checks"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&hc)
	if hc.HA == nil {
		for _, c := range hc.Checks {
			if c.ID == "ha-check" && c.Data != nil {
				hc.HA = c.Data
			}
		}
	}
	return resp.StatusCode, hc.HA
}

func haNodeStatus(n *haNode, path string) int {
	resp, err := haClient.Get(n.url + path)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitOneLeader waits until exactly one node is the leader by every account: its log, /readyz
// (200 on it, 503 on the other) and, when present, /healthcheck's ha.role. Polled (readiness and health are
// observable only by asking), every 100 ms, at most timeout.
func (p *haPair) waitOneLeader(t testing.TB, timeout time.Duration) *haNode {
	t.Helper()
	var got *haNode
	var last string
	ok := haPollEvery(100*time.Millisecond, timeout, func() bool {
		l := p.leader()
		if l == nil {
			last = fmt.Sprintf("roles by log: a=%q b=%q", p.nodes[0].role(), p.nodes[1].role())
			return false
		}
		o := p.other(l)
		rl, ro := haNodeStatus(l, "/readyz"), haNodeStatus(o, "/readyz")
		_, hl := haNodeHealth(l)
		_, ho := haNodeHealth(o)
		last = fmt.Sprintf("log leader %s; /readyz %s=%d %s=%d; health %s=%+v %s=%+v", l.id, l.id, rl, o.id, ro, l.id, hl, o.id, ho)
		// The "ha" object of /healthcheck is checked when the binary has it (TestHAHealthcheck
		// requires it).
		if rl != http.StatusOK || ro != http.StatusServiceUnavailable || (hl != nil && hl.Role != "leader") || (ho != nil && ho.Role != "standby") {
			return false
		}
		got = l
		return true
	})
	if !ok {
		t.Fatalf("no single leader within %s: %s", timeout, last)
	}
	return got
}

// ---------------------------------------------------------------------------------------------
// Requests and their results.

// haClient's timeout is short so a client fails over from a stopped (SIGSTOP) or blackholed
// instance quickly; every request is idempotent (a repeat of one signing root is allowed).
var haClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 128, IdleConnTimeout: 30 * time.Second},
}

// signTarget is where requests go: an instance or the load balancer.
type signTarget struct {
	name string
	url  string
}

type attemptResult struct {
	target string
	status int // 0: transport error
	err    string
	body   []byte
}

// retryable: the instance is not the leader (503), is gone or unreachable (transport error), did
// not get the request in time (408), or the load balancer had no backend (502, 504).
func (a attemptResult) retryable() bool {
	switch a.status {
	case 0, http.StatusRequestTimeout, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// haPost sends one sign request for m to tg.
func haPost(ctx context.Context, tg signTarget, pub keystore.PublicKey, m *signMsg) attemptResult {
	js, err := json.Marshal(m.body)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.url+"/api/v1/eth2/sign/"+pub.String(), bytes.NewReader(js))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := haClient.Do(req)
	if err != nil {
		return attemptResult{target: tg.name, err: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return attemptResult{target: tg.name, err: err.Error()}
	}
	return attemptResult{target: tg.name, status: resp.StatusCode, body: b}
}

// signResult is the outcome of one logical request (all its attempts).
type signResult struct {
	msg      *signMsg
	target   string // who answered last
	status   int    // final status (0: gave up on transport errors)
	sig      keystore.Signature
	sigErr   string    // a 200 whose body is not a signature
	sent     time.Time // when the last attempt was sent
	at       time.Time // when its answer came
	attempts int
	stopped  bool // abandoned because the load stopped (not for want of a signer)
	refusal  bool // sent to an instance that must refuse it (a standby, a deposed leader)
}

// signRecorder keeps every result and wakes waiters on each.
type signRecorder struct {
	mu       sync.Mutex
	results  []signResult
	attempts map[string]map[int]int // target → status → count (0: transport error)
	changed  chan struct{}
	lastNon  map[string]string // target → last non-200 body (diagnostics)
}

func newSignRecorder() *signRecorder {
	return &signRecorder{attempts: map[string]map[int]int{}, changed: make(chan struct{}), lastNon: map[string]string{}}
}

func (r *signRecorder) attempt(a attemptResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.attempts[a.target]
	if m == nil {
		m = map[int]int{}
		r.attempts[a.target] = m
	}
	m[a.status]++
	if a.status != http.StatusOK {
		if a.status == 0 {
			r.lastNon[a.target] = a.err
		} else {
			r.lastNon[a.target] = fmt.Sprintf("%d %s", a.status, truncateBody(a.body))
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *signRecorder) add(res signResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *signRecorder) snapshot() ([]signResult, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.results), r.changed
}

// waitOK waits for a 200 answered by one of targets (any target when none is given) to a
// request sent at or after since; it returns the time of the answer.
func (r *signRecorder) waitOK(since time.Time, timeout time.Duration, targets ...string) (time.Time, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		r.mu.Lock()
		res, ch := r.results, r.changed
		var found time.Time
		for _, x := range res[seen:] {
			if x.status == http.StatusOK && !x.sent.Before(since) && (len(targets) == 0 || slices.Contains(targets, x.target)) {
				if found.IsZero() || x.at.Before(found) {
					found = x.at
				}
			}
		}
		seen = len(res)
		r.mu.Unlock()
		if !found.IsZero() {
			return found, true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return time.Time{}, false
		}
	}
}

// waitAttemptFailure waits for an attempt that failed for want of a signer (a retryable answer:
// 503, a transport error...) after since, on any target.
func (r *signRecorder) waitAttemptFailure(since time.Time, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	r.mu.Lock()
	base := 0
	for _, m := range r.attempts {
		for st, c := range m {
			if (attemptResult{status: st}).retryable() {
				base += c
			}
		}
	}
	r.mu.Unlock()
	for {
		r.mu.Lock()
		n := 0
		for _, m := range r.attempts {
			for st, c := range m {
				if (attemptResult{status: st}).retryable() {
					n += c
				}
			}
		}
		ch := r.changed
		r.mu.Unlock()
		if n > base {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// send runs one logical request: targets in order starting at first; a retryable answer moves
// on to the next; after a full round of retryable answers it waits one tick (the instances are
// mid-takeover: only asking again tells when it is over) and starts over, until budget runs out
// or stop closes.
func (p *haPair) send(targets []signTarget, first int, m *signMsg, budget time.Duration, stop <-chan struct{}) signResult {
	pub := p.keys.pubs[m.Key]
	deadline := time.Now().Add(budget)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	res := signResult{msg: m}
	for {
		for i := range targets {
			tg := targets[(first+i)%len(targets)]
			res.sent = time.Now()
			a := haPost(context.Background(), tg, pub, m)
			p.rec.attempt(a)
			res.attempts++
			res.target, res.status, res.at = a.target, a.status, time.Now()
			if a.retryable() {
				continue
			}
			if a.status == http.StatusOK {
				var v struct {
					Signature string `json:"signature"`
				}
				if err := json.Unmarshal(a.body, &v); err != nil || len(v.Signature) != 2+192 {
					res.sigErr = fmt.Sprintf("200 without a signature: %s", truncateBody(a.body))
				} else if b, err := haDecodeHex(v.Signature); err != nil || len(b) != 96 {
					res.sigErr = fmt.Sprintf("200 with a bad signature %q", v.Signature)
				} else {
					copy(res.sig[:], b)
				}
			}
			p.rec.add(res)
			return res
		}
		if time.Now().After(deadline) {
			p.rec.add(res)
			return res
		}
		select {
		case <-tick.C:
		case <-stop:
			res.stopped = true
			p.rec.add(res)
			return res
		}
	}
}

func haDecodeHex(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") {
		return nil, errors.New("no 0x")
	}
	return hex.DecodeString(s[2:])
}

// ---------------------------------------------------------------------------------------------
// The takeover probe.

// probe sends fresh attestations of the probe key to n alone until one is signed, and returns
// the time of that 200. Polled every 20 ms: the moment an instance starts signing is observable
// only by a request (the transition log line is written by the instance, not seen by clients).
func (p *haPair) probe(t testing.TB, n *haNode, timeout time.Duration) (time.Time, bool) {
	t.Helper()
	return p.probeTarget(t, signTarget{n.id, n.url}, timeout)
}

// probeTarget is probe through any target (the load balancer).
func (p *haPair) probeTarget(t testing.TB, tg signTarget, timeout time.Duration) (time.Time, bool) {
	t.Helper()
	fresh := func() *signMsg {
		e := chaosBaseEpoch + 10 + phase0.Epoch(p.probeN.Add(1))
		return chaosAttestation(chaosProbeKey, e-1, e, 0, "probe")
	}
	m := fresh()
	var at time.Time
	ok := haPollEvery(20*time.Millisecond, timeout, func() bool {
		sent := time.Now()
		a := haPost(context.Background(), tg, p.keys.pubs[chaosProbeKey], m)
		p.rec.attempt(a)
		if a.status == http.StatusPreconditionFailed {
			// A concurrent probe signed a later epoch first: try a fresh, later one.
			p.rec.add(signResult{msg: m, target: tg.name, status: a.status, sent: sent, at: time.Now(), attempts: 1})
			m = fresh()
			return false
		}
		if a.status != http.StatusOK {
			return false
		}
		at = time.Now()
		res := signResult{msg: m, target: tg.name, status: 200, sent: sent, at: at, attempts: 1}
		var v struct {
			Signature string `json:"signature"`
		}
		if err := json.Unmarshal(a.body, &v); err == nil {
			if b, err := haDecodeHex(v.Signature); err == nil && len(b) == 96 {
				copy(res.sig[:], b)
			}
		}
		p.rec.add(res)
		return true
	})
	return at, ok
}

// probeRefused sends one fresh probe attestation to n and returns the attempt: a deposed or
// standby instance must answer it without a signature.
func (p *haPair) probeRefused(n *haNode) attemptResult {
	e := chaosBaseEpoch + 10 + phase0.Epoch(p.probeN.Add(1))
	m := chaosAttestation(chaosProbeKey, e-1, e, 0, "probe")
	sent := time.Now()
	a := haPost(context.Background(), signTarget{n.id, n.url}, p.keys.pubs[chaosProbeKey], m)
	p.rec.attempt(a)
	res := signResult{msg: m, target: n.id, status: a.status, sent: sent, at: time.Now(), attempts: 1, refusal: true}
	if a.status == http.StatusOK {
		var v struct {
			Signature string `json:"signature"`
		}
		if err := json.Unmarshal(a.body, &v); err == nil {
			if b, err := haDecodeHex(v.Signature); err == nil && len(b) == 96 {
				copy(res.sig[:], b)
			}
		}
	}
	p.rec.add(res)
	return a
}

// slowClient waits long: for requests queued at an instance that is stopped or cut off, whose
// answer comes only once it runs again.
var slowClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// sendQueued sends k fresh probe attestations to n at once, each on its own connection, and
// delivers all their answers when the last has come. Sent to a stopped process, they wait in
// its listen backlog and are read when it continues: what a deposed leader does with requests
// that arrived while it could not know it was deposed.
func (p *haPair) sendQueued(n *haNode, k int) <-chan []attemptResult {
	out := make(chan []attemptResult, 1)
	res := make([]attemptResult, k)
	var wg sync.WaitGroup
	for i := range k {
		e := chaosBaseEpoch + 10 + phase0.Epoch(p.probeN.Add(1))
		m := chaosAttestation(chaosProbeKey, e-1, e, 0, "probe")
		wg.Add(1)
		go func() {
			defer wg.Done()
			js, _ := json.Marshal(m.body)
			req, _ := http.NewRequest(http.MethodPost, n.url+"/api/v1/eth2/sign/"+p.keys.pubs[chaosProbeKey].String(), bytes.NewReader(js))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			sent := time.Now()
			a := attemptResult{target: n.id}
			if resp, err := slowClient.Do(req); err != nil {
				a.err = err.Error()
			} else {
				a.body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				a.status = resp.StatusCode
			}
			p.rec.attempt(a)
			r := signResult{msg: m, target: n.id, status: a.status, sent: sent, at: time.Now(), attempts: 1, refusal: true}
			if a.status == http.StatusOK {
				var v struct {
					Signature string `json:"signature"`
				}
				if json.Unmarshal(a.body, &v) == nil {
					if b, err := haDecodeHex(v.Signature); err == nil && len(b) == 96 {
						copy(r.sig[:], b)
					}
				}
			}
			p.rec.add(r)
			res[i] = a
		}()
	}
	go func() { wg.Wait(); out <- res }()
	return out
}

// ---------------------------------------------------------------------------------------------
// The load.

// loadGen drives every load key in rounds: round r signs, concurrently and each through its own
// target, an honest attestation (e-1 → e), a double vote at e, every third round a surround
// vote (e-3 → e+1), an honest block at slot e·32+k and a double proposal at that slot. Which of
// the conflicting ones wins is the database's choice; the checker proves only one did.
type loadGen struct {
	p       *haPair
	targets []signTarget
	pace    time.Duration
	stop    chan struct{}
	wg      sync.WaitGroup
	rounds  atomic.Int64
}

func (p *haPair) startLoad(targets []signTarget, pace time.Duration) *loadGen {
	g := &loadGen{p: p, targets: targets, pace: pace, stop: make(chan struct{})}
	for ki, k := range p.loadKeys {
		g.wg.Add(1)
		go g.run(ki, k)
	}
	return g
}

// Stop ends the load and waits for the requests in flight; safe twice.
func (g *loadGen) Stop() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
}

func (g *loadGen) run(ki int, k uint64) {
	defer g.wg.Done()
	tick := time.NewTicker(g.pace)
	defer tick.Stop()
	n := len(g.targets)
	for r := 0; ; r++ {
		select {
		case <-g.stop:
			return
		default:
		}
		e := chaosBaseEpoch + 10 + phase0.Epoch(r)
		slot := phase0.Slot(e)*chaosSlotsInEpoch + phase0.Slot(k%32)
		type job struct {
			m     *signMsg
			first int
		}
		jobs := []job{
			{chaosAttestation(k, e-1, e, 0, "honest"), (r + ki) % n},
			{chaosAttestation(k, e-1, e, 1, "double-vote"), (r + ki + 1) % n},
			{chaosBlock(k, slot, 0, "honest"), (r + ki + 1) % n},
			{chaosBlock(k, slot, 1, "double-proposal"), (r + ki) % n},
		}
		if r%3 == 2 {
			jobs = append(jobs, job{chaosAttestation(k, e-3, e+1, 2, "surround"), (r + ki + 2) % n})
		}
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.p.send(g.targets, j.first, j.m, 30*time.Second, g.stop)
			}()
		}
		wg.Wait()
		g.rounds.Add(1)
		select {
		case <-g.stop:
			return
		case <-tick.C:
		}
	}
}

// nodeTargets are the two instances as load targets.
func (p *haPair) nodeTargets() []signTarget {
	var out []signTarget
	for _, n := range p.nodes {
		out = append(out, signTarget{n.id, n.url})
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Healing and the end of a run.

// heal ends every fault (unblocks the proxies, continues stopped processes, restarts exited
// ones) and waits until the pair has one leader again.
func (p *haPair) heal(t testing.TB) {
	t.Helper()
	for _, n := range p.nodes {
		n.proxy.Unblock()
		if n.stopped && n.running() {
			n.signal(t, syscall.SIGCONT)
		}
		n.stopped = false
	}
	for _, n := range p.nodes {
		if n.running() {
			continue
		}
		o, ok := p.restartNode(t, n)
		if !ok {
			t.Fatalf("%s does not start again (%d starts in %s): %s", n.id, o.starts, o.took.Round(time.Millisecond), o.out)
		}
	}
	if p.ha {
		p.waitOneLeader(t, 3*p.lease+20*time.Second)
	}
}

// finish stops the load, heals the pair and runs the checker over everything returned.
func (p *haPair) finish(t testing.TB, load *loadGen, targets []signTarget) checkStats {
	t.Helper()
	if load != nil {
		load.Stop()
	}
	p.heal(t)
	msgs, st := p.checkSignatures(t)
	t.Logf("load: %s", st)
	t.Logf("attempts: %s", p.rec.attemptSummary())
	p.checkDurable(t, msgs, targets)
	if st.oks == 0 {
		t.Errorf("nothing was signed")
	}
	for k, n := range st.byStatus {
		if strings.HasPrefix(k, "gave-up-after-30s") {
			t.Errorf("availability: %d requests found no instance to sign or refuse them for 30s (%s)", n, k)
		}
	}
	return st
}

// waitLoad waits until the load has had n signatures since since (an event of the signRecorder).
func (p *haPair) waitLoad(t testing.TB, n int, since time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := 0; i < n; i++ {
		at, ok := p.rec.waitOK(since, time.Until(deadline))
		if !ok {
			t.Fatalf("the load had %d of %d signatures within %s of %s; attempts: %s", i, n, timeout, since.Format(time.StampMilli), p.rec.attemptSummary())
		}
		since = at.Add(time.Nanosecond)
	}
}

// ---------------------------------------------------------------------------------------------
// Numbers.

func haPercentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func haFmtDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}

// attemptSummary is "target: status×count ..." of every attempt so far.
func (r *signRecorder) attemptSummary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var targets []string
	for tg := range r.attempts {
		targets = append(targets, tg)
	}
	sort.Strings(targets)
	var b strings.Builder
	for _, tg := range targets {
		var sts []int
		for st := range r.attempts[tg] {
			sts = append(sts, st)
		}
		sort.Ints(sts)
		fmt.Fprintf(&b, "%s:", tg)
		for _, st := range sts {
			name := strconv.Itoa(st)
			if st == 0 {
				name = "conn-error"
			}
			fmt.Fprintf(&b, " %s×%d", name, r.attempts[tg][st])
		}
		if last := r.lastNon[tg]; last != "" {
			fmt.Fprintf(&b, " (last non-200: %s)", strings.TrimSpace(last))
		}
		b.WriteString("; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

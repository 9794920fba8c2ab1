package main

// TestChaos: the HA pair, Postgres and HAProxy under a load of honest and conflicting signing
// requests (double votes, surround votes, double proposals) for 16 keys, sent straight to each
// instance and through HAProxy, while a fault injector with a logged seed kills (-9) and
// restarts instances, stops and continues them, sends SIGTERM, restarts Postgres, cuts and
// blackholes instances' database connections. The independent checker then proves from the
// requests and the returned signatures alone that nothing slashable was signed and that every
// signature is durably recorded.
//
//	VIGIL_CHAOS_DURATION  how long faults are injected (default 60s; make chaos DURATION=10m)
//	VIGIL_CHAOS_SEED      the fault injector's seed (default: the clock; always logged)
//
// Without haproxy the test skips (fails under VIGIL_REQUIRE_EXTERNAL=1). Without HA in the
// binary yet it runs the same faults against two plain instances on one database.

import (
	"fmt"
	"math/rand"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

type chaosFault string

const (
	faultKill      chaosFault = "kill-9"
	faultStop      chaosFault = "sigstop"
	faultTerm      chaosFault = "sigterm"
	faultPGRestart chaosFault = "postgres-restart"
	faultCut       chaosFault = "cut-db-conns"
	faultBlackhole chaosFault = "blackhole-db"
)

var chaosFaults = []chaosFault{faultKill, faultStop, faultTerm, faultPGRestart, faultCut, faultBlackhole}

type chaosRun struct {
	p         *haPair
	rng       *rand.Rand
	faults    map[chaosFault]int
	takeovers map[chaosFault][]time.Duration // leader faults: until the other instance signed
	recovery  map[chaosFault][]time.Duration // every fault: until the load signed again
	grace     time.Duration
	errors    int
}

func chaosDuration(t testing.TB) time.Duration {
	s := os.Getenv("VIGIL_CHAOS_DURATION")
	if s == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("VIGIL_CHAOS_DURATION=%q: want a positive duration like 60s or 10m", s)
	}
	return d
}

func chaosSeed(t testing.TB) int64 {
	if s := os.Getenv("VIGIL_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("VIGIL_CHAOS_SEED=%q: %v", s, err)
		}
		return n
	}
	return time.Now().UnixNano()
}

func TestChaos(t *testing.T) {
	haproxyBin(t) // skip (or fail when required) before building anything
	dur, seed := chaosDuration(t), chaosSeed(t)
	t.Logf("chaos: duration %s, seed %d (VIGIL_CHAOS_SEED=%d replays the same choices of faults and victims, as far as timing allows)", dur, seed, seed)
	const grace = 3 * time.Second
	p := newHAPair(t, haPairOptions{keys: 16, extraArgs: []string{"--shutdown-grace", grace.String(), "--log-level", "info"}})
	hp := startHAProxy(t, p)
	targets := append(p.nodeTargets(), hp.target())
	if _, ok := p.probeTarget(t, hp.target(), 3*p.lease+10*time.Second); !ok {
		t.Fatalf("nothing signed through haproxy")
	}
	load := p.startLoad(targets, 100*time.Millisecond)
	defer load.Stop()

	c := &chaosRun{p: p, rng: rand.New(rand.NewSource(seed)), faults: map[chaosFault]int{},
		takeovers: map[chaosFault][]time.Duration{}, recovery: map[chaosFault][]time.Duration{}, grace: grace}
	p.waitLoad(t, 20, time.Now(), 30*time.Second)
	end := time.Now().Add(dur)
	n := 0
	for time.Now().Before(end) && c.errors == 0 {
		f := chaosFaults[c.rng.Intn(len(chaosFaults))]
		n++
		c.inject(t, n, f)
		if c.errors > 0 {
			break
		}
		p.heal(t)
		p.waitLoad(t, 10, time.Now(), 60*time.Second)
	}
	total := 0
	var kinds []string
	for f, k := range c.faults {
		total += k
		kinds = append(kinds, string(f)+"×"+strconv.Itoa(k))
	}
	sort.Strings(kinds)
	t.Logf("chaos: %d faults in %s (ha=%v, lease %s): %s; load rounds %d", total, dur, p.ha, p.lease, strings.Join(kinds, " "), load.rounds.Load())
	for _, f := range chaosFaults {
		if ds := c.takeovers[f]; len(ds) > 0 {
			t.Logf("chaos: takeover after %s of the leader (n=%d): p50 %s, p99 %s, max %s", f, len(ds), haPercentile(ds, 0.5).Round(time.Millisecond), haPercentile(ds, 0.99).Round(time.Millisecond), haPercentile(ds, 1).Round(time.Millisecond))
		}
		if ds := c.recovery[f]; len(ds) > 0 {
			t.Logf("chaos: load signing again after %s (n=%d): p50 %s, max %s", f, len(ds), haPercentile(ds, 0.5).Round(time.Millisecond), haPercentile(ds, 1).Round(time.Millisecond))
		}
	}
	var all []time.Duration
	for _, ds := range c.takeovers {
		all = append(all, ds...)
	}
	if len(all) > 0 {
		t.Logf("chaos: all takeovers (n=%d): p50 %s, p99 %s", len(all), haPercentile(all, 0.5).Round(time.Millisecond), haPercentile(all, 0.99).Round(time.Millisecond))
	}
	if dur >= 60*time.Second && total < 10 && c.errors == 0 {
		t.Errorf("only %d faults in %s, want ≥ 10", total, dur)
	}
	p.finish(t, load, p.nodeTargets())
}

// victim picks the instance a fault hits: mostly the leader when the pair has one (three times
// in four), else either.
func (c *chaosRun) victim() (*haNode, bool) {
	if l := c.p.leader(); l != nil {
		if c.rng.Intn(4) > 0 {
			return l, true
		}
		return c.p.other(l), false
	}
	return c.p.nodes[c.rng.Intn(2)], false
}

func (c *chaosRun) failf(t testing.TB, format string, args ...any) {
	t.Helper()
	c.errors++
	t.Errorf(format, args...)
}

// inject applies one fault, waits for its effect (the other instance signs, the process
// exits, a request fails) and ends it; heal afterwards restarts whatever is down.
func (c *chaosRun) inject(t testing.TB, n int, f chaosFault) {
	t.Helper()
	p := c.p
	v, isLeader := c.victim()
	o := p.other(v)
	bound := 3*p.lease + 10*time.Second
	vAfter := len(v.transitions())
	c.faults[f]++
	t0 := time.Now()
	t.Logf("fault %d at %s: %s on %s (leader: %v)", n, t0.Format("15:04:05.000"), f, v.id, isLeader)

	takeover := func() bool {
		at, ok := p.probe(t, o, bound)
		if !ok {
			c.failf(t, "fault %d %s on %s: %s did not sign within %s; %s stderr:\n%s", n, f, v.id, o.id, bound, o.id, haTailLines(o.v.Stderr.String(), 30))
			return false
		}
		if isLeader {
			c.takeovers[f] = append(c.takeovers[f], at.Sub(t0))
		}
		t.Logf("fault %d: %s signed %s after %s", n, o.id, at.Sub(t0).Round(time.Millisecond), f)
		return true
	}
	deposed := func() {
		if !p.ha || !isLeader {
			return
		}
		if a := p.probeRefused(v); a.status == 200 {
			c.failf(t, "fault %d %s: the deposed leader %s SIGNED: %s", n, f, v.id, truncateBody(a.body))
		}
		if _, ok := haWaitOut(v.v.Stderr, bound, func(s string) bool {
			trs := haParseTransitions(s)
			return len(trs) > vAfter && trs[len(trs)-1].To == "standby"
		}); !ok {
			c.failf(t, "fault %d %s: the old leader %s did not log to=standby within %s", n, f, v.id, bound)
		}
	}

	switch f {
	case faultKill:
		v.v.kill()
		takeover()
	case faultStop:
		v.signal(t, syscall.SIGSTOP)
		v.stopped = true
		ok := takeover()
		v.signal(t, syscall.SIGCONT)
		v.stopped = false
		if ok {
			deposed()
		}
	case faultTerm:
		v.signal(t, syscall.SIGTERM)
		takeover()
		select {
		case <-v.v.exited:
		case <-time.After(c.grace + 10*time.Second):
			c.failf(t, "fault %d: %s did not exit within %s of SIGTERM", n, v.id, c.grace+10*time.Second)
		}
	case faultPGRestart:
		pgtest.Stop(t)
		if !p.rec.waitAttemptFailure(t0, 5*time.Second) {
			t.Logf("fault %d: no request failed while Postgres was down", n)
		}
		pgtest.Start(t)
	case faultCut:
		k := v.proxy.Cut()
		t.Logf("fault %d: cut %d connections of %s", n, k, v.id)
	case faultBlackhole:
		v.proxy.Blackhole()
		ok := takeover()
		v.proxy.Unblock()
		if ok {
			deposed()
		}
	}
	at, ok := p.rec.waitOK(t0, 3*p.lease+30*time.Second)
	if !ok {
		c.failf(t, "fault %d %s: the load signed nothing within %s; attempts: %s", n, f, 3*p.lease+30*time.Second, p.rec.attemptSummary())
		return
	}
	c.recovery[f] = append(c.recovery[f], at.Sub(t0))
}

// TestChaosTCPProxy: the fault proxy forwards, holds everything while blackholed without
// closing (the data arrives after Unblock), and Cut closes the open connections.
func TestChaosTCPProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	px := newTCPProxy(t, echo.Addr().String())
	c, err := net.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(msg string, within time.Duration) (string, error) {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(within))
		buf := make([]byte, len(msg))
		n := 0
		for n < len(buf) {
			k, err := c.Read(buf[n:])
			n += k
			if err != nil {
				return string(buf[:n]), err
			}
		}
		return string(buf), nil
	}
	if got, err := roundTrip("hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("forwarding: %q %v", got, err)
	}
	px.Blackhole()
	got, err := roundTrip("held", 300*time.Millisecond)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() || got != "" {
		t.Fatalf("blackholed: want a read timeout and nothing, got %q %v", got, err)
	}
	if px.Conns() != 1 {
		t.Fatalf("blackholed: %d connections, want the one still open", px.Conns())
	}
	px.Unblock()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := readFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after Unblock: %q %v, want the held data", buf, err)
	}
	if k := px.Cut(); k != 1 {
		t.Fatalf("Cut closed %d connections, want 1", k)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("read after Cut succeeded, want the connection closed")
	}
	// New connections still work after a Cut.
	c2, err := net.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c = c2
	if got, err := roundTrip("again", 5*time.Second); err != nil || got != "again" {
		t.Fatalf("after Cut: %q %v", got, err)
	}
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestChaosSlashableRules: the checker's EIP-3076 rules, against hand-made pairs.
func TestChaosSlashableRules(t *testing.T) {
	att := func(s, tg uint64, v byte) *signMsg {
		return chaosAttestation(1, chaosBaseEpoch+phase0.Epoch(s), chaosBaseEpoch+phase0.Epoch(tg), v, "")
	}
	blk := func(slot uint64, v byte) *signMsg { return chaosBlock(1, phase0.Slot(slot), v, "") }
	rows := []struct {
		name string
		a, b *signMsg
		want string // "" when not slashable
	}{
		{"identical attestation", att(1, 2, 0), att(1, 2, 0), ""},
		{"double vote", att(1, 2, 0), att(1, 2, 1), "double vote"},
		{"double vote, other source", att(0, 2, 0), att(1, 2, 0), "double vote"},
		{"a surrounds b", att(1, 5, 0), att(2, 4, 0), "surround vote"},
		{"b surrounds a", att(2, 4, 0), att(1, 5, 0), "surround vote"},
		{"consecutive", att(1, 2, 0), att(2, 3, 0), ""},
		{"same source, later target", att(1, 2, 0), att(1, 3, 0), ""},
		{"touching source", att(1, 3, 0), att(1, 2, 0), ""},
		{"identical block", blk(100, 0), blk(100, 0), ""},
		{"double proposal", blk(100, 0), blk(100, 1), "double proposal"},
		{"other slot", blk(100, 0), blk(101, 1), ""},
		{"other key", att(1, 2, 0), chaosAttestation(2, chaosBaseEpoch+1, chaosBaseEpoch+2, 1, ""), ""},
		{"block and attestation", blk(100, 0), att(1, 2, 0), ""},
	}
	for _, r := range rows {
		got, why := chaosSlashable(r.a, r.b)
		if got != (r.want != "") || why != r.want {
			t.Errorf("%s: slashable %v (%q), want %q", r.name, got, why, r.want)
		}
	}
	if m := att(1, 2, 0); m.conflicting().root == m.root {
		t.Error("conflicting() has the same signing root")
	} else if ok, _ := chaosSlashable(m, m.conflicting()); !ok {
		t.Error("conflicting() of an attestation is not slashable with it")
	}
	if m := blk(7, 0); func() bool { ok, _ := chaosSlashable(m, m.conflicting()); return !ok }() {
		t.Error("conflicting() of a block is not slashable with it")
	}
}

// errorRecorder is a testing.TB that records Errorf instead of failing (to test the checker).
type errorRecorder struct {
	testing.TB
	errs []string
}

func (e *errorRecorder) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}
func (e *errorRecorder) Logf(string, ...any) {}
func (e *errorRecorder) Helper()             {}

// TestChaosCheckerCatchesViolations: the checker is not vacuous. Fed returned signatures that
// include a double vote, a surround vote, a double proposal and a bad signature, it reports each.
func TestChaosCheckerCatchesViolations(t *testing.T) {
	p := &haPair{rec: newSignRecorder(), keys: &chaosKeys{pubs: map[uint64]keystore.PublicKey{}}}
	sk, err := keystore.InteropSecretKey(3)
	if err != nil {
		t.Fatal(err)
	}
	p.keys.pubs[3] = sk.PublicKey()
	ok := func(m *signMsg) { p.rec.add(signResult{msg: m, status: 200, sig: sk.SignRoot(m.root), target: "x"}) }
	e := chaosBaseEpoch
	ok(chaosAttestation(3, e, e+1, 0, "honest"))
	ok(chaosAttestation(3, e+1, e+2, 0, "honest"))
	ok(chaosAttestation(3, e+3, e+4, 0, "honest"))
	ok(chaosBlock(3, 1000, 0, "honest"))
	ok(chaosBlock(3, 1001, 0, "honest"))
	ok(chaosAttestation(3, e+3, e+4, 0, "honest")) // an identical repeat: fine
	rec := &errorRecorder{TB: t}
	if _, st := p.checkSignatures(rec); len(rec.errs) != 0 || st.conflicts != 0 || st.distinct != 5 {
		t.Fatalf("clean history: %d distinct, %d conflicts, errors %q", st.distinct, st.conflicts, rec.errs)
	}

	ok(chaosAttestation(3, e+1, e+2, 1, "double-vote"))
	ok(chaosAttestation(3, e+2, e+5, 0, "surround")) // surrounds e+3 → e+4
	ok(chaosBlock(3, 1000, 1, "double-proposal"))
	bad := chaosAttestation(3, e+9, e+10, 0, "honest")
	p.rec.add(signResult{msg: bad, status: 200, sig: sk.SignRoot(chaosRoot(1, 2, 3, 4)), target: "x"})
	rec = &errorRecorder{TB: t}
	_, st := p.checkSignatures(rec)
	joined := strings.Join(rec.errs, "\n")
	for _, want := range []string{"double vote", "surround vote", "double proposal", "does not verify"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the checker did not report a %s; it said:\n%s", want, joined)
		}
	}
	if st.conflicts != 3 {
		t.Errorf("%d conflicts, want 3:\n%s", st.conflicts, joined)
	}
}

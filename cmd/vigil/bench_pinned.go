package main

// `vigil bench --server-cpus S --load-cpus L`: the signer's own cost. The server runs as its own
// `vigil serve` process pinned to CPUs S (taskset), the load generator (this process, re-run
// under taskset) and the database on CPUs L, so the figures isolate what the signer spends per
// signature: server CPU per signature from /proc/<pid>/stat, against raw BLS measured on the
// same CPUs in the same run; core utilisation; latency percentiles; fsyncs per signature (the
// SQLite store's commits, Postgres's pg_stat_wal.wal_sync).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// envBenchPinned marks the load generator re-run under taskset.
const envBenchPinned = "VIGIL_BENCH_LOAD_PINNED"

// pinnedOptions are the flags of the pinned mode.
type pinnedOptions struct {
	serverCPUs, loadCPUs string
	clients, rounds      int
	step                 time.Duration
	pgURL                string
	cpuProfile           string  // the servers' CPU profiles: <cpuProfile>.<target>
	burst                int     // also measure a burst of this many attestations for as many keys
	overload             float64 // also offer this multiple of the measured capacity, open loop
	sharedData           bool    // all keys sign the same data at an epoch
}

// benchPinnedEntry re-runs this process under `taskset -c L` (the load generator's CPUs) unless it
// already is, then runs the pinned benchmark.
func benchPinnedEntry(ctx context.Context, o pinnedOptions, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv(envBenchPinned) != "1" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", o.loadCPUs, self, "bench"}, args...)...)
		cmd.Env = append(os.Environ(), envBenchPinned+"=1")
		// On cancel, let the pinned bench stop its servers (SIGTERM) before it is killed.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 15 * time.Second
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("pinned bench exited with %d", ee.ExitCode())
			}
			return fmt.Errorf("taskset (util-linux) is needed for --server-cpus/--load-cpus: %w", err)
		}
		return nil
	}
	return benchPinned(ctx, o, stdout, stderr)
}

// pinnedTarget is one store configuration of the pinned mode, accumulated over the rounds.
type pinnedTarget struct {
	benchPhase
	name    string
	args    []string
	srv     *benchServer
	syncs   int64 // fsyncs (SQLite commits / Postgres WAL syncs); -1 unknown
	syncsOf func() int64
}

func benchPinned(ctx context.Context, o pinnedOptions, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "vigil bench (pinned): server on CPUs %s, load generator and database on CPUs %s; %d rounds of %s, %d HTTP clients\n",
		o.serverCPUs, o.loadCPUs, o.rounds, o.step, o.clients)
	targets := []*pinnedTarget{{name: "SQLite"}}
	if o.pgURL != "" {
		targets = append(targets, &pinnedTarget{name: "Postgres", args: []string{"--slashing-protection-db-url", o.pgURL}})
	}
	for _, t := range targets {
		if o.overload > 0 {
			// Open loop: a request waiting in the server's queue (up to --max-queue-delay) holds
			// its connection, so the shedding is admission's, not the connection cap's.
			t.args = append(t.args, "--http-max-connections", strconv.Itoa(overloadConns))
		}
		if o.cpuProfile != "" {
			t.args = append(t.args, "--cpu-profile", o.cpuProfile+"."+strings.ToLower(t.name))
		}
		srv, err := startPinnedServer(ctx, o.serverCPUs, o.clients, t.args, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		srv.sharedData = o.sharedData
		defer srv.close()
		t.srv = srv
		if t.name == "SQLite" {
			t.syncsOf = func() int64 { return srv.metric("vigil_slashing_db_commits_total") }
		} else {
			t.syncsOf = func() int64 { return pgWALSyncs(ctx, o.pgURL) }
		}
	}
	var raw benchPhase
	for i := range o.rounds {
		n, d, cpu, err := pinnedRaw(ctx, o.serverCPUs, o.step)
		if err != nil {
			return fmt.Errorf("raw BLS: %w", err)
		}
		raw.add(n, d, cpu, nil)
		line := fmt.Sprintf("  round %d: raw %6.0f/s", i+1, float64(n)/d.Seconds())
		for _, t := range targets {
			c0, s0 := procCPU(t.srv.pid), t.syncsOf()
			n, d, lat, err := t.srv.run(ctx, o.step)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			c1, s1 := procCPU(t.srv.pid), t.syncsOf()
			t.add(n, d, c1-c0, lat)
			if s0 < 0 || s1 < 0 || t.syncs < 0 {
				t.syncs = -1
			} else {
				t.syncs += s1 - s0
			}
			line += fmt.Sprintf("  %s %6.0f/s", t.name, float64(n)/d.Seconds())
		}
		fmt.Fprintln(stdout, line)
	}
	rawCPU := raw.cpuPer()
	fmt.Fprintf(stdout, "raw BLS sign, one core (CPUs %s): %.0f signatures/s, %.0f µs CPU each\n", o.serverCPUs, raw.rate(), rawCPU)
	for _, t := range targets {
		p50, p90, p99 := t.percentile(0.50), t.percentile(0.90), t.percentile(0.99)
		syncs := "n/a"
		if t.syncs >= 0 {
			syncs = fmt.Sprintf("%.3f", float64(t.syncs)/float64(t.n))
		}
		fmt.Fprintf(stdout, "%-8s %6.0f signatures/s  throughput/raw %.3f  server CPU %.0f µs/signature (÷ raw %.3f, %.0f µs not BLS)  core busy %.2f  latency p50 %s p90 %s p99 %s (p99/p50 %.1f)  fsyncs/signature %s\n",
			t.name+":", t.rate(), t.rate()/raw.rate(), t.cpuPer(), t.cpuPer()/rawCPU, t.cpuPer()-rawCPU,
			t.cpu.Seconds()/t.d.Seconds(), p50, p90, p99, float64(p99)/float64(max(p50, 1)), syncs)
	}
	if o.overload > 0 {
		for _, t := range targets {
			capacity := t.rate()
			r, err := t.srv.openLoop(ctx, o.overload*capacity, max(o.step, 3*time.Second))
			if err != nil {
				return fmt.Errorf("%s overload: %w", t.name, err)
			}
			ok := benchPhase{lat: r.okLat}
			shed := benchPhase{lat: r.shedLat}
			good := float64(len(r.okLat)) / r.total.Seconds()
			fmt.Fprintf(stdout, "%-8s overload %.1f× capacity (%.0f/s offered for %s, last answer after %s): goodput %.0f/s = %.2f × capacity (goal ≥ 0.9); 503 %d (p99 %s, goal: at once), other failures %d; p50/p99 of the signed %s / %s\n",
				t.name+":", o.overload, o.overload*capacity, r.d.Round(time.Millisecond), r.total.Round(time.Millisecond), good, good/capacity,
				len(r.shedLat), shed.percentile(0.99), r.failed, ok.percentile(0.5), ok.percentile(0.99))
			fmt.Fprintf(stdout, "           server core busy %.2f, load generator core busy %.2f\n",
				r.serverCPU.Seconds()/r.total.Seconds(), r.loadCPU.Seconds()/r.total.Seconds())
			for msg, n := range r.shedBy {
				fmt.Fprintf(stdout, "           503 %q: %d\n", msg, n)
			}
		}
	}
	if o.burst > 0 {
		ideal := time.Duration(float64(o.burst) / raw.rate() * float64(time.Second))
		for _, t := range targets {
			args := t.args
			if o.cpuProfile != "" {
				args = args[:len(args)-2] // no profile of the burst server
			}
			lat, all, err := pinnedBurst(ctx, o.serverCPUs, o.burst, o.sharedData, args, stderr)
			if err != nil {
				return fmt.Errorf("%s burst: %w", t.name, err)
			}
			b := benchPhase{lat: lat}
			p99 := b.percentile(0.99)
			fmt.Fprintf(stdout, "%-8s burst of %d attestations for %d keys: all answered in %s, p50 %s p99 %s; p99 ÷ (%d / raw rate = %s) = %.2f (goal ≤ 1.3)\n",
				t.name+":", o.burst, o.burst, all.Round(time.Millisecond), b.percentile(0.5), p99, o.burst, ideal.Round(time.Millisecond), float64(p99)/float64(ideal))
		}
	}
	return nil
}

// pinnedBurst starts a pinned server with n keys, warms every connection and key up with one
// burst, then sends a second burst of n attestations (one per key, all at once) and returns the
// latencies and the time until the last answer.
func pinnedBurst(ctx context.Context, cpus string, n int, shared bool, args []string, stderr io.Writer) ([]time.Duration, time.Duration, error) {
	srv, err := startPinnedServer(ctx, cpus, n, args, stderr)
	if err != nil {
		return nil, 0, err
	}
	srv.sharedData = shared
	defer srv.close()
	srv.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}, Timeout: time.Minute}
	var lat []time.Duration
	var all time.Duration
	for round := range 2 {
		lats := make([]time.Duration, n)
		errs := make(chan error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := uint64(round + 1)
				body := benchAttestation(e, c, srv.sharedData)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.url+srv.pubs[c].String(), strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				<-start
				t0 := time.Now()
				resp, err := srv.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
					return
				}
				lats[c] = time.Since(t0)
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		all = time.Since(t0)
		close(errs)
		if err := <-errs; err != nil {
			return nil, 0, err
		}
		lat = lats
	}
	return lat, all, nil
}

// pinnedRaw signs for d on one goroutine in a child `vigil bench --raw-only` pinned to cpus and
// returns its count, elapsed time and CPU time.
func pinnedRaw(ctx context.Context, cpus string, d time.Duration) (int64, time.Duration, time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, 0, err
	}
	out, err := exec.CommandContext(ctx, "taskset", "-c", cpus, self, "bench", "--raw-only", "--duration", d.String(), "--rounds", "1").Output()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("raw child: %w", err)
	}
	var n, ns, cpuNS int64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "raw n=%d ns=%d cpu_ns=%d", &n, &ns, &cpuNS); err != nil {
		return 0, 0, 0, fmt.Errorf("raw child said %q: %w", out, err)
	}
	return n, time.Duration(ns), time.Duration(cpuNS), nil
}

// benchRawOnly is the child of pinnedRaw: one signing goroutine (the server's core is one core).
func benchRawOnly(ctx context.Context, d time.Duration, stdout io.Writer) error {
	c0 := processCPU()
	n, el, err := benchRaw(ctx, 1, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "raw n=%d ns=%d cpu_ns=%d\n", n, el.Nanoseconds(), (processCPU() - c0).Nanoseconds())
	return nil
}

// startPinnedServer runs `vigil serve` as a process pinned to cpus, with one key per client.
func startPinnedServer(ctx context.Context, cpus string, clients int, extra []string, stderr io.Writer) (*benchServer, error) {
	h, serveArgs, err := newBenchServer(clients) // bench.go
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		os.RemoveAll(h.dir)
		return nil, err
	}
	cmd := exec.Command("taskset", append(append([]string{"-c", cpus, self, "serve"}, serveArgs...), extra...)...)
	cmd.Stderr = stderr
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlives the bench
	if err := cmd.Start(); err != nil {
		os.RemoveAll(h.dir)
		return nil, fmt.Errorf("taskset (util-linux) is needed for --server-cpus: %w", err)
	}
	h.pid = cmd.Process.Pid // taskset execs vigil: the same process
	go func() { h.done <- cmd.Wait() }()
	h.stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	if err := h.connect(clients); err != nil {
		h.stop()
		<-h.done
		os.RemoveAll(h.dir)
		return nil, err
	}
	return h, nil
}

// procCPU is the CPU time (user + system) of process pid, from /proc/<pid>/stat (clock ticks of
// 10 ms: the windows are seconds long).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the file, counting from pid
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// metric reads one counter of the server's /metrics (-1 when absent).
func (h *benchServer) metric(name string) int64 {
	resp, err := h.client.Get(h.metricsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(f)
			}
		}
	}
	return -1
}

// pgWALSyncs is the server's count of WAL fsyncs (pg_stat_wal, PostgreSQL ≥ 14; -1 unknown).
func pgWALSyncs(ctx context.Context, url string) int64 {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, "SELECT wal_sync FROM pg_stat_wal").Scan(&n); err != nil {
		return -1
	}
	return n
}

// overloadConns is the connections of the open-loop phase (client pool and server cap): enough
// for every request of a full queue at 3× the capacity measured here.
const overloadConns = 4096

// openLoopResult is what an open-loop run saw.
type openLoopResult struct {
	okLat, shedLat []time.Duration // latencies of 200s and of 503s
	shedBy         map[string]int  // 503s by the start of their message
	failed         int             // other statuses and transport errors (refused, reset, timed out)
	d              time.Duration   // the offering window
	total          time.Duration   // until the last answer
	serverCPU      time.Duration   // the server's CPU time over total
	loadCPU        time.Duration   // the load generator's (this process's)
}

// openLoop offers rate requests per second for d, each on its own goroutine whatever the
// answers (open loop, as validator clients do at a slot), cycling over the server's keys with
// ever-increasing epochs, and waits for every answer.
func (h *benchServer) openLoop(ctx context.Context, rate float64, d time.Duration) (openLoopResult, error) {
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: overloadConns}, Timeout: 30 * time.Second}
	defer cl.CloseIdleConnections()
	var mu sync.Mutex
	res := openLoopResult{shedBy: map[string]int{}}
	var wg sync.WaitGroup
	next := make([]atomic.Uint64, len(h.pubs))
	for i := range next {
		next[i].Store(h.epochs[i] + 1000) // beyond every epoch the closed-loop rounds used
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start, server0, load0 := time.Now(), procCPU(h.pid), processCPU()
	sent := 0
	for now := start; now.Sub(start) < d && ctx.Err() == nil; now = <-tick.C {
		due := int(rate * now.Sub(start).Seconds())
		for ; sent < due; sent++ {
			k := sent % len(h.pubs)
			e := next[k].Add(1)
			body := benchAttestation(e, k, h.sharedData)
			url := h.url + h.pubs[k].String()
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := cl.Do(req)
				status, msg := 0, ""
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
					var e struct{ Message string }
					if json.Unmarshal(b, &e) == nil {
						msg = strings.Map(func(r rune) rune { // one category per cause, whatever the counts
							if r >= '0' && r <= '9' {
								return -1
							}
							return r
						}, e.Message)
					}
				}
				lat := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				switch status {
				case http.StatusOK:
					res.okLat = append(res.okLat, lat)
				case http.StatusServiceUnavailable:
					res.shedLat = append(res.shedLat, lat)
					res.shedBy[msg]++
				default:
					res.failed++
				}
			}()
		}
	}
	res.d = time.Since(start)
	wg.Wait()
	res.total = time.Since(start)
	res.serverCPU, res.loadCPU = procCPU(h.pid)-server0, processCPU()-load0
	for i := range next {
		h.epochs[i] = next[i].Load() + 1
	}
	return res, ctx.Err()
}

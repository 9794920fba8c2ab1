package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/keystore"
)

// bench measures, in one run on the same cores: (1) raw BLS signing throughput with every core
// busy, and (2) end-to-end ATTESTATION signing over HTTP through `vigil serve` (in-process, real
// listener on loopback) with the embedded SQLite store and, given --slashing-protection-db-url,
// with Postgres; it prints the rates, their ratios, latency percentiles and database round trips
// per signature. The load generator shares the cores with the server, so the ratios are lower
// bounds. With --import-validators it also times an EIP-3076 import of that size.
func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of each phase, summed over the rounds")
	clients := fs.Int("clients", 64, "concurrent HTTP clients (one key each)")
	rounds := fs.Int("rounds", 5, "alternate the phases this many times")
	pgURL := fs.String("slashing-protection-db-url", "", "also measure with this Postgres database (its contents are added to)")
	importValidators := fs.Int("import-validators", 0, "also time an interchange import of this many validators")
	importAtts := fs.Int("import-attestations", 1000, "attestations per validator in the import")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	serverCPUs := fs.String("server-cpus", "", "pinned mode: run the server as its own process on these CPUs (taskset list, e.g. 0) and report its own CPU per signature against raw BLS on the same CPUs; needs --load-cpus")
	loadCPUs := fs.String("load-cpus", "", "pinned mode: the CPUs of the load generator (and put the database there too), e.g. 1")
	burst := fs.Int("burst", 0, "pinned mode: also send a burst of this many attestations for as many keys (all at once) and compare its p99 with burst ÷ the raw rate")
	overload := fs.Float64("overload", 0, "pinned mode: also offer this multiple of the measured capacity, open loop (e.g. 3), and report goodput, 503s and latencies")
	rawOnly := fs.Bool("raw-only", false, "print raw one-goroutine BLS signing figures only (the pinned mode's measuring child)")
	sharedData := fs.Bool("shared-data", false, "every key signs the same attestation data at an epoch, as all attesters of one slot do since Electra (a root is then hashed to the curve once for all keys); default: each key's data is its own")
	ha := fs.Bool("ha", false, "also measure Postgres with --ha-enabled (a one-instance pair: the leader's cost of HA), on a second database created beside the given one")
	if err := parseLayered(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, "Usage: vigil bench [flags]")
		}
		return err
	}
	if *clients < 1 || *rounds < 1 || *duration < time.Duration(*rounds)*time.Second {
		return usagef("bench: want --clients ≥ 1, --rounds ≥ 1 and --duration ≥ 1s per round")
	}
	step := *duration / time.Duration(*rounds)
	if *rawOnly {
		return benchRawOnly(ctx, *duration, stdout)
	}
	if (*serverCPUs == "") != (*loadCPUs == "") {
		return usagef("bench: --server-cpus and --load-cpus go together")
	}
	if *serverCPUs != "" {
		return benchPinnedEntry(ctx, pinnedOptions{serverCPUs: *serverCPUs, loadCPUs: *loadCPUs, clients: *clients, rounds: *rounds,
			step: step, pgURL: *pgURL, cpuProfile: *cpuProfile, burst: *burst, overload: *overload, sharedData: *sharedData}, args, getenv, stdout, stderr)
	}
	cores := runtime.GOMAXPROCS(0)
	fmt.Fprintf(stdout, "vigil bench: %d cores, %d rounds of %s per phase, %d HTTP clients\n", cores, *rounds, step, *clients)

	targets := []*benchTarget{{name: "SQLite"}}
	if *pgURL != "" {
		targets = append(targets, &benchTarget{name: "Postgres", args: []string{"--slashing-protection-db-url", *pgURL}})
		if *ha {
			haURL, err := benchSecondDatabase(ctx, *pgURL, "vigil_bench_ha")
			if err != nil {
				return fmt.Errorf("--ha: %w", err)
			}
			targets = append(targets, &benchTarget{name: "PG+HA", args: []string{"--slashing-protection-db-url", haURL,
				"--ha-enabled", "--ha-instance-id", "bench"}})
		}
	} else if *ha {
		return usagef("bench: --ha needs --slashing-protection-db-url")
	}
	for _, t := range targets {
		srv, err := startBenchServer(ctx, *clients, t.args, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		srv.sharedData = *sharedData
		defer srv.close()
		t.srv = srv
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Phases alternate in short rounds so that drift in the machine's speed (other tenants,
	// thermal) hits all alike; the totals over all rounds give the ratios.
	var raw benchPhase
	for i := range *rounds {
		c0 := processCPU()
		n, d, err := benchRaw(ctx, cores, step)
		if err != nil {
			return err
		}
		raw.add(n, d, processCPU()-c0, nil)
		line := fmt.Sprintf("  round %d: raw %6.0f/s", i+1, float64(n)/d.Seconds())
		for _, t := range targets {
			trips0 := t.srv.roundTrips()
			c0 := processCPU()
			n, d, lat, err := t.srv.run(ctx, step)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			t.add(n, d, processCPU()-c0, lat)
			t.trips += t.srv.roundTrips() - trips0
			line += fmt.Sprintf("  %s %6.0f/s (%.3f)", t.name, float64(n)/d.Seconds(), (float64(n)/d.Seconds())/(float64(raw.n)/raw.d.Seconds()))
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "raw BLS sign (all cores): %8.0f signatures/s, %.0f µs CPU each\n", raw.rate(), raw.cpuPer())
	for _, t := range targets {
		p50, p99 := t.percentile(0.50), t.percentile(0.99)
		trips := "n/a"
		if t.trips >= 0 && t.name != "SQLite" {
			trips = fmt.Sprintf("%.2f", float64(t.trips)/float64(t.n))
		}
		fmt.Fprintf(stdout, "end-to-end HTTP ATTESTATION, %-8s %8.0f signatures/s  ratio %.3f  latency p50 %s p99 %s  CPU %.0f µs/signature (server + load generator)  DB round trips/signature %s\n",
			t.name+":", t.rate(), t.rate()/raw.rate(), p50, p99, t.cpuPer(), trips)
	}

	if *importValidators > 0 {
		// Into the shared database when there is one (the at-scale case), else the embedded one.
		if err := benchImport(ctx, targets[len(targets)-1], *importValidators, *importAtts, stdout); err != nil {
			return err
		}
	}
	return nil
}

// benchPhase accumulates one phase over the rounds.
type benchPhase struct {
	n   int64
	d   time.Duration
	cpu time.Duration
	lat []time.Duration
}

func (p *benchPhase) add(n int64, d, cpu time.Duration, lat []time.Duration) {
	p.n, p.d, p.cpu = p.n+n, p.d+d, p.cpu+cpu
	p.lat = append(p.lat, lat...)
}

func (p *benchPhase) rate() float64   { return float64(p.n) / p.d.Seconds() }
func (p *benchPhase) cpuPer() float64 { return p.cpu.Seconds() / float64(p.n) * 1e6 }

func (p *benchPhase) percentile(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	slices.Sort(p.lat)
	return p.lat[min(len(p.lat)-1, int(q*float64(len(p.lat))))].Round(10 * time.Microsecond)
}

// benchTarget is one store configuration under test.
type benchTarget struct {
	benchPhase
	name  string
	args  []string
	srv   *benchServer
	trips int64
}

// benchImport writes an interchange file of v validators × a attestations (plus one block each)
// and times `vigil slashing import` of it into the target's database.
func benchImport(ctx context.Context, t *benchTarget, v, a int, stdout io.Writer) error {
	f, err := os.CreateTemp("", "vigil-bench-interchange-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"%s"},"data":[`, benchGVR)
	for i := range v {
		if i > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(w, `{"pubkey":"0xbe%094x","signed_blocks":[{"slot":"%d","signing_root":"0x%064x"}],"signed_attestations":[`, i, 1000, i)
		for e := range a {
			if e > 0 {
				w.WriteByte(',')
			}
			fmt.Fprintf(w, `{"source_epoch":"%d","target_epoch":"%d","signing_root":"0x%064x"}`, e, e+1, e)
		}
		w.WriteString("]}")
	}
	w.WriteString("]}")
	if err := w.Flush(); err != nil {
		return err
	}
	info, _ := f.Stat()
	f.Close()
	var out, errb bytes.Buffer
	args := []string{"slashing", "import", "--file", f.Name(), "--data-dir", t.srv.dir}
	args = append(args, t.args...)
	start := time.Now()
	if code := run(ctx, args, func(string) string { return "" }, &out, &errb); code != 0 {
		return fmt.Errorf("%s import: %s", t.name, errb.String())
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "import %d validators × %d attestations (%.0f MB) into %s: %s (%.0f attestations/s)\n",
		v, a, float64(info.Size())/1e6, t.name, took.Round(10*time.Millisecond), float64(v*a)/took.Seconds())
	return nil
}

func benchRaw(ctx context.Context, workers int, d time.Duration) (int64, time.Duration, error) {
	sk, err := keystore.InteropSecretKey(0)
	if err != nil {
		return 0, 0, err
	}
	var n atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var root [32]byte
			root[0] = byte(w)
			for i := uint64(0); time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				root[1], root[2], root[3] = byte(i), byte(i>>8), byte(i>>16)
				_ = sk.SignRoot(root)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load(), time.Since(start), ctx.Err()
}

// benchServer is `vigil serve` running in-process for the benchmark, with one key per client.
type benchServer struct {
	dir    string
	url    string
	pubs   []keystore.PublicKey
	client *http.Client
	stop   context.CancelFunc
	done   chan error
	epochs []uint64 // next attestation target epoch per client
	// sharedData: all keys sign the same data at an epoch (--shared-data).
	sharedData bool
	pid        int // the server process (pinned mode; 0 in-process)

	metricsURL string
}

// roundTrips reads the server's slashing-database round-trip counter from /metrics (-1 when
// the store does not count them).
func (h *benchServer) roundTrips() int64 { return h.metric("vigil_slashing_db_round_trips_total") }

func startBenchServer(ctx context.Context, clients int, extra []string, stderr io.Writer) (*benchServer, error) {
	h, serveArgs, err := newBenchServer(clients)
	if err != nil {
		return nil, err
	}
	srvCtx, stop := context.WithCancel(ctx)
	h.stop = stop
	go func() {
		h.done <- serve(srvCtx, append(serveArgs, extra...), func(string) string { return "" }, io.Discard, stderr)
	}()
	if err := h.connect(clients); err != nil {
		stop()
		<-h.done
		os.RemoveAll(h.dir)
		return nil, err
	}
	return h, nil
}

// newBenchServer writes one interop keystore per client into a fresh directory and returns the
// server (not started) and the `vigil serve` arguments that run it.
func newBenchServer(clients int) (*benchServer, []string, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		return nil, nil, err
	}
	ksDir, pwFile := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	indices := make([]uint64, clients)
	for i := range indices {
		indices[i] = uint64(i)
	}
	h := &benchServer{dir: dir, done: make(chan error, 1), epochs: make([]uint64, clients)}
	if h.pubs, err = keystore.WriteInteropKeystores(ksDir, pwFile, indices, keystore.DevKDF()); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	for i := range h.epochs {
		h.epochs[i] = 1
	}
	return h, []string{
		"--network", "minimal", "--data-dir", dir, "--keystores-path", ksDir,
		"--keystores-password-file", pwFile, "--http-listen-port", "0", "--metrics-listen-port", "0",
		"--log-level", "warn", "--init-slashing-protection", "--slashing-far-future-epochs", "0",
	}, nil
}

// connect waits for the started server's ports and makes the client (conns connections).
func (h *benchServer) connect(conns int) error {
	port, err := waitForPort(filepath.Join(h.dir, "vigil.ports"), "http-port=", h.done)
	if err != nil {
		return err
	}
	mport, err := waitForPort(filepath.Join(h.dir, "vigil.ports"), "metrics-port=", h.done)
	if err != nil {
		return err
	}
	h.url = "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/eth2/sign/"
	h.metricsURL = "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	h.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return nil
}

func (h *benchServer) close() {
	h.client.CloseIdleConnections()
	h.stop()
	<-h.done
	os.RemoveAll(h.dir)
}

const (
	benchGVR      = "0x05d79a31a8e69ecd78114c50ce73116be33027d8431b82fff6c0b3cd9c2cbb1f"
	benchForkInfo = `{"fork":{"previous_version":"0x00000001","current_version":"0x01000001","epoch":"0"},"genesis_validators_root":"` + benchGVR + `"}`
)

// benchAttestation is the body of an ATTESTATION request of key from e-1 to e (never slashable
// against the other epochs of its key). Unless shared, its data (beacon block root) is the
// key's own, so no two keys sign the same root; shared, every key signs the same data at e, as
// all the attesters of one slot do since Electra (keystore/hashcache.go then hashes the root
// once for all of them).
func benchAttestation(e uint64, key int, shared bool) string {
	block := e
	if !shared {
		block |= uint64(key+1) << 40
	}
	return fmt.Sprintf(`{"type":"ATTESTATION","fork_info":%s,"attestation":{"slot":"%d","index":"0","beacon_block_root":"0x%064x","source":{"epoch":"%d","root":"0x%064x"},"target":{"epoch":"%d","root":"0x%064x"}}}`,
		benchForkInfo, e*8, block, e-1, e-1, e, e)
}

// run drives every client for d with ever-increasing attestation epochs (never slashable) and
// returns the number of signatures received.
func (h *benchServer) run(ctx context.Context, d time.Duration) (int64, time.Duration, []time.Duration, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, len(h.pubs))
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range h.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := h.url + h.pubs[c].String()
			for ; time.Now().Before(deadline) && ctx.Err() == nil; h.epochs[c]++ {
				e := h.epochs[c]
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(benchAttestation(e, c, h.sharedData)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				t0 := time.Now()
				resp, err := h.client.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"signature"`) {
					firstErr.CompareAndSwap(nil, fmt.Errorf("status %d: %s", resp.StatusCode, b))
					return
				}
				lats[c] = append(lats[c], time.Since(t0))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if v := firstErr.Load(); v != nil {
		return 0, 0, nil, fmt.Errorf("bench request failed: %v", v)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return n.Load(), elapsed, all, ctx.Err()
}

// waitForPort polls the vigil.ports file until the server has bound its listener.
func waitForPort(path, key string, done <-chan error) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return 0, fmt.Errorf("server exited before listening: %v", err)
		default:
		}
		if data, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, key); ok {
					return strconv.Atoi(v)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.New("server did not start within 30s")
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSecondDatabase creates (if missing) database name on the server of url and returns its
// URL: the HA target fences its database with a term of its own, so it cannot share the plain
// Postgres target's.
func benchSecondDatabase(ctx context.Context, url, name string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", dsnParseError(err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", err
		}
	}
	q := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	u := fmt.Sprintf("host=%s port=%d user=%s dbname=%s", q(cfg.Host), cfg.Port, q(cfg.User), q(name))
	if cfg.Password != "" {
		u += " password=" + q(cfg.Password)
	}
	return u, nil
}

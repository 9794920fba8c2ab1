package main

import (
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

// bench measures, in one run on the same cores: (1) raw BLS signing throughput with every core
// busy, and (2) end-to-end ATTESTATION signing over HTTP through `vigil serve` (in-process, real
// listener on loopback, embedded SQLite slashing store with fsync), and prints both and their
// ratio. The load generator shares the cores with the server, so the ratio is a lower bound.
func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Second, "length of each phase")
	clients := fs.Int("clients", 64, "concurrent HTTP clients (one key each)")
	rounds := fs.Int("rounds", 5, "alternate the two phases this many times")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := parseLayered(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, "Usage: vigil bench [flags]")
		}
		return err
	}
	if *clients < 1 || *rounds < 1 || *duration < time.Duration(*rounds)*time.Second {
		return usagef("bench: want --clients ≥ 1, --rounds ≥ 1 and --duration ≥ 1s per round")
	}
	cores := runtime.GOMAXPROCS(0)
	fmt.Fprintf(stdout, "vigil bench: %d cores, %d rounds of %s raw + %s end-to-end, %d HTTP clients\n",
		cores, *rounds, *duration/time.Duration(*rounds), *duration/time.Duration(*rounds), *clients)

	h, err := startBenchServer(ctx, *clients, stderr)
	if err != nil {
		return err
	}
	defer h.close()

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
	// thermal) hits both alike; the totals over all rounds give the ratio.
	var rawN, e2eN int64
	var rawT, e2eT, rawCPU, e2eCPU time.Duration
	step := *duration / time.Duration(*rounds)
	for i := range *rounds {
		c0 := processCPU()
		n, t, err := benchRaw(ctx, cores, step)
		if err != nil {
			return err
		}
		c1 := processCPU()
		rawN, rawT, rawCPU = rawN+n, rawT+t, rawCPU+c1-c0
		m, u, err := h.run(ctx, step)
		if err != nil {
			return err
		}
		e2eN, e2eT, e2eCPU = e2eN+m, e2eT+u, e2eCPU+processCPU()-c1
		fmt.Fprintf(stdout, "  round %d: raw %6.0f/s  end-to-end %6.0f/s  ratio %.3f\n", i+1,
			float64(n)/t.Seconds(), float64(m)/u.Seconds(), (float64(m)/u.Seconds())/(float64(n)/t.Seconds()))
	}
	raw, e2e := float64(rawN)/rawT.Seconds(), float64(e2eN)/e2eT.Seconds()
	fmt.Fprintf(stdout, "raw BLS sign (all cores):                 %8.0f signatures/s\n", raw)
	fmt.Fprintf(stdout, "end-to-end HTTP ATTESTATION (SQLite):     %8.0f signatures/s\n", e2e)
	fmt.Fprintf(stdout, "ratio end-to-end / raw:                   %8.3f\n", e2e/raw)
	// CPU cost per signature (process CPU time, server and load generator together): less
	// sensitive than wall-clock rates to a noisy machine, and it says where the cores went.
	rawCost := rawCPU.Seconds() / float64(rawN) * 1e6
	e2eCost := e2eCPU.Seconds() / float64(e2eN) * 1e6
	fmt.Fprintf(stdout, "CPU per signature: raw %.0f µs, end-to-end %.0f µs (server + load generator); raw/e2e %.3f; cores busy: raw %.0f%%, e2e %.0f%%\n",
		rawCost, e2eCost, rawCost/e2eCost,
		100*rawCPU.Seconds()/rawT.Seconds()/float64(cores), 100*e2eCPU.Seconds()/e2eT.Seconds()/float64(cores))
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
}

func startBenchServer(ctx context.Context, clients int, stderr io.Writer) (*benchServer, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		return nil, err
	}
	ksDir, pwFile := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	indices := make([]uint64, clients)
	for i := range indices {
		indices[i] = uint64(i)
	}
	h := &benchServer{dir: dir, done: make(chan error, 1), epochs: make([]uint64, clients)}
	if h.pubs, err = keystore.WriteInteropKeystores(ksDir, pwFile, indices, keystore.DevKDF()); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srvCtx, stop := context.WithCancel(ctx)
	h.stop = stop
	go func() {
		h.done <- serve(srvCtx, []string{
			"--network", "minimal", "--data-dir", dir, "--keystores-path", ksDir,
			"--keystores-password-file", pwFile, "--http-listen-port", "0", "--metrics-enabled=false",
			"--log-level", "warn",
		}, func(string) string { return "" }, io.Discard, stderr)
	}()
	port, err := waitForPort(filepath.Join(dir, "vigil.ports"), h.done)
	if err != nil {
		stop()
		os.RemoveAll(dir)
		return nil, err
	}
	h.url = "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/eth2/sign/"
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	h.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := range h.epochs {
		h.epochs[i] = 1
	}
	return h, nil
}

func (h *benchServer) close() {
	h.client.CloseIdleConnections()
	h.stop()
	<-h.done
	os.RemoveAll(h.dir)
}

const benchForkInfo = `{"fork":{"previous_version":"0x00000001","current_version":"0x01000001","epoch":"0"},"genesis_validators_root":"0x05d79a31a8e69ecd78114c50ce73116be33027d8431b82fff6c0b3cd9c2cbb1f"}`

// run drives every client for d with ever-increasing attestation epochs (never slashable) and
// returns the number of signatures received.
func (h *benchServer) run(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	var n atomic.Int64
	var firstErr atomic.Value
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
				body := fmt.Sprintf(`{"type":"ATTESTATION","fork_info":%s,"attestation":{"slot":"%d","index":"0","beacon_block_root":"0x%064x","source":{"epoch":"%d","root":"0x%064x"},"target":{"epoch":"%d","root":"0x%064x"}}}`,
					benchForkInfo, e*8, e, e-1, e-1, e, e)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
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
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if v := firstErr.Load(); v != nil {
		return 0, 0, fmt.Errorf("bench request failed: %v", v)
	}
	return n.Load(), elapsed, ctx.Err()
}

// waitForPort polls the vigil.ports file until the server has bound its listener.
func waitForPort(path string, done <-chan error) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return 0, fmt.Errorf("server exited before listening: %v", err)
		default:
		}
		if data, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "http-port="); ok {
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

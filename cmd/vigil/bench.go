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
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the end-to-end phase to this file")
	if err := parseLayered(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, "Usage: vigil bench [flags]")
		}
		return err
	}
	if *clients < 1 || *duration < time.Second {
		return usagef("bench: --clients ≥ 1 and --duration ≥ 1s")
	}
	cores := runtime.GOMAXPROCS(0)
	fmt.Fprintf(stdout, "vigil bench: %d cores, %s per phase, %d HTTP clients\n", cores, *duration, *clients)

	raw, err := benchRaw(ctx, cores, *duration)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "raw BLS sign (all cores):                 %8.0f signatures/s\n", raw)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	e2e, err := benchHTTP(ctx, *clients, *duration, stderr)
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "end-to-end HTTP ATTESTATION (SQLite):     %8.0f signatures/s\n", e2e)
	fmt.Fprintf(stdout, "ratio end-to-end / raw:                   %8.3f\n", e2e/raw)
	return nil
}

func benchRaw(ctx context.Context, workers int, d time.Duration) (float64, error) {
	sk, err := keystore.InteropSecretKey(0)
	if err != nil {
		return 0, err
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
	return float64(n.Load()) / time.Since(start).Seconds(), ctx.Err()
}

func benchHTTP(ctx context.Context, clients int, d time.Duration, stderr io.Writer) (float64, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	ksDir, pwFile := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	indices := make([]uint64, clients)
	for i := range indices {
		indices[i] = uint64(i)
	}
	pubs, err := keystore.WriteInteropKeystores(ksDir, pwFile, indices, keystore.DevKDF())
	if err != nil {
		return 0, err
	}
	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- serve(srvCtx, []string{
			"--network", "minimal", "--data-dir", dir, "--keystores-path", ksDir,
			"--keystores-password-file", pwFile, "--http-listen-port", "0", "--metrics-enabled=false",
			"--log-level", "warn",
		}, func(string) string { return "" }, io.Discard, stderr)
	}()
	port, err := waitForPort(filepath.Join(dir, "vigil.ports"), done)
	if err != nil {
		return 0, err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/api/v1/eth2/sign/"
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()

	const forkInfo = `{"fork":{"previous_version":"0x00000001","current_version":"0x01000001","epoch":"0"},"genesis_validators_root":"0x05d79a31a8e69ecd78114c50ce73116be33027d8431b82fff6c0b3cd9c2cbb1f"}`
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := pubs[c].String()
			for e := uint64(1); time.Now().Before(deadline) && ctx.Err() == nil; e++ {
				body := fmt.Sprintf(`{"type":"ATTESTATION","fork_info":%s,"attestation":{"slot":"%d","index":"0","beacon_block_root":"0x%064x","source":{"epoch":"%d","root":"0x%064x"},"target":{"epoch":"%d","root":"0x%064x"}}}`,
					forkInfo, e*8, e, e-1, e-1, e, e)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+target, bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				resp, err := client.Do(req)
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
	rate := float64(n.Load()) / time.Since(start).Seconds()
	if v := firstErr.Load(); v != nil {
		return 0, fmt.Errorf("bench request failed: %v", v)
	}
	stop()
	if err := <-done; err != nil {
		return 0, err
	}
	return rate, nil
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

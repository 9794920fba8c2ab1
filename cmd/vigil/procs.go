package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
)

// minProcs is the fewest Ps (GOMAXPROCS) serve runs with. BLS signing (blst) and the SQLite
// store are cgo calls, and a P stays with a goroutine inside a cgo call until the runtime's
// monitor takes it back (it polls every 20 µs to 10 ms): with one P (a one-CPU container, a
// process pinned to one core) the core idles while the writer waits in fsync, group commit stops
// grouping and some requests starve. Measured with `vigil bench --server-cpus 0 --load-cpus 1`
// (SQLite, 64 clients): GOMAXPROCS 1 → 1,486 signatures/s, core busy 0.84, p99/p50 39, 0.68
// fsyncs per signature; GOMAXPROCS 2 or 4 → 2,006–2,038/s, busy 0.99, p99/p50 2.2, 0.04–0.06;
// in alternating runs 2 beat 4 by 3–4 % (less scheduler contention on one core).
const minProcs = 2

// raiseProcs raises GOMAXPROCS to minProcs unless the operator set GOMAXPROCS.
func raiseProcs(getenv func(string) string, log *slog.Logger) {
	if getenv("GOMAXPROCS") != "" {
		return
	}
	if n := runtime.GOMAXPROCS(0); n < minProcs {
		runtime.GOMAXPROCS(minProcs)
		log.Info("GOMAXPROCS raised: signing and the embedded database are cgo calls that hold a P while they run", "cpus", runtime.NumCPU(), "before", n, "now", minProcs)
	}
}

// startCPUProfile writes a CPU profile to path until the returned stop is called
// (serve --cpu-profile).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

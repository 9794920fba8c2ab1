package sqlite_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSignAttestation measures durable attestation records per second
// from many concurrent signers with distinct keys (the shape of a validator
// client's per-epoch burst), with group commit (default) and without
// (MaxBatch=1: one fsync per signature). Reported: signs/s, commits/s, and
// CPU time per signature (what is left for BLS signing).
func BenchmarkSignAttestation(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
	}{{"grouped", 0}, {"ungrouped", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Create: true, MaxBatch: bc.maxBatch})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var nextKey atomic.Int64
			b.SetParallelism(32)
			before := s.Stats()
			cpu0 := cpuTime()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := slashingtest.Key(int(nextKey.Add(1)))
				epoch := phase0.Epoch(1)
				for pb.Next() {
					err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: key, SourceEpoch: epoch - 1, TargetEpoch: epoch,
						SigningRoot: slashingtest.Root(byte(epoch)), GenesisValidatorsRoot: slashingtest.GVR})
					if err != nil {
						b.Error(err)
						return
					}
					epoch++
				}
			})
			b.StopTimer()
			elapsed := time.Since(start).Seconds()
			cpu := cpuTime() - cpu0
			after := s.Stats()
			signs := float64(after.SignRequests - before.SignRequests)
			b.ReportMetric(signs/elapsed, "signs/s")
			b.ReportMetric(float64(after.Commits-before.Commits)/elapsed, "commits/s")
			b.ReportMetric(float64(cpu.Microseconds())/signs, "cpu-µs/sign")
		})
	}
}

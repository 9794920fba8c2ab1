package postgres_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSignAttestation measures durable attestation records per second
// with 1 and 64 concurrent callers, each caller with its own key (the shape
// of a validator client's per-epoch burst), over TCP loopback to the
// throwaway cluster (synchronous_commit=on). Reported: signs/s, round trips
// per signature (from Stats.RoundTrips, connection setup excluded by a
// warm-up), latency percentiles, and client CPU per signature (the test
// binary's, not the server's).
func BenchmarkSignAttestation(b *testing.B) {
	for _, bc := range []struct {
		callers  int
		maxConns int32
	}{{1, 0}, {64, 0}, {64, 64}} {
		name := fmt.Sprintf("callers=%d", bc.callers)
		if bc.maxConns != 0 {
			name += fmt.Sprintf("/conns=%d", bc.maxConns)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s, _ := fresh(b, postgres.Options{Create: true, MaxConns: bc.maxConns})
			epochs := make([]phase0.Epoch, bc.callers)
			sign := func(c int) error {
				epochs[c]++
				e := epochs[c]
				return s.SignAttestation(ctx, slashing.Attestation{Pubkey: slashingtest.Key(1000 + c), SourceEpoch: e - 1, TargetEpoch: e,
					SigningRoot: slashingtest.Root(byte(e)), GenesisValidatorsRoot: slashingtest.GVR})
			}
			// Warm-up: register the keys and open the pool's connections.
			var wg sync.WaitGroup
			for c := range bc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 3 {
						if err := sign(c); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			var next atomic.Int64
			lat := make([][]time.Duration, bc.callers)
			before := s.Stats()
			cpu0 := cpuTime()
			start := time.Now()
			b.ResetTimer()
			for c := range bc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if err := sign(c); err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			elapsed := time.Since(start).Seconds()
			cpu := cpuTime() - cpu0
			after := s.Stats()
			signs := float64(after.Signs - before.Signs)
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			b.ReportMetric(signs/elapsed, "signs/s")
			b.ReportMetric(float64(after.RoundTrips-before.RoundTrips)/signs, "roundtrips/sign")
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(cpu.Microseconds())/signs, "client-cpu-µs/sign")
		})
	}
}

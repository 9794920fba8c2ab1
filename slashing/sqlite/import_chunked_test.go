package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

// streamDocument writes, through a pipe, an interchange document of one validator (key 1) with
// n attestations (source i, target i+1) and n/100 blocks: the document is never in memory.
func streamDocument(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 64<<10)
		pk := slashingtest.Key(1)
		fmt.Fprintf(w, `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"%#x"},"data":[{"pubkey":"%#x","signed_blocks":[`, slashingtest.GVR[:], pk[:])
		for i := range n / 100 {
			if i > 0 {
				w.WriteByte(',')
			}
			fmt.Fprintf(w, `{"slot":"%d","signing_root":"0x%064x"}`, 10*i, i+1)
		}
		w.WriteString(`],"signed_attestations":[`)
		for i := range n {
			if i > 0 {
				w.WriteByte(',')
			}
			fmt.Fprintf(w, `{"source_epoch":"%d","target_epoch":"%d","signing_root":"0x%064x"}`, i, i+1, i+1)
		}
		w.WriteString(`]}]}`)
		pw.CloseWithError(w.Flush())
	}()
	return pr
}

type importRun struct {
	maxLatency    time.Duration
	signed        int
	peakHeap      uint64 // live heap (after a GC) at the chunk hooks
	chunks        int
	refusedDuring int
	elapsed       time.Duration
}

// importWhileSigning imports an n-attestation entry in chunks of chunk messages while another
// goroutine signs attestations of four other keys as fast as it can.
func importWhileSigning(t *testing.T, n, chunk int) importRun {
	ctx := context.Background()
	s := openTemp(t, sqlite.Options{Create: true})
	var run importRun
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var signErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for e := 0; ; e++ {
			select {
			case <-stop:
				return
			default:
			}
			pk := slashingtest.Key(2 + e%4)
			start := time.Now()
			err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: pk, SourceEpoch: phase0.Epoch(e), TargetEpoch: phase0.Epoch(e + 1),
				SigningRoot: slashingtest.Root(1), GenesisValidatorsRoot: slashingtest.GVR})
			run.maxLatency = max(run.maxLatency, time.Since(start))
			if err != nil {
				signErr = err
				return
			}
			run.signed++
		}
	}()
	hook := func(ctx context.Context, pk phase0.BLSPubKey, c int, last bool) {
		run.chunks = c
		if last {
			return // committed: the key signs again
		}
		// The imported key during its import: a vote that is a double vote against the
		// entry's last (not yet imported) attestation, and a harmless new one. Both refused.
		for _, a := range []slashing.Attestation{
			{Pubkey: pk, SourceEpoch: phase0.Epoch(n - 1), TargetEpoch: phase0.Epoch(n), SigningRoot: slashingtest.Root(9), GenesisValidatorsRoot: slashingtest.GVR},
			{Pubkey: pk, SourceEpoch: phase0.Epoch(n + 5), TargetEpoch: phase0.Epoch(n + 6), SigningRoot: slashingtest.Root(9), GenesisValidatorsRoot: slashingtest.GVR},
		} {
			var r *slashing.Refusal
			if err := s.SignAttestation(ctx, a); !errors.As(err, &r) || r.Reason != slashing.ValidatorDisabled {
				t.Errorf("chunk %d: the key being imported: %v, want validator_disabled", c, err)
			}
			run.refusedDuring++
		}
		if c%8 == 1 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			run.peakHeap = max(run.peakHeap, ms.HeapInuse)
		}
	}
	start := time.Now()
	res, err := slashing.Import(ctx, s, streamDocument(n), slashing.ImportOptions{ChunkSize: chunk, AfterChunk: hook})
	run.elapsed = time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if signErr != nil {
		t.Fatalf("signing another key failed during the import: %v", signErr)
	}
	if res.Attestations != n || res.Imported != 1 {
		t.Fatalf("result %+v", res)
	}
	// After: the whole history counts, and the key signs again.
	pk := slashingtest.Key(1)
	var r *slashing.Refusal
	if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: pk, SourceEpoch: phase0.Epoch(n - 1), TargetEpoch: phase0.Epoch(n),
		SigningRoot: slashingtest.Root(9), GenesisValidatorsRoot: slashingtest.GVR}); !errors.As(err, &r) || r.Reason != slashing.DoubleVote {
		t.Fatalf("after the import, a double vote against its last record: %v", err)
	}
	if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: pk, SourceEpoch: phase0.Epoch(n + 5), TargetEpoch: phase0.Epoch(n + 6),
		SigningRoot: slashingtest.Root(9), GenesisValidatorsRoot: slashingtest.GVR}); err != nil {
		t.Fatalf("after the import, a new vote: %v", err)
	}
	if imp, err := s.Importing(ctx, pk); err != nil || imp {
		t.Fatalf("import marker left: %v %v", imp, err)
	}
	return run
}

// Item 14 (a) and (c): a 200,000-attestation entry imported in chunks of 4,096 while other keys
// sign: no signature of another key fails, each waits at most a bounded time (one chunk's
// transaction), the imported key is refused during the import and correct after it, and the live
// heap during the import does not grow with the entry (compared with a 4× smaller entry).
func TestChunkedImportDoesNotStallSigning(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 250,000 attestations")
	}
	small := importWhileSigning(t, 50_000, slashing.DefaultImportChunk)
	big := importWhileSigning(t, 200_000, slashing.DefaultImportChunk)
	t.Logf("50k: %d chunks in %v, %d signatures of other keys meanwhile, max latency %v, peak live heap %.1f MB",
		small.chunks, small.elapsed, small.signed, small.maxLatency, float64(small.peakHeap)/1e6)
	t.Logf("200k: %d chunks in %v, %d signatures of other keys meanwhile, max latency %v, peak live heap %.1f MB",
		big.chunks, big.elapsed, big.signed, big.maxLatency, float64(big.peakHeap)/1e6)
	if big.signed == 0 {
		t.Fatalf("no other key signed during the import")
	}
	if big.maxLatency > 2*time.Second {
		t.Fatalf("a signature of another key waited %v during the import", big.maxLatency)
	}
	// 4× the entry: the heap may not grow by more than a few MB (one chunk is ~0.5 MB).
	if big.peakHeap > small.peakHeap+16<<20 {
		t.Fatalf("peak live heap grows with the entry: %.1f MB for 50k, %.1f MB for 200k", float64(small.peakHeap)/1e6, float64(big.peakHeap)/1e6)
	}
}

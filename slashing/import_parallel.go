package slashing

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"sync"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// importParallel is Import's loop with opts.Workers concurrent ImportValidator calls. Entries
// are routed by pubkey so that one key's entries keep their document order.
func importParallel(ctx context.Context, store Store, dec *Decoder, cr *countingReader, gvr phase0.Root,
	filter map[phase0.BLSPubKey]struct{}, opts ImportOptions, res ImportResult) (ImportResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		index int
		c     ImportChunk
	}
	type done struct {
		job
		err error
	}
	jobs := make([]chan job, opts.Workers)
	results := make(chan done, 4*opts.Workers)
	var wg sync.WaitGroup
	for w := range jobs {
		jobs[w] = make(chan job, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := chunker{store: store, gvr: gvr} // a key's chunks all come to one worker, in order
			for j := range jobs[w] {
				err := ctx.Err()
				if err == nil {
					err = k.put(ctx, &j.c)
				}
				results <- done{j, err}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	report := func(pk phase0.BLSPubKey) {
		if opts.Progress != nil {
			opts.Progress(ImportProgress{Entries: res.Entries, Imported: res.Imported, Skipped: res.Skipped,
				BytesRead: cr.n, LastPubkey: pk})
		}
	}
	collect := func(d done) {
		if d.err != nil {
			fail(fmt.Errorf("importing data[%d] (pubkey %#x): %w", d.index, d.c.Pubkey[:], d.err))
			return
		}
		res.Blocks += len(d.c.SignedBlocks)
		res.Attestations += len(d.c.SignedAttestations)
		if d.c.Last {
			res.Imported++
			report(d.c.Pubkey)
		}
	}
	dispatch := func(j job) {
		hsh := fnv.New32a()
		hsh.Write(j.c.Pubkey[:])
		ch := jobs[int(hsh.Sum32()%uint32(len(jobs)))]
		for {
			select {
			case ch <- j:
				return
			case d := <-results:
				collect(d)
			}
		}
	}
	var want bool
	for firstErr == nil {
		if err := ctx.Err(); err != nil {
			fail(err)
			break
		}
		c, err := dec.NextChunk(opts.ChunkSize)
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
			break
		}
		if c.First {
			res.Entries++
			_, want = filter[c.Pubkey]
			want = want || filter == nil
		}
		if !want {
			if c.Last {
				res.Skipped++
				report(c.Pubkey)
			}
			continue
		}
		dispatch(job{index: c.Index, c: c.ImportChunk})
	}
	for _, ch := range jobs {
		close(ch)
	}
	for d := range results {
		collect(d)
	}
	return res, firstErr
}

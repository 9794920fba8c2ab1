package keystore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// The parallel loader shared by the file-based sources.
//
// Invariants:
//   - Jobs run on at most `workers` goroutines; each job is one item (file or
//     document) and its failure becomes one LoadError naming that item.
//   - The result lists keys and errors in job order, whatever order the
//     workers finished in, so that "first wins" is deterministic.
//   - Duplicate public keys: the first job (in job order) that produced the key
//     wins; every later one is reported as a LoadError and its secret zeroed.
//   - Cancellation: no job starts after ctx is done. Jobs already running (a
//     scrypt cannot be interrupted) finish, then every key built so far is
//     zeroed and Load returns context.Cause(ctx) with an empty result (a job
//     can abort the whole load by cancelling a context.WithCancelCause ctx).
//   - A job returning errSkipItem (ErrSkipItem) produced nothing and reports
//     nothing (the item vanished, or was deliberately deleted).
//
// Sources in other packages (keystore/vault) use the same loader through
// LoadJob, RunLoadJobs, WithPubkey and ErrSkipItem.

// loadJob loads one item.
type loadJob struct {
	item string
	load func() (*SecretKey, error)
}

// defaultWorkers is the worker count when a config leaves it at 0.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// runJobs runs jobs on a pool of workers (≤ 0 means GOMAXPROCS) and
// assembles the LoadResult.
func runJobs(ctx context.Context, workers int, jobs []loadJob) (LoadResult, error) {
	if workers <= 0 {
		workers = defaultWorkers()
	}
	workers = min(workers, len(jobs))

	type outcome struct {
		sk  *SecretKey
		err error
	}
	outcomes := make([]outcome, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue // drain without starting anything new
				}
				sk, err := runJob(jobs[i])
				outcomes[i] = outcome{sk: sk, err: err}
			}
		})
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	if ctx.Err() != nil {
		err := context.Cause(ctx)
		for _, o := range outcomes {
			if o.sk != nil {
				o.sk.Zero()
			}
		}
		return LoadResult{}, err
	}

	var res LoadResult
	seen := make(map[PublicKey]string, len(jobs))
	for i, o := range outcomes {
		item := jobs[i].item
		switch {
		case errors.Is(o.err, errSkipItem):
		case o.err != nil:
			le := LoadError{Item: item, Err: o.err}
			var pe *pubkeyError
			if errors.As(o.err, &pe) {
				le.Pubkey, le.Err = pe.pub, pe.err
			}
			res.Errors = append(res.Errors, le)
		case o.sk == nil:
			res.Errors = append(res.Errors, LoadError{Item: item, Err: fmt.Errorf("no key produced")})
		default:
			pub := o.sk.PublicKey()
			if first, dup := seen[pub]; dup {
				o.sk.Zero()
				res.Errors = append(res.Errors, LoadError{Item: item, Pubkey: pub, Err: fmt.Errorf("duplicate public key %s (already loaded from %s)", pub, first)})
				continue
			}
			seen[pub] = item
			res.Keys = append(res.Keys, NewLocalKey(o.sk))
		}
	}
	return res, nil
}

// runJob runs one job, turning a panic (a bug, but one item must never take
// the whole source down) into an error.
func runJob(j loadJob) (sk *SecretKey, err error) {
	defer func() {
		if r := recover(); r != nil {
			sk, err = nil, fmt.Errorf("internal error while loading: %v", r)
		}
	}()
	return j.load()
}

// ErrSkipItem, returned by a job, says that its item holds no key and is not an error (see
// runJobs): it produces neither a key nor a LoadError.
var ErrSkipItem = errors.New("item skipped")

// errSkipItem is ErrSkipItem, under the name this package's sources use.
var errSkipItem = ErrSkipItem

// pubkeyError is a job failure for an item that declares its public key: runJobs moves the key
// into LoadError.Pubkey.
type pubkeyError struct {
	pub PublicKey
	err error
}

func (e *pubkeyError) Error() string { return e.err.Error() }
func (e *pubkeyError) Unwrap() error { return e.err }

// withPubkey attaches the item's declared public key to a job error (nil stays nil).
func withPubkey(pub *PublicKey, err error) error {
	if err == nil || pub == nil {
		return err
	}
	return &pubkeyError{pub: *pub, err: err}
}

// LoadJob is one item of a parallel load by RunLoadJobs.
type LoadJob struct {
	// Item names the item in its LoadError (a file name, a path; never secret material).
	Item string
	// Load builds the item's key. An error becomes the item's LoadError (wrap it with WithPubkey
	// when the item declares its public key); ErrSkipItem reports nothing.
	Load func() (*SecretKey, error)
}

// RunLoadJobs runs jobs on at most workers goroutines (≤ 0 means GOMAXPROCS) and assembles the
// LoadResult, with the invariants of this package's own sources (job order, first duplicate
// wins, cancelling ctx — with a cause — aborts the load and zeroes every key built so far).
func RunLoadJobs(ctx context.Context, workers int, jobs []LoadJob) (LoadResult, error) {
	js := make([]loadJob, len(jobs))
	for i, j := range jobs {
		js[i] = loadJob{item: j.Item, load: j.Load}
	}
	return runJobs(ctx, workers, js)
}

// WithPubkey attaches the public key an item declares to its job error (nil stays nil): the
// item's LoadError then carries it in Pubkey.
func WithPubkey(pub PublicKey, err error) error { return withPubkey(&pub, err) }

package keystore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunJobsParallel: with 3 workers, 3 jobs that each wait for the others
// to start can only finish if they really run at the same time.
func TestRunJobsParallel(t *testing.T) {
	const n = 3
	var started atomic.Int32
	all := make(chan struct{})
	jobs := make([]loadJob, n)
	for i := range jobs {
		jobs[i] = loadJob{item: fmt.Sprint(i), load: func() (*SecretKey, error) {
			if started.Add(1) == n {
				close(all)
			}
			select {
			case <-all:
			case <-time.After(10 * time.Second):
				return nil, errors.New("jobs did not run in parallel")
			}
			return InteropSecretKey(uint64(i))
		}}
	}
	res, err := runJobs(context.Background(), n, jobs)
	if err != nil || len(res.Keys) != n || len(res.Errors) != 0 {
		t.Fatalf("keys %d, errors %v, err %v", len(res.Keys), res.Errors, err)
	}
}

// TestRunJobsOrderAndFailures: results come back in job order whatever the
// completion order; failures and panics are per-item errors.
func TestRunJobsOrderAndFailures(t *testing.T) {
	var jobs []loadJob
	// Later jobs finish first: job i waits until job i+1 has finished (job 7 starts the chain).
	finished := make([]chan struct{}, 9)
	for i := range finished {
		finished[i] = make(chan struct{})
	}
	close(finished[8])
	for i := range 8 {
		jobs = append(jobs, loadJob{item: fmt.Sprintf("item-%d", i), load: func() (*SecretKey, error) {
			<-finished[i+1]
			defer close(finished[i])
			switch i {
			case 2:
				return nil, ErrWrongPassword
			case 5:
				panic("boom")
			case 6:
				return InteropSecretKey(1) // duplicate of item-1
			}
			return InteropSecretKey(uint64(i))
		}})
	}
	res, err := runJobs(context.Background(), len(jobs), jobs) // all at once: the chain needs it
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range res.Keys {
		for i := range uint64(8) {
			if k.PublicKey() == interopKey(t, i).PublicKey() {
				got = append(got, fmt.Sprint(i))
			}
		}
	}
	if strings.Join(got, ",") != "0,1,3,4,7" {
		t.Fatalf("keys in order %v", got)
	}
	var items []string
	for _, e := range res.Errors {
		items = append(items, e.Item)
	}
	if strings.Join(items, ",") != "item-2,item-5,item-6" {
		t.Fatalf("errors %v", res.Errors)
	}
	if !errors.Is(res.Errors[0], ErrWrongPassword) || !strings.Contains(res.Errors[1].Error(), "internal error") ||
		!strings.Contains(res.Errors[2].Error(), "already loaded from item-1") {
		t.Fatalf("errors %v", res.Errors)
	}
}

// TestRunJobsCancelMidway: once ctx is cancelled no further job starts, and
// the keys built so far are wiped and not returned.
func TestRunJobsCancelMidway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ran atomic.Int32
	var built []*SecretKey
	var jobs []loadJob
	for i := range 20 {
		jobs = append(jobs, loadJob{item: fmt.Sprint(i), load: func() (*SecretKey, error) {
			ran.Add(1)
			if i == 1 {
				cancel()
			}
			sk, err := InteropSecretKey(uint64(i))
			if i == 0 {
				built = append(built, sk)
			}
			return sk, err
		}})
	}
	res, err := runJobs(ctx, 1, jobs)
	if !errors.Is(err, context.Canceled) || len(res.Keys) != 0 {
		t.Fatalf("keys %d, err %v", len(res.Keys), err)
	}
	if n := ran.Load(); n != 2 {
		t.Fatalf("%d jobs ran after cancellation", n)
	}
	if len(built) != 1 {
		t.Fatal("job 0 did not run")
	}
	if b := built[0].Bytes(); string(b) != string(make([]byte, 32)) {
		t.Fatal("key built before cancellation was not zeroed")
	}
}

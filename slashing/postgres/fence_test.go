package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

func countRecords(t testing.TB, url string) int {
	t.Helper()
	var n int
	if err := sql(t, url).QueryRow(context.Background(),
		"SELECT (SELECT count(*) FROM signed_blocks) + (SELECT count(*) FROM signed_attestations)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFencing: writers at term 1 race SetTerm(2) by another instance. After
// SetTerm returns no term-1 write commits: the number of records does not
// change while the old writers keep trying, every old write that started
// after SetTerm returned fails with ErrFenced (which is also
// ErrUnavailable), every old write that returned nil is recorded, and the
// new leader writes.
func TestFencing(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	old := open(t, url, postgres.Options{Create: true, Term: 1})
	leader := open(t, url, postgres.Options{Create: true, Term: 1})

	const writers = 32
	type result struct {
		key           int
		source        uint64
		target        uint64
		block         bool
		slot          uint64
		err           error
		afterSetTerm  bool // the call started after SetTerm returned
		finishedAfter bool
	}
	const (
		// The writers run until they did this much, not for a time: enough accepted writes
		// before the term change, and enough attempts that started after it.
		writesBefore  = 4 * writers
		attemptsAfter = 4 * writers
		wait          = 30 * time.Second // bound of each wait: a writer that hangs fails the test
	)
	var (
		setTermDone  atomic.Bool
		stop         atomic.Bool
		mu           sync.Mutex
		results      []result
		startedAfter int                   // results of calls that started after SetTerm returned
		changed      = make(chan struct{}) // closed and replaced at every result
		wg           sync.WaitGroup
		inFlight     atomic.Int64
	)
	stopWriters := func() {
		stop.Store(true)
		wg.Wait()
	}
	t.Cleanup(stopWriters) // also when a wait below fails the test (before the stores are closed)
	// waitUntil waits until cond (called with mu held) holds for the results.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			mu.Lock()
			done, ch, n, after := cond(), changed, len(results), startedAfter
			mu.Unlock()
			if done {
				return
			}
			select {
			case <-ch:
			case <-timer.C:
				t.Fatalf("waiting for %s: not within %v (%d writes, %d started after SetTerm)", what, wait, n, after)
			}
		}
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := 100 + w
			for i := uint64(0); !stop.Load(); i++ {
				r := result{key: key, afterSetTerm: setTermDone.Load()}
				inFlight.Add(1)
				switch i % 4 {
				case 0:
					r.block, r.slot = true, i
					r.err = old.SignBlock(ctx, block(key, i, 1))
				default:
					r.source, r.target = i, i+1
					r.err = old.SignAttestation(ctx, att(key, i, i+1, 1))
				}
				inFlight.Add(-1)
				r.finishedAfter = setTermDone.Load()
				mu.Lock()
				results = append(results, r)
				if r.afterSetTerm {
					startedAfter++
				}
				close(changed)
				changed = make(chan struct{})
				mu.Unlock()
			}
		}()
	}
	waitUntil(fmt.Sprint(writesBefore, " writes before SetTerm"), func() bool { return len(results) >= writesBefore })
	start := time.Now()
	flying := inFlight.Load()
	if err := leader.SetTerm(ctx, 2); err != nil {
		t.Fatalf("SetTerm(2): %v", err)
	}
	setTermDone.Store(true)
	took := time.Since(start)
	recordedAtSetTerm := countRecords(t, url)
	// The old writers keep trying.
	waitUntil(fmt.Sprint(attemptsAfter, " writes started after SetTerm"), func() bool { return startedAfter >= attemptsAfter })
	stopWriters()
	t.Logf("SetTerm(2) took %v with ~%d writes in flight; %d old writes in total", took, flying, len(results))

	if got := countRecords(t, url); got != recordedAtSetTerm {
		t.Fatalf("term-1 writes committed after SetTerm returned: %d records then, %d now", recordedAtSetTerm, got)
	}
	accepted, fencedN, fencedAfter := 0, 0, 0
	conn := sql(t, url)
	for _, r := range results {
		switch {
		case r.err == nil:
			if r.afterSetTerm {
				t.Fatalf("a term-1 write that started after SetTerm returned was accepted: %+v", r)
			}
			accepted++
			pk := slashingtest.Key(r.key)
			var n int
			var err error
			if r.block {
				err = conn.QueryRow(ctx, `SELECT count(*) FROM signed_blocks b JOIN validators v ON v.id = b.validator_id
					WHERE v.pubkey = $1 AND b.slot = $2`, pk[:], encU64(r.slot)).Scan(&n)
			} else {
				err = conn.QueryRow(ctx, `SELECT count(*) FROM signed_attestations a JOIN validators v ON v.id = a.validator_id
					WHERE v.pubkey = $1 AND a.target_epoch = $2 AND a.source_epoch = $3`, pk[:], encU64(r.target), encU64(r.source)).Scan(&n)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("an accepted write is not recorded: %+v", r)
			}
		case errors.Is(r.err, postgres.ErrFenced):
			if !errors.Is(r.err, slashing.ErrUnavailable) {
				t.Fatalf("ErrFenced must also be ErrUnavailable: %v", r.err)
			}
			fencedN++
			if r.afterSetTerm {
				fencedAfter++
			}
		default:
			t.Fatalf("unexpected error: %v", r.err)
		}
	}
	if accepted == 0 || fencedAfter == 0 {
		t.Fatalf("the race did not happen: %d accepted, %d fenced after SetTerm", accepted, fencedAfter)
	}
	t.Logf("%d accepted before the term change, %d fenced (%d started after SetTerm returned)", accepted, fencedN, fencedAfter)

	// Every kind of write is fenced for the old instance.
	if err := old.SetEnabled(ctx, slashingtest.Key(1), false); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("SetEnabled at an old term = %v", err)
	}
	if err := old.ImportValidator(ctx, slashingtest.GVR, slashingtest.H(1, []slashing.SignedBlock{slashingtest.B(5, 1)}, nil)); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("ImportValidator at an old term = %v", err)
	}
	// The new leader writes, reads still work for the old one.
	if err := leader.SignBlock(ctx, block(1, 10, 1)); err != nil {
		t.Fatalf("the new leader cannot sign: %v", err)
	}
	if err := old.Ping(ctx); err != nil {
		t.Fatalf("Ping on the fenced instance: %v", err)
	}
	if err := old.ExportValidators(ctx, nil, func(slashing.ValidatorHistory) error { return nil }); err != nil {
		t.Fatalf("export on the fenced instance: %v", err)
	}
	// Terms never go down; the deposed instance cannot take the term back
	// with an old number.
	if err := old.SetTerm(ctx, 1); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("SetTerm(1) after 2 = %v, want ErrFenced", err)
	}
	if term, err := leader.DatabaseTerm(ctx); err != nil || term != 2 {
		t.Fatalf("DatabaseTerm = %d, %v", term, err)
	}
	// A later term takes over again, and the store follows its own SetTerm.
	if err := old.SetTerm(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if old.Term() != 3 {
		t.Fatalf("Term() = %d after SetTerm(3)", old.Term())
	}
	if err := old.SignBlock(ctx, block(1, 11, 1)); err != nil {
		t.Fatalf("signing at the new term: %v", err)
	}
	if err := leader.SignBlock(ctx, block(1, 12, 1)); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("the deposed leader signed: %v", err)
	}
}

// TestSetTermWaitsForWritesInFlight: a write that passed its term check and
// is still running (here: waiting for a key lock) holds SetTerm back; it
// commits, and SetTerm returns only after it.
func TestSetTermWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	old := open(t, url, postgres.Options{Create: true})
	leader := open(t, url, postgres.Options{Create: true})
	if err := old.SignAttestation(ctx, att(1, 1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	holder := sql(t, url)
	var id int64
	pk := slashingtest.Key(1)
	if err := holder.QueryRow(ctx, "SELECT id FROM validators WHERE pubkey = $1", pk[:]).Scan(&id); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2::int)", postgres.LockNamespaceAtt, id); err != nil {
		t.Fatal(err)
	}
	signed := make(chan error, 1)
	go func() { signed <- old.SignAttestation(ctx, att(1, 2, 3, 1)) }()
	waitForLockWaiter(t, url, "vigil_sign_attestation")
	setTerm := make(chan error, 1)
	go func() { setTerm <- leader.SetTerm(ctx, 2) }()
	waitForLockWaiter(t, url, "vigil_set_term")
	// A write that starts now queues behind SetTerm and is fenced.
	late := make(chan error, 1)
	go func() { late <- old.SignBlock(ctx, block(2, 1, 1)) }()
	waitForLockWaiter(t, url, "vigil_sign_block")
	select {
	case err := <-setTerm:
		t.Fatalf("SetTerm returned while a term-1 write was in flight: %v", err)
	case err := <-late:
		t.Fatalf("a write overtook the waiting SetTerm: %v", err)
	default:
	}
	if err := tx.Commit(ctx); err != nil { // release the key lock
		t.Fatal(err)
	}
	if err := <-signed; err != nil {
		t.Fatalf("the in-flight term-1 write (it passed its term check first) failed: %v", err)
	}
	if err := <-setTerm; err != nil {
		t.Fatal(err)
	}
	if err := <-late; !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("the write queued behind SetTerm = %v, want ErrFenced", err)
	}
}

// waitForLockWaiter waits until a backend running a statement containing
// fn waits for a lock.
//
// A bounded poll, not an event: that a backend waits for a lock is only
// visible inside the server (pg_stat_activity), which tells nobody when it
// starts waiting; the statement is blocked, so the client side has nothing to
// signal either.
func waitForLockWaiter(t testing.TB, url, fn string) uint32 {
	t.Helper()
	const within = 10 * time.Second
	conn := sql(t, url)
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var pid int32
		err := conn.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'
			  AND pid <> pg_backend_pid() LIMIT 1`, fn).Scan(&pid)
		if err == nil {
			return uint32(pid)
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no backend running %s waits for a lock within %v (last query: %v)", fn, within, err)
			return 0
		}
	}
}

func encU64(v uint64) int64 { return int64(v ^ (1 << 63)) }

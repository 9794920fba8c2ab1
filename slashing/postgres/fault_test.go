package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/internal/testenv"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// TestServerRestartUnderLoad: the server is stopped while goroutines sign,
// and started again. Every call that returned nil is recorded; calls during
// the outage fail fast with ErrUnavailable (well within their deadline);
// after the restart the same Store signs again by itself.
func TestServerRestartUnderLoad(t *testing.T) {
	if pgtest.External() {
		testenv.Missing(t, "a throwaway Postgres cluster (fault injection)", "unset "+pgtest.URLEnv+" so pgtest starts one it can stop")
	}
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := open(t, url, postgres.Options{Create: true, ConnectTimeout: time.Second})
	const (
		workers  = 16
		deadline = 2 * time.Second
		// The phases last until the writers did this much, not for a time: enough calls
		// before the outage and after the restart, and every writer failing fast several
		// times while the server is down.
		okBefore       = 5 * workers
		failsPerWorker = 5
		okAfter        = 10 * workers
		wait           = 30 * time.Second // bound of each wait: a writer that hangs fails the test
	)
	const (
		before = iota
		stopping
		outage
		starting
		after
	)
	type call struct {
		key            int
		source, target uint64
		from, to       int32 // phase at start and end
		took           time.Duration
		err            error
	}
	var (
		phase atomic.Int32
		// entered[p] is closed when the test enters phase p: a writer whose call failed
		// waits on the next phase instead of spinning while the server is down.
		entered [after + 1]chan struct{}
		quit    = make(chan struct{}) // closed when the writers are to stop
		mu      sync.Mutex
		calls   []call
		ok      [after + 1]int // calls that began and ended in one phase, by outcome
		failed  [after + 1]int
		gaveUp  []call                // calls whose failure the test reports: their writer stopped
		changed = make(chan struct{}) // closed and replaced at every recorded call
		wg      sync.WaitGroup
	)
	for p := range entered {
		entered[p] = make(chan struct{})
	}
	enter := func(p int32) {
		phase.Store(p)
		close(entered[p])
	}
	var stopOnce sync.Once
	stopWriters := func() {
		stopOnce.Do(func() { close(quit) })
		wg.Wait()
	}
	t.Cleanup(stopWriters) // also when a wait below fails the test (before the store is closed)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := 1 + w
			fails := 0 // failures of this writer inside the outage
			for e := uint64(1); ; e++ {
				select {
				case <-quit:
					return
				default:
				}
				c := call{key: key, source: e - 1, target: e, from: phase.Load()}
				cctx, cancel := context.WithTimeout(ctx, deadline)
				t0 := time.Now()
				c.err = s.SignAttestation(cctx, att(key, e-1, e, 1))
				c.took = time.Since(t0)
				cancel()
				c.to = phase.Load()
				mu.Lock()
				calls = append(calls, c)
				if c.from == c.to {
					if c.err == nil {
						ok[c.from]++
					} else {
						failed[c.from]++
					}
				}
				giveUp := c.err != nil && c.from == c.to && (c.from == before || c.from == after)
				if giveUp {
					gaveUp = append(gaveUp, c)
				}
				close(changed)
				changed = make(chan struct{})
				mu.Unlock()
				if c.err == nil {
					continue
				}
				if c.from == c.to && c.to == outage {
					fails++
				}
				switch {
				case giveUp: // the server is up: the checks below report this call
					return
				case c.to == after: // began before the restart: try again at once
				case c.to == outage && fails < failsPerWorker: // fail fast again (they are counted)
				default: // do not spin while the server is down: wait for the test's next step
					select {
					case <-entered[c.to+1]:
					case <-quit:
						return
					}
				}
			}
		}()
	}
	// waitUntil waits until cond (called with mu held) holds for the recorded calls.
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			mu.Lock()
			done, ch, g := cond(), changed, gaveUp
			mu.Unlock()
			switch {
			case len(g) > 0:
				t.Fatalf("waiting for %s: a call failed while the server was up: %+v", what, g[0])
			case done:
				return
			}
			select {
			case <-ch:
			case <-timer.C:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("waiting for %s: not within %v (by phase: ok %v, failed %v)", what, wait, ok, failed)
			}
		}
	}
	waitUntil(fmt.Sprint(okBefore, " calls before the outage"), func() bool { return ok[before] >= okBefore })
	enter(stopping)
	pgtest.Stop(t)
	enter(outage)
	waitUntil(fmt.Sprint(failsPerWorker*workers, " failed calls during the outage"), func() bool { return failed[outage] >= failsPerWorker*workers })
	enter(starting)
	pgtest.Start(t)
	enter(after)
	waitUntil(fmt.Sprint(okAfter, " calls after the restart"), func() bool { return ok[after] >= okAfter })
	stopWriters()

	var n [after + 1]struct{ ok, failed int }
	var slowest time.Duration
	for _, c := range calls {
		switch {
		case c.from == before && c.to == before:
			if c.err != nil {
				t.Fatalf("call before the outage failed: %v", c.err)
			}
			n[before].ok++
		case c.from == outage && c.to == outage:
			if c.err == nil {
				t.Fatalf("a call during the outage succeeded: %+v", c)
			}
			if !errors.Is(c.err, slashing.ErrUnavailable) || errors.Is(c.err, slashing.ErrSlashable) {
				t.Fatalf("a call during the outage failed with %v, want ErrUnavailable", c.err)
			}
			n[outage].failed++
			slowest = max(slowest, c.took)
		case c.from == after:
			if c.err != nil {
				t.Fatalf("a call after the restart failed: %v", c.err)
			}
			n[after].ok++
		default: // during the stop or the start: any outcome, but errors are ErrUnavailable
			if c.err != nil && !errors.Is(c.err, slashing.ErrUnavailable) {
				t.Fatalf("a call across the stop/start failed with %v", c.err)
			}
			if c.err != nil {
				n[stopping].failed++
			} else {
				n[stopping].ok++
			}
		}
	}
	t.Logf("before: %d ok; while stopping/starting: %d ok, %d failed; outage: %d failed (slowest %v); after restart: %d ok",
		n[before].ok, n[stopping].ok, n[stopping].failed, n[outage].failed, slowest, n[after].ok)
	if n[before].ok == 0 || n[outage].failed == 0 || n[after].ok == 0 {
		t.Fatal("the scenario did not happen")
	}
	if slowest > deadline/2 {
		t.Fatalf("calls during the outage do not fail fast: the slowest took %v", slowest)
	}
	// Every accepted call is recorded.
	recorded := map[string]bool{}
	if err := s.ExportValidators(ctx, nil, func(h slashing.ValidatorHistory) error {
		for _, a := range h.SignedAttestations {
			recorded[fmt.Sprintf("%x %d %d", h.Pubkey[:2], a.SourceEpoch, a.TargetEpoch)] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		pk := slashingtest.Key(c.key)
		if c.err == nil && !recorded[fmt.Sprintf("%x %d %d", pk[:2], c.source, c.target)] {
			t.Fatalf("accepted but not recorded: %+v", c)
		}
	}
}

// TestBackendKilledInsideTransaction: the connection of a signature dies
// while its transaction is open (after it registered a new key, while it
// waits for the key's lock). The call fails with ErrUnavailable, nothing of
// the transaction is recorded, and the store keeps working.
func TestBackendKilledInsideTransaction(t *testing.T) {
	ctx := context.Background()
	s, url := fresh(t, postgres.Options{Create: true})
	if err := s.SignAttestation(ctx, att(1, 1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	// Hold the attestation locks of the next key ids, so that a new key's
	// signature registers the key and then waits.
	holder := sql(t, url)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, i::int)
		FROM generate_series((SELECT max(id) FROM validators) + 1, (SELECT max(id) FROM validators) + 64) i`, postgres.LockNamespaceAtt); err != nil {
		t.Fatal(err)
	}
	signed := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		signed <- s.SignAttestation(cctx, att(2, 5, 6, 1))
	}()
	pid := waitForLockWaiter(t, url, "vigil_sign_attestation")
	pgtest.Terminate(t, pid)
	select {
	case err := <-signed:
		if !errors.Is(err, slashing.ErrUnavailable) || errors.Is(err, slashing.ErrSlashable) {
			t.Fatalf("signature on a killed connection = %v, want ErrUnavailable", err)
		}
		t.Logf("signature on a killed connection: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the signature on a killed connection did not return")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var keys, votes int
	k2 := slashingtest.Key(2)
	if err := holder.QueryRow(ctx, `SELECT (SELECT count(*) FROM validators WHERE pubkey = $1), (SELECT count(*) FROM signed_attestations)`, k2[:]).Scan(&keys, &votes); err != nil {
		t.Fatal(err)
	}
	if keys != 0 || votes != 1 {
		t.Fatalf("the killed transaction left %d key rows and %d votes (want 0 and 1)", keys, votes)
	}
	// The store recovers by itself: the same request succeeds now.
	if err := s.SignAttestation(ctx, att(2, 5, 6, 1)); err != nil {
		t.Fatalf("signing after the killed connection: %v", err)
	}
	if err := s.SignAttestation(ctx, att(1, 2, 3, 1)); err != nil {
		t.Fatal(err)
	}
}

// TestClosedAndDownFailFast: a store whose server is unreachable answers
// ErrUnavailable at once, and Open fails with ErrUnavailable too.
func TestUnreachableServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	_, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable", postgres.Options{Create: true})
	if !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("Open of an unreachable server = %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Open of an unreachable server took %v", d)
	}
}

// TestIdleConnectionsAfterRestart: the pool's idle connections die with a
// server restart; the store notices without sending anything (a dead idle
// connection has the server's goodbye or EOF waiting on its socket) and the
// first signatures after the restart succeed on new connections.
func TestIdleConnectionsAfterRestart(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true, MaxConns: 8})
	var wg sync.WaitGroup
	for k := range 8 { // open several connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.SignBlock(ctx, block(k, 1, 1)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	pgtest.Stop(t)
	pgtest.Start(t)
	for k := range 8 {
		if err := s.SignBlock(ctx, block(k, 2, 1)); err != nil {
			t.Fatalf("signature %d after the restart: %v", k, err)
		}
	}
}

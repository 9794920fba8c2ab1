package pgelect_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/failover"
	"github.com/vigil-signer/vigil/failover/pgelect"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// database returns a fresh slashing database (schema migrated) and a store on it.
func database(t *testing.T) (string, *postgres.Store) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(context.Background(), url, postgres.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return url, s
}

func backend(t *testing.T, url, id string, lease time.Duration) *pgelect.Backend {
	t.Helper()
	b, err := pgelect.New(pgelect.Config{URL: url, ID: id, AdvertiseURL: "http://" + id, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// A second live instance with the same id is refused, naming the id's session; once the first
// is gone, the id is free.
func TestDuplicateInstanceID(t *testing.T) {
	url, _ := database(t)
	ctx := context.Background()
	a := backend(t, url, "vigil-1", time.Second)
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	b := backend(t, url, "vigil-1", time.Second)
	err := b.Register(ctx)
	if !errors.Is(err, failover.ErrDuplicateID) || !strings.Contains(err.Error(), "backend") {
		t.Fatalf("duplicate Register = %v, want ErrDuplicateID naming the live session", err)
	}
	if err := backend(t, url, "vigil-2", time.Second).Register(ctx); err != nil {
		t.Fatalf("another id: %v", err)
	}
	a.Close()
	if err := b.Register(ctx); err != nil {
		t.Fatalf("after the first instance left: %v", err)
	}
}

// The fast path: the lock is exclusive, a take raises the term above the fence's, and a closed
// holder session hands the lock to the blocked candidate at once.
func TestLockTakeRenewRelease(t *testing.T) {
	url, store := database(t)
	ctx := context.Background()
	a, b := backend(t, url, "a", 2*time.Second), backend(t, url, "b", 2*time.Second)
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	term, err := a.Take(ctx, 2*time.Second)
	if err != nil || term != 2 {
		t.Fatalf("Take = %d, %v; want 2 (fence starts at 1)", term, err)
	}
	if err := store.SetTerm(ctx, term); err != nil {
		t.Fatal(err)
	}
	bLocked := make(chan error, 1)
	go func() { bLocked <- b.Lock(ctx) }()
	l, err := b.Observe(ctx)
	if err != nil || l.Holder != "a" || l.Term != 2 || !l.Valid || l.AdvertiseURL != "http://a" {
		t.Fatalf("Observe = %+v, %v", l, err)
	}
	if sd, err := a.Renew(ctx, term, 2*time.Second); err != nil || sd {
		t.Fatalf("Renew = %v, %v", sd, err)
	}
	c := backend(t, url, "c", 2*time.Second)
	if err := c.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Renew(ctx, term, 2*time.Second); !errors.Is(err, failover.ErrDeposed) {
		t.Fatalf("a non-holder's Renew = %v, want ErrDeposed", err)
	}
	if ok, err := b.Evict(ctx, term); err != nil || ok {
		t.Fatalf("Evict of a valid lease = %v, %v; want no eviction", ok, err)
	}
	select {
	case err := <-bLocked:
		t.Fatalf("b got the lock while a holds it: %v", err)
	default:
	}
	a.Reset() // a's process dies: its connection closes
	if err := <-bLocked; err != nil {
		t.Fatal(err)
	}
	term2, err := b.Take(ctx, 2*time.Second)
	if err != nil || term2 != 3 {
		t.Fatalf("b's Take = %d, %v; want 3", term2, err)
	}
	if _, err := a.Renew(ctx, term, 2*time.Second); !errors.Is(err, failover.ErrDeposed) {
		t.Fatalf("the old holder's Renew = %v, want ErrDeposed", err)
	}
	if err := b.Release(ctx, term2); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.Observe(ctx); l.Valid {
		t.Fatalf("released lease still valid: %+v", l)
	}
}

// The slow path: a holder that stays connected but stops renewing is evicted once its lease ran
// out by the database clock (not before), which releases its lock.
func TestEvictHungHolder(t *testing.T) {
	url, _ := database(t)
	ctx := context.Background()
	const lease = 500 * time.Millisecond
	a, b := backend(t, url, "a", lease), backend(t, url, "b", lease)
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	term, err := a.Take(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	bLocked := make(chan error, 1)
	go func() { bLocked <- b.Lock(ctx) }()
	// The lease runs out on the database's clock: poll it as the standby does (the database is
	// the only one that can say when), bounded.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); ; {
		l, err := b.Observe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Valid {
			break
		}
		if ok, err := b.Evict(ctx, term); err != nil || ok {
			t.Fatalf("evicted a valid lease: %v, %v", ok, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease never ran out")
		}
		<-tick.C
	}
	ok, err := b.Evict(ctx, term)
	if err != nil || !ok {
		t.Fatalf("Evict of an expired lease = %v, %v", ok, err)
	}
	if err := <-bLocked; err != nil {
		t.Fatal(err)
	}
	if _, err := a.Renew(ctx, term, lease); err == nil {
		t.Fatal("the evicted holder renewed")
	}
}

// Two electors on one real database, each fencing its own store: one leads; when its election
// session is killed, the other leads at a higher term and the first one's writes are fenced.
func TestElectorsOnPostgres(t *testing.T) {
	url, _ := database(t)
	ctx := context.Background()
	type inst struct {
		e     *failover.Elector
		store *postgres.Store
		tr    chan failover.Transition
		b     *pgelect.Backend
	}
	mk := func(id string) *inst {
		s, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		in := &inst{store: s, tr: make(chan failover.Transition, 16), b: backend(t, url, id, time.Second)}
		in.e, err = failover.New(failover.Config{ID: id, AdvertiseURL: "http://" + id, Backend: in.b, Fence: s, Lease: time.Second,
			OnTransition: func(tr failover.Transition) { in.tr <- tr }})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(in.e.Stop)
		return in
	}
	wait := func(in *inst, to failover.Role) failover.Transition {
		t.Helper()
		for {
			select {
			case tr := <-in.tr:
				if tr.To == to {
					return tr
				}
			case <-time.After(20 * time.Second): // a guard against a hung test
				t.Fatalf("no transition to %s", to)
			}
		}
	}
	a := mk("a")
	first := wait(a, failover.Leader)
	b := mk("b")
	wait(b, failover.Standby)
	if b.e.CheckLeader(ctx) == nil {
		t.Fatal("both lead")
	}
	if err := a.store.SignAttestation(ctx, att(1, 2)); err != nil {
		t.Fatalf("the leader's write: %v", err)
	}
	// Kill a's election session as a dead process's closed socket would.
	pgtest.Terminate(t, holderPID(t, url))
	second := wait(b, failover.Leader)
	if second.Term <= first.Term {
		t.Fatalf("terms %d then %d", first.Term, second.Term)
	}
	wait(a, failover.Standby)
	if err := a.store.SignAttestation(ctx, att(2, 3)); !errors.Is(err, slashing.ErrFenced) {
		t.Fatalf("the deposed leader's write = %v, want ErrFenced", err)
	}
	if err := b.store.SignAttestation(ctx, att(2, 3)); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
}

func att(source, target phase0.Epoch) slashing.Attestation {
	var a slashing.Attestation
	a.Pubkey[0] = 0xa1
	a.SourceEpoch, a.TargetEpoch = source, target
	a.SigningRoot[0] = byte(target)
	a.GenesisValidatorsRoot[0] = 1
	return a
}

func holderPID(t *testing.T, url string) uint32 {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var pid int32
	if err := c.QueryRow(context.Background(), "SELECT holder_pid FROM ha_lease WHERE id = 1").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return uint32(pid)
}

// A standby whose connection breaks while it waits for the leader lock: its server session
// must go (it holds the instance id), so that the restarted standby can register under the same
// id. (A real kill -9 of a waiting standby, which left the session behind before the election
// connections set client_connection_check_interval, is attacked by cmd/vigil's
// TestHAStandbyRestart with real processes.)
func TestKilledWaiterFreesItsID(t *testing.T) {
	url, _ := database(t)
	ctx := context.Background()
	a := backend(t, url, "a", time.Second)
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	b := backend(t, url, "b", time.Second)
	if err := b.Register(ctx); err != nil {
		t.Fatal(err)
	}
	raw := b.RawLockConn() // before Lock takes the connection's mutex
	locked := make(chan error, 1)
	go func() { locked <- b.Lock(ctx) }()
	// Wait until b's session waits on the lock (the server's view; polled, bounded).
	waitLockWaiter(t, url)
	_ = raw.Close() // the process dies: its socket closes, its backend is blocked in the lock
	<-locked
	again := backend(t, url, "b", time.Second)
	if err := again.Register(ctx); err != nil {
		t.Fatalf("the restarted standby cannot take its id back: %v", err)
	}
}

func waitLockWaiter(t *testing.T, url string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); <-tick.C {
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatal("nobody waits for the leader lock")
}

package failover

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/signer"
)

const (
	lease  = 5 * time.Second
	margin = time.Second
)

type testElector struct {
	*Elector
	b           *fakeBackend
	transitions chan Transition
}

// newTestElector returns an elector on db with a fake clock; fence defaults to db.
func newTestElector(t *testing.T, db *fakeDB, id string, fence Fence) *testElector {
	t.Helper()
	return newTestElectorWith(t, db, id, fence, nil)
}

// newTestElectorWith is newTestElector with mod applied to the config.
func newTestElectorWith(t *testing.T, db *fakeDB, id string, fence Fence, mod func(*Config)) *testElector {
	t.Helper()
	if fence == nil {
		fence = db
	}
	te := &testElector{b: &fakeBackend{db: db, id: id}, transitions: make(chan Transition, 64)}
	cfg := Config{ID: id, AdvertiseURL: "http://" + id, Backend: te.b, Fence: fence, Lease: lease, Margin: margin,
		Clock: db.clock, OnTransition: func(tr Transition) { te.transitions <- tr }}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.Elector = e
	t.Cleanup(e.Stop)
	return te
}

// next waits for the elector's next transition (event, not time).
func (te *testElector) next(t *testing.T) Transition {
	t.Helper()
	select {
	case tr := <-te.transitions:
		return tr
	case <-time.After(10 * time.Second): // a guard against a hung test
		t.Fatalf("%s: no transition", te.cfg.ID)
		return Transition{}
	}
}

func (te *testElector) wantTransition(t *testing.T, to Role) Transition {
	t.Helper()
	for {
		tr := te.next(t)
		if tr.To == to {
			return tr
		}
	}
}

func (te *testElector) start(t *testing.T) {
	t.Helper()
	if err := te.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tr := te.next(t); tr.To != Standby {
		t.Fatalf("first transition %+v, want standby", tr)
	}
}

// checkingFence records whether the elector already claimed leadership while the fence worked.
type checkingFence struct {
	db     *fakeDB
	e      func() *Elector
	mu     sync.Mutex
	leader []bool
}

func (f *checkingFence) SetTerm(ctx context.Context, term int64) error {
	f.mu.Lock()
	f.leader = append(f.leader, f.e().CheckLeader(ctx) == nil)
	f.mu.Unlock()
	return f.db.SetTerm(ctx, term)
}

// A new leader takes a term above the fence's, has the fence confirm it, and only then signs.
func TestPromotionFencesBeforeSigning(t *testing.T) {
	db := newFakeDB(newFakeClock())
	var te *testElector
	cf := &checkingFence{db: db, e: func() *Elector { return te.Elector }}
	te = newTestElector(t, db, "a", cf)
	if err := te.CheckLeader(context.Background()); !errors.Is(err, signer.ErrNotLeader) {
		t.Fatalf("before Start: CheckLeader = %v, want ErrNotLeader", err)
	}
	te.start(t)
	tr := te.wantTransition(t, Leader)
	if tr.Term != 2 {
		t.Errorf("first term = %d, want 2 (above the fence's initial 1)", tr.Term)
	}
	if !slices.Equal(db.fenceLog, []int64{2}) || !slices.Equal(cf.leader, []bool{false}) {
		t.Errorf("fence log %v, leader during SetTerm %v: want [2] and [false]", db.fenceLog, cf.leader)
	}
	if err := te.CheckLeader(context.Background()); err != nil {
		t.Errorf("leader: CheckLeader = %v", err)
	}
	if s := te.LeaderStatus(); s.Role != "leader" || s.Term != 2 || s.Leader != "a" {
		t.Errorf("status %+v", s)
	}
}

// A renewal that hangs past the trust window: signing stops when the window closes, by the
// local clock, before the renewal loop notices; then the elector is a standby.
func TestRenewHangingPastLease(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	db := newFakeDB(c)
	te := newTestElector(t, db, "a", nil)
	te.start(t)
	te.wantTransition(t, Leader)
	hang := make(chan struct{})
	defer close(hang)
	te.b.mu.Lock()
	te.b.hang = hang
	te.b.mu.Unlock()

	c.waitFor(t, t0.Add(lease/5)) // the renew period
	c.advance(lease / 5)
	c.waitFor(t, t0.Add(lease-margin)) // the hung renewal is bounded by the trust window
	if err := te.CheckLeader(context.Background()); err != nil {
		t.Fatalf("inside the trust window: %v", err)
	}
	c.advance(lease - margin - lease/5)
	// The window is closed now, whatever the loop is doing.
	var nl *NotLeaderError
	if err := te.CheckLeader(context.Background()); !errors.As(err, &nl) || !errors.Is(err, signer.ErrNotLeader) {
		t.Fatalf("after the trust window: CheckLeader = %v, want a NotLeaderError", err)
	}
	tr := te.wantTransition(t, Standby)
	if tr.Reason != "lease not renewed within the trust window" {
		t.Errorf("reason %q", tr.Reason)
	}
}

// A renewal that fails (connection lost) ends leadership at once, not at the window's end, and
// drops the election connections.
func TestLostConnectionStepsDownAtOnce(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	db := newFakeDB(c)
	te := newTestElector(t, db, "a", nil)
	te.start(t)
	te.wantTransition(t, Leader)
	te.b.mu.Lock()
	te.b.renewErr = errors.New("connection reset by peer")
	te.b.mu.Unlock()
	c.waitFor(t, t0.Add(lease/5))
	c.advance(lease / 5)
	tr := te.wantTransition(t, Standby)
	if tr.Reason != "renewal failed: connection reset by peer" {
		t.Errorf("reason %q", tr.Reason)
	}
	if err := te.CheckLeader(context.Background()); err == nil {
		t.Error("still signing after a failed renewal")
	}
	te.b.mu.Lock()
	resets := te.b.resets
	te.b.mu.Unlock()
	if resets == 0 {
		t.Error("the election connections were not dropped")
	}
}

// A take that returns a term not above one this instance held is refused: the elector never
// leads at a term that went down, and the fence never sees it.
func TestTermNeverDecreases(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	db := newFakeDB(c)
	te := newTestElector(t, db, "a", nil)
	took := make(chan int64, 4)
	takes := 0
	te.b.takeTerm = func(next int64) int64 { // called under te.b.mu
		takes++
		if takes == 1 {
			took <- next
			return next
		}
		took <- 1
		return 1 // a database restored from an old backup
	}
	te.start(t)
	te.wantTransition(t, Leader)
	te.b.mu.Lock()
	te.b.renewErr = errors.New("server closed the connection")
	te.b.mu.Unlock()
	c.waitFor(t, t0.Add(lease/5))
	c.advance(lease / 5)
	te.wantTransition(t, Standby)
	c.waitFor(t, c.Now().Add(250*time.Millisecond)) // the backoff after the lost lease
	te.b.mu.Lock()
	te.b.renewErr = nil
	te.b.mu.Unlock()
	c.advance(250 * time.Millisecond)
	<-took
	if got := <-took; got != 1 {
		t.Fatalf("second take %d", got)
	}
	c.waitFor(t, c.Now().Add(250*time.Millisecond)) // refused: backing off again
	if err := te.CheckLeader(context.Background()); err == nil {
		t.Error("leading at a term below one already held")
	}
	if !slices.Equal(db.fenceLog, []int64{2}) {
		t.Errorf("fence log %v, want [2]", db.fenceLog)
	}
}

// Two candidates started together: exactly one leads; when it stops, the other takes over at a
// higher term, and the fence's terms only go up.
func TestTwoCandidatesRacing(t *testing.T) {
	c := newFakeClock()
	db := newFakeDB(c)
	a, b := newTestElector(t, db, "a", nil), newTestElector(t, db, "b", nil)
	var wg sync.WaitGroup
	for _, te := range []*testElector{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); te.start(t) }()
	}
	wg.Wait()
	var leader, standby *testElector
	select {
	case tr := <-a.transitions:
		leader, standby = a, b
		a.transitions <- tr
	case tr := <-b.transitions:
		leader, standby = b, a
		b.transitions <- tr
	case <-time.After(10 * time.Second):
		t.Fatal("nobody leads")
	}
	first := leader.wantTransition(t, Leader)
	if standby.CheckLeader(context.Background()) == nil {
		t.Fatal("both instances sign")
	}
	leader.Stop()
	second := standby.wantTransition(t, Leader)
	if second.Term <= first.Term {
		t.Errorf("terms %d then %d: must increase", first.Term, second.Term)
	}
	if leader.CheckLeader(context.Background()) == nil {
		t.Error("the stopped leader still signs")
	}
	if !slices.IsSorted(db.fenceLog) || len(db.fenceLog) != 2 {
		t.Errorf("fence log %v", db.fenceLog)
	}
	var nl *NotLeaderError
	if err := leader.CheckLeader(context.Background()); !errors.As(err, &nl) {
		t.Fatalf("stopped: %v", err)
	}
}

// The slow path: a leader that is hung (its renewals hang, its session keeps the lock) is
// evicted once its lease has run out by the database clock; the standby then leads at a higher
// term, and the old one had stopped signing before.
func TestHungLeaderIsEvicted(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	db := newFakeDB(c)
	a := newTestElector(t, db, "a", nil)
	a.start(t)
	a.wantTransition(t, Leader)
	hang := make(chan struct{})
	defer close(hang)
	a.b.mu.Lock()
	a.b.hang = hang
	a.b.keepLock = true // a's Reset must not release the lock: a hung process's session stays on the server
	a.b.mu.Unlock()

	b := newTestElector(t, db, "b", nil)
	b.start(t)
	c.waitFor(t, t0.Add(lease/5))  // a waits to renew
	c.waitFor(t, t0.Add(lease/10)) // b observes
	if b.CheckLeader(context.Background()) == nil {
		t.Fatal("the standby signs while the lease is valid")
	}
	c.advance(lease + lease/5) // past a's trust window and its lease
	tr := b.wantTransition(t, Leader)
	if tr.Term != 3 {
		t.Errorf("b's term %d, want 3", tr.Term)
	}
	if a.CheckLeader(context.Background()) == nil {
		t.Error("the hung leader still signs after its lease ran out")
	}
	if db.fence != 3 {
		t.Errorf("fence %d, want 3: a's writes at term 2 must be fenced", db.fence)
	}
}

// A step-down request hands over and holds off: the other instance leads, this one waits.
func TestStepDownHandsOver(t *testing.T) {
	c := newFakeClock()
	db := newFakeDB(c)
	a := newTestElector(t, db, "a", nil)
	a.start(t)
	a.wantTransition(t, Leader)
	b := newTestElector(t, db, "b", nil)
	b.start(t)
	a.StepDown()
	tr := a.wantTransition(t, Standby)
	if tr.Reason != "step-down requested" {
		t.Errorf("reason %q", tr.Reason)
	}
	b.wantTransition(t, Leader)
	if a.CheckLeader(context.Background()) == nil {
		t.Error("both lead")
	}
	var nl *NotLeaderError
	if err := a.CheckLeader(context.Background()); !errors.As(err, &nl) {
		t.Fatal(err)
	}
}

// A standby syncs the shared keys at its first observation (a change made between its start and
// then is not missed) and whenever their version moves, never while it leads.
func TestStandbyFollowsSharedKeys(t *testing.T) {
	c := newFakeClock()
	db := newFakeDB(c)
	a := newTestElector(t, db, "a", nil)
	a.start(t)
	a.wantTransition(t, Leader)
	db.mu.Lock()
	db.keys = 5
	db.mu.Unlock()
	synced := make(chan int64, 16)
	b := newTestElectorWith(t, db, "b", nil, func(cfg *Config) {
		cfg.KeysChanged = func(_ context.Context, v int64) { synced <- v }
	})
	b.start(t)
	wantSync := func(want int64) {
		t.Helper()
		for {
			select {
			case v := <-synced:
				if v == want {
					return
				}
				t.Fatalf("synced at version %d, want %d", v, want)
			case <-time.After(10 * time.Second): // a guard against a hung test
				t.Fatalf("no sync at version %d", want)
			}
		}
	}
	wantSync(5) // the first observation
	db.mu.Lock()
	db.keys = 6
	db.mu.Unlock()
	for {
		c.advance(a.cfg.ObserveEvery) // renewals keep a leading; b observes again
		select {
		case v := <-synced:
			if v != 6 {
				t.Fatalf("synced at version %d, want 6", v)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

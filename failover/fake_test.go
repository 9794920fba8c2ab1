package failover

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test says so. Tests wait for the elector to be
// waiting on it (blockUntil) instead of sleeping.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{} // closed and replaced whenever waiters change
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	c.notify()
	return ch
}

func (c *fakeClock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// advance moves the clock on by d and fires every timer that is due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
	c.notify()
}

// fakeDB is the shared database of fake backends: one lock, one lease row, one fence.
type fakeDB struct {
	clock *fakeClock

	mu         sync.Mutex
	lockHolder string
	term       int64 // the lease's
	holder     string
	validUntil time.Time
	stepDown   bool
	fence      int64
	fenceLog   []int64
	changed    chan struct{}
	keys       int64 // the shared keystores' version (Lease.KeysVersion)
}

func newFakeDB(c *fakeClock) *fakeDB {
	return &fakeDB{clock: c, changed: make(chan struct{}), fence: 1}
}

func (db *fakeDB) notify() {
	close(db.changed)
	db.changed = make(chan struct{})
}

// kill ends id's session as a closed socket would: its lock is released.
func (db *fakeDB) kill(id string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.lockHolder == id {
		db.lockHolder = ""
		db.notify()
	}
}

// SetTerm is the fence.
func (db *fakeDB) SetTerm(_ context.Context, term int64) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if term < db.fence {
		return ErrDeposed
	}
	db.fence = term
	db.fenceLog = append(db.fenceLog, term)
	return nil
}

type fakeBackend struct {
	db *fakeDB
	id string

	mu       sync.Mutex
	renewErr error                           // returned by Renew when set
	hang     chan struct{}                   // Renew blocks until closed or ctx ends when set
	takeTerm func(next int64) int64          // rewrites Take's term when set
	resets   int                             //
	keepLock bool                            // Reset keeps the server-side lock (a hung or cut-off session)
	onRenew  func(ctx context.Context) error // extra hook
}

func (b *fakeBackend) Register(context.Context) error { return nil }

func (b *fakeBackend) Lock(ctx context.Context) error {
	for {
		b.db.mu.Lock()
		if b.db.lockHolder == "" || b.db.lockHolder == b.id {
			b.db.lockHolder = b.id
			b.db.mu.Unlock()
			return nil
		}
		ch := b.db.changed
		b.db.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (b *fakeBackend) Take(_ context.Context, lease time.Duration) (int64, error) {
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	next := max(b.db.term, b.db.fence) + 1
	b.mu.Lock()
	if b.takeTerm != nil {
		next = b.takeTerm(next)
	}
	b.mu.Unlock()
	b.db.term, b.db.holder, b.db.validUntil, b.db.stepDown = next, b.id, b.db.clock.Now().Add(lease), false
	return next, nil
}

func (b *fakeBackend) Renew(ctx context.Context, term int64, lease time.Duration) (bool, error) {
	b.mu.Lock()
	err, hang := b.renewErr, b.hang
	b.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	if err != nil {
		return false, err
	}
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	if b.db.holder != b.id || b.db.term != term || b.db.lockHolder != b.id {
		return false, ErrDeposed
	}
	b.db.validUntil = b.db.clock.Now().Add(lease)
	return b.db.stepDown, nil
}

func (b *fakeBackend) Release(_ context.Context, term int64) error {
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	if b.db.holder == b.id && b.db.term == term {
		b.db.validUntil = b.db.clock.Now()
	}
	if b.db.lockHolder == b.id {
		b.db.lockHolder = ""
		b.db.notify()
	}
	return nil
}

func (b *fakeBackend) Observe(context.Context) (Lease, error) {
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	now := b.db.clock.Now()
	return Lease{Holder: b.db.holder, Term: b.db.term, Valid: b.db.validUntil.After(now), StepDown: b.db.stepDown, KeysVersion: b.db.keys}, nil
}

func (b *fakeBackend) Evict(_ context.Context, term int64) (bool, error) {
	b.db.mu.Lock()
	defer b.db.mu.Unlock()
	if b.db.term == term && !b.db.validUntil.After(b.db.clock.Now()) && b.db.lockHolder != "" {
		b.db.lockHolder = ""
		b.db.notify()
		return true, nil
	}
	return false, nil
}

func (b *fakeBackend) Reset() {
	b.mu.Lock()
	b.resets++
	keep := b.keepLock
	b.mu.Unlock()
	if !keep {
		b.db.kill(b.id) // a dropped connection releases the lock
	}
}

func (b *fakeBackend) Close() { b.Reset() }

// waitFor waits until a timer due at exactly at is pending.
func (c *fakeClock) waitFor(t *testing.T, at time.Time) {
	t.Helper()
	deadline := time.After(10 * time.Second) // a guard against a hung test, not a pacing sleep
	for {
		c.mu.Lock()
		found, ch := false, c.changed
		for _, w := range c.waiters {
			if w.at.Equal(at) {
				found = true
			}
		}
		c.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no timer due at +%s was ever set", at.Sub(time.Unix(1_700_000_000, 0)))
		}
	}
}

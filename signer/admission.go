package signer

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// Admission of sign requests.
//
// The expensive part of a request (the slashing-protection write and the BLS signature) runs
// under one of Concurrency slots. A request that finds every slot taken waits for one in
// arrival order (FIFO): a slot that is freed is handed to the oldest waiter, never to whichever
// goroutine the scheduler happens to run first, so no request starves behind later ones. A
// request is refused at once with ErrOverloaded, before any work, when
//   - the queue holds MaxInFlight − Concurrency requests already, or
//   - its expected wait, (its place in the queue) × (the mean time a slot is held) ÷ Concurrency,
//     exceeds 3/4 of MaxQueueDelay (the margin keeps the estimate's misses rare);
//
// and a queued request that has not got a slot after MaxQueueDelay (the estimate was wrong) is
// refused then, still before any work. A queued request whose caller gives up (its context ends)
// leaves the queue without doing work: under overload the signer spends its CPU only on requests
// somebody still waits for, which keeps goodput at capacity instead of collapsing.
//
// Safety: admission decides only whether a request runs, never how; a refused request has
// touched neither the slashing database nor a key, so nothing is signed or recorded for it.

// admission is the FIFO gate in front of the signing work.
type admission struct {
	slots    int
	maxQueue int
	maxDelay time.Duration

	mu      sync.Mutex
	busy    int
	queue   list.List     // of *waiter, oldest first
	holdAvg time.Duration // exponentially weighted mean of how long a slot is held

	onQueued func() // tests: called when a request has joined the queue
}

type waiter struct {
	ready     chan struct{} // closed when the slot is handed over
	granted   bool          // under admission.mu
	grantedAt time.Time     // when: the slot is held from then, even before the waiter runs
}

func newAdmission(slots, maxInFlight int, maxDelay time.Duration) *admission {
	return &admission{slots: slots, maxQueue: max(maxInFlight-slots, 0), maxDelay: maxDelay}
}

// acquire returns when the caller holds a slot (release it with release(start)), or with
// ErrOverloaded, or with ctx's error.
func (a *admission) acquire(ctx context.Context) (time.Time, error) {
	a.mu.Lock()
	if a.busy < a.slots && a.queue.Len() == 0 {
		a.busy++
		a.mu.Unlock()
		return time.Now(), nil
	}
	if err := a.refuseLocked(); err != nil {
		a.mu.Unlock()
		return time.Time{}, err
	}
	w := &waiter{ready: make(chan struct{})}
	e := a.queue.PushBack(w)
	a.mu.Unlock()
	if a.onQueued != nil {
		a.onQueued()
	}

	timer := time.NewTimer(a.maxDelay)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return w.grantedAt, nil
	case <-timer.C:
		err = fmt.Errorf("%w: no signing slot within %s", ErrOverloaded, a.maxDelay)
	case <-ctx.Done():
		err = ctx.Err()
	}
	a.mu.Lock()
	granted := w.granted
	if !granted {
		a.queue.Remove(e)
	}
	a.mu.Unlock()
	if granted { // handed a slot as we gave up: pass it on
		a.handOff()
	}
	return time.Time{}, err
}

// release frees the slot taken at start.
func (a *admission) release(start time.Time) {
	held := time.Since(start)
	a.mu.Lock()
	if a.holdAvg == 0 {
		a.holdAvg = held
	} else {
		a.holdAvg += (held - a.holdAvg) / 16
	}
	a.mu.Unlock()
	a.handOff()
}

// handOff gives a held slot to the oldest waiter, or frees it.
func (a *admission) handOff() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.queue.Front(); e != nil {
		w := a.queue.Remove(e).(*waiter)
		w.granted, w.grantedAt = true, time.Now()
		close(w.ready)
		return
	}
	a.busy--
}

// refusing is the error acquire would return at once for a request arriving now, or nil when it
// would get a slot or a place in the queue.
func (a *admission) refusing() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.busy < a.slots && a.queue.Len() == 0 {
		return nil
	}
	return a.refuseLocked()
}

// refuseLocked is the refusal of a request that would join the queue now, or nil.
func (a *admission) refuseLocked() error {
	queued := a.queue.Len()
	if queued >= a.maxQueue {
		return fmt.Errorf("%w: %d requests running and %d queued", ErrOverloaded, a.busy, queued)
	}
	// The estimate is a mean: admit up to 3/4 of the bound, so that few of the admitted run
	// over it and are refused after waiting.
	if wait := time.Duration(int64(queued+1) * int64(a.holdAvg) / int64(a.slots)); wait > a.maxDelay*3/4 {
		return fmt.Errorf("%w: %d requests queued, about %s to wait for a signing slot (at most %s admitted)",
			ErrOverloaded, queued, wait.Round(time.Millisecond), a.maxDelay*3/4)
	}
	return nil
}

// load reports the requests running and queued now.
func (a *admission) load() (running, queued int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.busy, a.queue.Len()
}

package signer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// queueWatch makes a's queue announce each request that joins it.
func queueWatch(a *admission) <-chan struct{} {
	ch := make(chan struct{}, 64)
	a.onQueued = func() { ch <- struct{}{} }
	return ch
}

// TestAdmissionServesInArrivalOrder: with every slot taken, freed slots go to the waiters in
// the order they came, whatever the scheduler would pick.
func TestAdmissionServesInArrivalOrder(t *testing.T) {
	a := newAdmission(1, 100, time.Minute)
	queued := queueWatch(a)
	held, err := a.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	order := make(chan int, n)
	for i := range n {
		go func() {
			start, err := a.acquire(t.Context())
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				order <- -1
				return
			}
			order <- i
			a.release(start)
		}()
		<-queued // the next waiter joins only after this one is queued
	}
	if running, q := a.load(); running != 1 || q != n {
		t.Fatalf("load = %d running, %d queued; want 1, %d", running, q, n)
	}
	a.release(held)
	for want := range n {
		if got := <-order; got != want {
			t.Fatalf("slot %d went to waiter %d, want %d (arrival order)", want, got, want)
		}
	}
	if running, q := a.load(); running != 0 || q != 0 {
		t.Errorf("after all: %d running, %d queued; want 0, 0", running, q)
	}
}

// TestAdmissionRefusesAtOnceWhenTheWaitWouldBeTooLong: the expected wait is judged on arrival,
// so the excess is refused without waiting.
func TestAdmissionRefusesAtOnceWhenTheWaitWouldBeTooLong(t *testing.T) {
	a := newAdmission(2, 100, 100*time.Millisecond)
	queued := queueWatch(a)
	for range 2 {
		if _, err := a.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	a.holdAvg = 45 * time.Millisecond // two slots: the third waiter expects 67 ms (admitted up to 75), the fourth 90
	for range 3 {
		go func() { _, _ = a.acquire(context.Background()) }()
		<-queued
	}
	start := time.Now()
	_, err := a.acquire(t.Context())
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("fourth waiter: err %v, want ErrOverloaded", err)
	}
	if d := time.Since(start); d >= a.maxDelay {
		t.Errorf("refusal took %v: it waited, want at once", d)
	}
	if _, q := a.load(); q != 3 {
		t.Errorf("queue = %d, want the 3 that may wait", q)
	}
}

// TestAdmissionQueueBound: beyond MaxInFlight (running + queued) a request is refused at once.
func TestAdmissionQueueBound(t *testing.T) {
	a := newAdmission(1, 3, time.Minute)
	queued := queueWatch(a)
	if _, err := a.acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		go func() { _, _ = a.acquire(context.Background()) }()
		<-queued
	}
	if _, err := a.acquire(t.Context()); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("fourth request with room for 3: err %v, want ErrOverloaded", err)
	}
}

// TestAdmissionRefusesAWaitThatRanOver: a waiter that gets no slot within MaxQueueDelay is
// refused then, and leaves the queue.
func TestAdmissionRefusesAWaitThatRanOver(t *testing.T) {
	a := newAdmission(1, 10, 20*time.Millisecond)
	held, err := a.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = a.acquire(t.Context())
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("waiter past the delay: err %v, want ErrOverloaded", err)
	}
	if d := time.Since(start); d < a.maxDelay {
		t.Errorf("refused after %v, before the %v bound", d, a.maxDelay)
	}
	if _, q := a.load(); q != 0 {
		t.Errorf("queue = %d after the refusal, want 0", q)
	}
	a.release(held)
	if running, _ := a.load(); running != 0 {
		t.Errorf("%d running after release, want 0", running)
	}
}

// TestAdmissionCallerGivesUp: a waiter whose caller leaves does no work and does not keep the
// slot from the next one.
func TestAdmissionCallerGivesUp(t *testing.T) {
	a := newAdmission(1, 10, time.Minute)
	queued := queueWatch(a)
	held, err := a.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan error, 1)
	go func() { _, err := a.acquire(ctx); gaveUp <- err }()
	<-queued
	next := make(chan error, 1)
	go func() {
		start, err := a.acquire(t.Context())
		if err == nil {
			a.release(start)
		}
		next <- err
	}()
	<-queued
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: err %v, want context.Canceled", err)
	}
	a.release(held)
	if err := <-next; err != nil {
		t.Fatalf("next waiter: %v", err)
	}
	if running, q := a.load(); running != 0 || q != 0 {
		t.Errorf("after all: %d running, %d queued; want 0, 0", running, q)
	}
}

// TestAdmissionGrantRacingCancel: a slot handed to a waiter at the moment it gives up is passed
// on, not lost (run many times: the two orders interleave).
func TestAdmissionGrantRacingCancel(t *testing.T) {
	a := newAdmission(1, 10, time.Minute)
	for range 2000 {
		held, err := a.acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if start, err := a.acquire(ctx); err == nil {
				a.release(start)
			}
		}()
		go cancel()
		a.release(held)
		<-done
		if running, q := a.load(); running != 0 || q != 0 {
			t.Fatalf("slot lost: %d running, %d queued; want 0, 0", running, q)
		}
	}
}

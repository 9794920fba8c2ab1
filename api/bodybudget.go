package api

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBufferedBytes bounds the request-body bytes buffered across all connections at once.
const DefaultMaxBufferedBytes = 32 << 20

// BodyBudget is a process-wide bound on buffered request bodies. A request reserves its
// Content-Length (or the body limit when it has none) before the first body byte is read and
// releases it when its handler returns, so the decoded request and the signing that follows stay
// inside the reservation too. When a reservation does not fit, the request is answered 503 at
// once: many large bodies cannot take the process to gigabytes, and small requests (almost every
// real one is 1-2 KiB) keep fitting.
//
// After a large peak drains, the budget hands the freed heap back to the operating system
// (debug.FreeOSMemory, at most once per FreeInterval): without it the Go runtime keeps the pages
// for minutes and RSS stays at the peak.
type BodyBudget struct {
	max      int64
	reserved atomic.Int64
	rejected atomic.Uint64

	// FreeThreshold is the peak (bytes reserved at once) above which draining frees memory
	// (default the smaller of 8 MiB and half the budget); FreeInterval the least time between two
	// frees (default 5 s). Set before use.
	FreeThreshold int64
	FreeInterval  time.Duration

	mu        sync.Mutex
	peak      int64     // largest reservation total since the last free
	lastFree  time.Time // when memory was last handed back
	scheduled bool      // a free is pending on a timer
	freeOS    func()    // debug.FreeOSMemory; replaced in tests
}

// NewBodyBudget returns a budget of max bytes (<= 0: DefaultMaxBufferedBytes).
func NewBodyBudget(max int64) *BodyBudget {
	if max <= 0 {
		max = DefaultMaxBufferedBytes
	}
	return &BodyBudget{max: max, FreeThreshold: min(8<<20, max/2), FreeInterval: 5 * time.Second, freeOS: debug.FreeOSMemory}
}

// Max is the budget in bytes.
func (b *BodyBudget) Max() int64 { return b.max }

// Reserved is the number of bytes reserved now.
func (b *BodyBudget) Reserved() int64 { return b.reserved.Load() }

// Rejected counts reservations refused since start.
func (b *BodyBudget) Rejected() uint64 { return b.rejected.Load() }

// Reserve takes n bytes of the budget; false (nothing taken) when they do not fit.
func (b *BodyBudget) Reserve(n int64) bool {
	for {
		cur := b.reserved.Load()
		if cur+n > b.max {
			b.rejected.Add(1)
			return false
		}
		if b.reserved.CompareAndSwap(cur, cur+n) {
			if cur+n >= b.FreeThreshold {
				b.mu.Lock()
				b.peak = max(b.peak, cur+n)
				b.mu.Unlock()
			}
			return true
		}
	}
}

// Release returns n bytes reserved earlier.
func (b *BodyBudget) Release(n int64) {
	left := b.reserved.Add(-n)
	if left > b.FreeThreshold/4 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.peak < b.FreeThreshold || b.scheduled {
		return
	}
	wait := b.FreeInterval - time.Since(b.lastFree)
	b.scheduled = true
	if wait <= 0 {
		go b.free()
		return
	}
	time.AfterFunc(wait, b.free)
}

func (b *BodyBudget) free() {
	b.mu.Lock()
	b.scheduled = false
	if b.reserved.Load() > b.FreeThreshold/4 { // a new burst started: the next drain frees
		b.mu.Unlock()
		return
	}
	b.peak, b.lastFree = 0, time.Now()
	b.mu.Unlock()
	b.freeOS()
}

package failover

import "time"

// Clock is the elector's time source: the wall of the process, or a fake one in tests (so a test
// moves time on and sees the elector react, instead of sleeping).
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

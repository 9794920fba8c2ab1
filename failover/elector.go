package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-signer/vigil/signer"
)

// Role is what an instance of the pair does now.
type Role string

const (
	// Standby: keys loaded, store open, not signing; campaigning for the lock.
	Standby Role = "standby"
	// Leader: holds the lock and a lease it has renewed within the trust window, at a term the
	// store's fence has confirmed; the only role that signs.
	Leader Role = "leader"
	// Stopped: before Start and after Stop.
	Stopped Role = "stopped"
)

// Errors of the election vocabulary.
var (
	// ErrDuplicateID: another live instance uses this instance id.
	ErrDuplicateID = errors.New("another live instance uses this instance id")
	// ErrDeposed: the lease is no longer this instance's at its term (a newer leader took it).
	ErrDeposed = errors.New("the lease belongs to another leader now")
)

// Lease is the lease row as a Backend reads it. Ages and validity are computed by the
// database's clock.
type Lease struct {
	Holder       string // instance id of the leader that took it last ("" never held)
	Term         int64
	AdvertiseURL string
	Age          time.Duration // since its last renewal
	Valid        bool          // valid_until is still ahead of the database's now()
	StepDown     bool          // `vigil ha step-down` asked the holder to hand over
	KeysVersion  int64         // fingerprint of the shared managed keystores: changes with every write (Config.Promote syncs them)
}

// Backend is the election's storage: a lock that a dead process's closed connection releases, a
// lease row on the database clock, and the eviction of a hung holder. failover/pgelect
// implements it on Postgres. Lock runs concurrently with Observe and Evict (separate
// connections); the other calls are made one at a time.
type Backend interface {
	// Register claims the instance id among live instances (ErrDuplicateID when taken).
	Register(ctx context.Context) error
	// Lock blocks until this instance holds the leader lock or ctx ends.
	Lock(ctx context.Context) error
	// Take takes the lease while holding the lock: a term greater than every term the
	// database has seen (lease and fence), holder, advertise URL, valid for lease from the
	// database's now(). Returns the new term.
	Take(ctx context.Context, lease time.Duration) (int64, error)
	// Renew extends the lease held at term by lease from the database's now(); ErrDeposed when
	// it is no longer this instance's. It reports a pending step-down request.
	Renew(ctx context.Context, term int64, lease time.Duration) (stepDown bool, err error)
	// Release ends the lease held at term at once and releases the lock.
	Release(ctx context.Context, term int64) error
	// Observe reads the lease row.
	Observe(ctx context.Context) (Lease, error)
	// Evict ends the election session of the holder of the lease at term if that lease has
	// expired by the database's clock (a hung or cut-off leader still holding the lock); it
	// reports whether it did.
	Evict(ctx context.Context, term int64) (bool, error)
	// Reset drops the election connections after an error; the next call reconnects. A lock
	// held on them is released when the server notices.
	Reset()
	// Close releases everything.
	Close()
}

// Fence is the slashing store's term fence (slashing/postgres.Store.SetTerm): once SetTerm(t)
// returns, no write with a term below t can commit.
type Fence interface {
	SetTerm(ctx context.Context, term int64) error
}

// Transition is one change of role, reported to Config.OnTransition and logged.
type Transition struct {
	From, To Role
	Term     int64
	Reason   string
}

// Config configures an Elector.
type Config struct {
	ID           string // instance id (unique among live instances)
	AdvertiseURL string // shown by the standby
	Backend      Backend
	Fence        Fence
	// Lease is the lease length (default 5s). Margin is how long before the lease would run out
	// the leader stops trusting it (default Lease/5): the trust window is Lease − Margin from
	// the start of the last successful renew attempt.
	Lease, Margin time.Duration
	// RenewEvery is the leader's renew period (default Lease/5); ObserveEvery the standby's
	// lease poll (default Lease/10, at most 500ms), which bounds the slow path's detection.
	RenewEvery, ObserveEvery time.Duration
	// Backoff is the wait after a failed election call (default 250ms).
	Backoff time.Duration
	// Promote runs after the fence confirmed a new term and before the instance signs (shared
	// keystores are synced here). Its error is logged; it does not stop the promotion.
	Promote func(ctx context.Context, term int64) error
	// KeysChanged runs on a standby when the observed KeysVersion changes, and at the first
	// observation after it became standby.
	KeysChanged func(ctx context.Context, version int64)
	// OnTransition sees every change of role (metrics, tests). It must not block.
	OnTransition func(Transition)
	// OnRenew sees the duration and result of every renew attempt (metrics).
	OnRenew func(d time.Duration, err error)
	Clock   Clock
	Logger  *slog.Logger
}

func (c *Config) defaults() error {
	if c.ID == "" || c.Backend == nil || c.Fence == nil {
		return errors.New("failover: Config needs ID, Backend and Fence")
	}
	if c.Lease == 0 {
		c.Lease = 5 * time.Second
	}
	if c.Margin == 0 {
		c.Margin = c.Lease / 5
	}
	if c.Margin <= 0 || c.Margin >= c.Lease {
		return fmt.Errorf("failover: margin %s must be within (0, lease %s)", c.Margin, c.Lease)
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = c.Lease / 5
	}
	if c.RenewEvery >= c.Lease-c.Margin {
		return fmt.Errorf("failover: renew period %s leaves no renewal inside the trust window %s", c.RenewEvery, c.Lease-c.Margin)
	}
	if c.ObserveEvery == 0 {
		c.ObserveEvery = min(c.Lease/10, 500*time.Millisecond)
	}
	if c.Backoff == 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Status is what an instance knows of the pair.
type Status struct {
	Role       Role
	Instance   string
	Term       int64  // this instance's term while leader; else the lease's last observed term
	Leader     string // the lease holder as last observed ("" none known)
	LeaderURL  string
	LeaseAge   time.Duration // age of the lease at the last observation (database clock)
	LeaseValid bool
	Observed   time.Time // when the lease was last read (or renewed)

	trustUntil time.Time // leader: signing stops here unless a renewal moves it
}

// Elector runs this instance's side of the election (see the package doc for the state
// machine and the safety argument). It implements signer.Leadership.
type Elector struct {
	cfg    Config
	status atomic.Pointer[Status]

	mu       sync.Mutex // guards lastTerm, cancel, done
	lastTerm int64
	cancel   context.CancelFunc
	done     chan struct{}
	stepDown chan struct{}
}

var _ signer.Leadership = (*Elector)(nil)

// New returns an elector in role Stopped.
func New(cfg Config) (*Elector, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e := &Elector{cfg: cfg, stepDown: make(chan struct{}, 1)}
	e.status.Store(&Status{Role: Stopped, Instance: cfg.ID})
	return e, nil
}

// Name implements the lifecycle's service.
func (e *Elector) Name() string { return "HA elector" }

// Start registers the instance id (a duplicate of a live instance fails Start) and starts
// campaigning in the background. It returns once the instance is a standby.
func (e *Elector) Start(ctx context.Context) error {
	if err := e.cfg.Backend.Register(ctx); err != nil {
		return fmt.Errorf("HA elector: instance id %q: %w", e.cfg.ID, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Lock()
	e.cancel, e.done = cancel, make(chan struct{})
	e.mu.Unlock()
	e.transition(Standby, 0, "started")
	go func() {
		defer close(e.done)
		e.run(runCtx)
	}()
	return nil
}

// Stop hands over: it stops signing at once, releases the lease and the lock (so the standby
// takes over without waiting for the lease to run out) and closes the backend. The lifecycle
// calls it after the listeners have drained, so no signature is in flight.
func (e *Elector) Stop() {
	e.mu.Lock()
	cancel, done := e.cancel, e.done
	e.cancel = nil
	e.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	e.cfg.Backend.Close()
}

// StepDown asks a leader to hand over (as `vigil ha step-down` does through the database).
func (e *Elector) StepDown() {
	select {
	case e.stepDown <- struct{}{}:
	default:
	}
}

// Status returns what the instance knows of the pair now.
func (e *Elector) Status() Status {
	s := *e.status.Load()
	if s.Role == Leader && !e.cfg.Clock.Now().Before(s.trustUntil) {
		s.Role = Standby // the trust window closed; the loop has not caught up yet
	}
	return s
}

// LeaderStatus implements signer.LeaderReporter (the health endpoints).
func (e *Elector) LeaderStatus() signer.LeaderStatus {
	s := e.Status()
	return signer.LeaderStatus{Role: string(s.Role), Instance: s.Instance, Leader: s.Leader, LeaderURL: s.LeaderURL,
		Term: s.Term, LeaseAge: s.LeaseAge, LeaseValid: s.LeaseValid}
}

// CheckLeader implements signer.Leadership: nil only while this instance is the leader and its
// trust window is open. A local check: no database round trip.
func (e *Elector) CheckLeader(context.Context) error {
	s := e.status.Load()
	if s.Role == Leader && e.cfg.Clock.Now().Before(s.trustUntil) {
		return nil
	}
	return &NotLeaderError{Leader: s.Leader, URL: s.LeaderURL, Self: s.Instance, LeaderValid: s.LeaseValid}
}

// NotLeaderError is CheckLeader's refusal: it names the active instance when one is known.
type NotLeaderError struct {
	Self, Leader, URL string
	LeaderValid       bool
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" || e.Leader == e.Self || !e.LeaderValid {
		return "standby: no active instance holds the lease right now (an election is under way)"
	}
	url := e.URL
	if url == "" {
		url = "(no advertised URL)"
	}
	return "standby: the active instance is " + e.Leader + " at " + url
}

// Unwrap makes the refusal match signer.ErrNotLeader (503, outcome not_leader).
func (e *NotLeaderError) Unwrap() error { return signer.ErrNotLeader }

func (e *Elector) publish(s Status) { e.status.Store(&s) }

func (e *Elector) transition(to Role, term int64, reason string) {
	prev := *e.status.Load()
	s := prev
	s.Role = to
	if to == Leader {
		s.Leader, s.LeaderURL, s.LeaseValid, s.LeaseAge = e.cfg.ID, e.cfg.AdvertiseURL, true, 0
	}
	if term != 0 {
		s.Term = term
	}
	if to != Leader {
		s.trustUntil = time.Time{}
	}
	e.publish(s)
	if prev.Role == to {
		return
	}
	e.cfg.Logger.Info("ha transition", "from", string(prev.Role), "to", string(to), "term", s.Term, "instance", e.cfg.ID, "reason", reason)
	if e.cfg.OnTransition != nil {
		e.cfg.OnTransition(Transition{From: prev.Role, To: to, Term: s.Term, Reason: reason})
	}
}

// run alternates between campaigning (standby) and leading until ctx ends.
func (e *Elector) run(ctx context.Context) {
	defer func() {
		if s := e.status.Load(); s.Role == Leader {
			e.resign(s.Term, "shutting down")
		}
		e.transition(Stopped, 0, "stopped")
	}()
	holdUntil := time.Time{}
	for ctx.Err() == nil {
		term, err := e.campaign(ctx, holdUntil)
		holdUntil = time.Time{}
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.Warn("ha: election call failed; retrying", "err", err, "instance", e.cfg.ID)
				e.cfg.Backend.Reset()
				e.wait(ctx, e.cfg.Backoff)
			}
			continue
		}
		if e.lead(ctx, term) {
			holdUntil = e.cfg.Clock.Now().Add(2 * e.cfg.Lease) // stepped down: let the other one lead
		} else if ctx.Err() == nil {
			e.wait(ctx, e.cfg.Backoff)
		}
	}
}

// wait waits d on the elector's clock, or until ctx ends.
func (e *Elector) wait(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-e.cfg.Clock.After(d):
	}
}

// call runs fn with a context that ends at deadline by the elector's clock (or with ctx), and
// returns errTrustWindow if the deadline came first (fn's context is cancelled then; its late
// result is dropped).
func (e *Elector) call(ctx context.Context, deadline time.Time, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- fn(cctx) }()
	wait := deadline.Sub(e.cfg.Clock.Now())
	if wait <= 0 {
		return errTrustWindow
	}
	select {
	case err := <-res:
		return err
	case <-e.cfg.Clock.After(wait):
		return errTrustWindow
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errTrustWindow = errors.New("the trust window closed before the database answered")

// campaign waits for the lock while observing the lease (evicting a holder whose lease has run
// out by the database clock), then takes the lease, has the fence confirm the new term, and
// returns that term with the trust window open. Before holdUntil it only observes.
func (e *Elector) campaign(ctx context.Context, holdUntil time.Time) (int64, error) {
	lockCtx, cancelLock := context.WithCancel(ctx)
	defer cancelLock()
	var locked chan error
	startLock := func() {
		locked = make(chan error, 1)
		go func() { locked <- e.cfg.Backend.Lock(lockCtx) }()
	}
	if holdUntil.IsZero() {
		startLock()
	}
	var keysVersion int64 = -1
	for {
		e.observe(ctx, &keysVersion, holdUntil.IsZero())
		if locked == nil && !e.cfg.Clock.Now().Before(holdUntil) {
			startLock()
		}
		if locked == nil {
			if s := e.status.Load(); s.LeaseValid && s.Leader != "" && s.Leader != e.cfg.ID {
				startLock() // another instance leads: the hold-off after a step-down is over
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case err := <-locked:
			if err != nil {
				return 0, fmt.Errorf("waiting for the leader lock: %w", err)
			}
			return e.promote(ctx)
		case <-e.cfg.Clock.After(e.cfg.ObserveEvery):
		}
	}
}

// observe reads the lease for Status, syncs changed shared keys, and (when evict) evicts a
// holder whose lease has expired by the database's clock.
func (e *Elector) observe(ctx context.Context, keysVersion *int64, evict bool) {
	octx, cancel := context.WithTimeout(ctx, e.cfg.Lease)
	defer cancel()
	l, err := e.cfg.Backend.Observe(octx)
	if err != nil {
		s := *e.status.Load()
		s.LeaseValid = false
		e.publish(s)
		if ctx.Err() == nil {
			e.cfg.Logger.Debug("ha: cannot read the lease", "err", err)
		}
		return
	}
	s := *e.status.Load()
	s.Leader, s.LeaderURL, s.LeaseAge, s.LeaseValid, s.Observed = l.Holder, l.AdvertiseURL, l.Age, l.Valid, e.cfg.Clock.Now()
	if s.Role != Leader {
		s.Term = l.Term
	}
	e.publish(s)
	if *keysVersion != l.KeysVersion {
		// Also at the first observation of a campaign (-1): a change made between this
		// instance's last sync (at start, or while it led) and now is not missed.
		if e.cfg.KeysChanged != nil {
			e.cfg.KeysChanged(ctx, l.KeysVersion)
		}
		*keysVersion = l.KeysVersion
	}
	if evict && !l.Valid && l.Holder != "" && l.Holder != e.cfg.ID {
		ok, err := e.cfg.Backend.Evict(octx, l.Term)
		switch {
		case err != nil:
			e.cfg.Logger.Warn("ha: cannot evict the leader whose lease ran out", "leader", l.Holder, "term", l.Term, "err", err)
		case ok:
			e.cfg.Logger.Warn("ha: the leader's lease ran out by the database clock; ended its election session", "leader", l.Holder, "term", l.Term, "lease_age", l.Age.Round(time.Millisecond))
		}
	}
}

// promote takes the lease (holding the lock), then has the fence confirm the term, then runs
// Promote, then renews once: only after all of that may the instance sign.
func (e *Elector) promote(ctx context.Context) (int64, error) {
	start := e.cfg.Clock.Now()
	trust := start.Add(e.cfg.Lease - e.cfg.Margin)
	var term int64
	err := e.call(ctx, trust, func(ctx context.Context) (err error) {
		term, err = e.cfg.Backend.Take(ctx, e.cfg.Lease)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("taking the lease: %w", err)
	}
	e.mu.Lock()
	last := e.lastTerm
	if term > last {
		e.lastTerm = term
	}
	e.mu.Unlock()
	if term <= last {
		e.resign(term, "term did not increase")
		return 0, fmt.Errorf("taking the lease gave term %d, not above term %d this instance held: refusing it", term, last)
	}
	if err := e.call(ctx, trust, func(ctx context.Context) error { return e.cfg.Fence.SetTerm(ctx, term) }); err != nil {
		e.resign(term, "fence refused")
		return 0, fmt.Errorf("fencing term %d: %w", term, err)
	}
	if e.cfg.Promote != nil {
		if err := e.call(ctx, trust, func(ctx context.Context) error { return e.cfg.Promote(ctx, term) }); err != nil {
			e.cfg.Logger.Warn("ha: promotion hook failed; leading anyway", "term", term, "err", err)
		}
	}
	// Renew once so the trust window counts from now, not from before the fence waited.
	if _, err := e.renew(ctx, term, trust); err != nil {
		e.resign(term, "first renewal failed")
		return 0, fmt.Errorf("renewing the new lease: %w", err)
	}
	return term, nil
}

// renew renews the lease at term; on success the trust window moves to (attempt start + lease
// − margin). deadline bounds the attempt (the current end of the trust window).
func (e *Elector) renew(ctx context.Context, term int64, deadline time.Time) (stepDown bool, err error) {
	start := e.cfg.Clock.Now()
	err = e.call(ctx, deadline, func(ctx context.Context) (err error) {
		stepDown, err = e.cfg.Backend.Renew(ctx, term, e.cfg.Lease)
		return err
	})
	if e.cfg.OnRenew != nil {
		e.cfg.OnRenew(e.cfg.Clock.Now().Sub(start), err)
	}
	if err != nil {
		return false, err
	}
	s := *e.status.Load()
	s.trustUntil = start.Add(e.cfg.Lease - e.cfg.Margin)
	s.Term, s.LeaseAge, s.LeaseValid, s.Observed = term, 0, true, start
	e.publish(s)
	return stepDown, nil
}

// lead signs at term until the lease is lost, a step-down is asked, or ctx ends. It reports
// whether the instance stepped down on request.
func (e *Elector) lead(ctx context.Context, term int64) (steppedDown bool) {
	e.transition(Leader, term, "took the lease")
	for {
		select {
		case <-ctx.Done():
			return false // run's defer resigns
		case <-e.stepDown:
			e.resign(term, "step-down requested")
			return true
		case <-e.cfg.Clock.After(e.cfg.RenewEvery):
		}
		trust := e.status.Load().trustUntil
		stepDown, err := e.renew(ctx, term, trust)
		switch {
		case err == nil && stepDown:
			e.resign(term, "step-down requested (vigil ha step-down)")
			return true
		case err == nil:
			continue
		case ctx.Err() != nil:
			return false
		case errors.Is(err, ErrDeposed):
			e.transition(Standby, 0, "deposed: "+err.Error())
		case errors.Is(err, errTrustWindow):
			e.transition(Standby, 0, "lease not renewed within the trust window")
		default:
			e.transition(Standby, 0, "renewal failed: "+err.Error())
		}
		e.cfg.Backend.Reset() // the lock may still be ours on a connection we no longer trust
		return false
	}
}

// resign stops signing at once, then releases the lease and the lock (bounded by one lease).
func (e *Elector) resign(term int64, reason string) {
	e.transition(Standby, 0, reason)
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Lease)
	defer cancel()
	if err := e.call(ctx, e.cfg.Clock.Now().Add(e.cfg.Lease), func(ctx context.Context) error { return e.cfg.Backend.Release(ctx, term) }); err != nil {
		e.cfg.Logger.Warn("ha: releasing the lease failed; the standby takes over when it runs out", "term", term, "err", err)
		e.cfg.Backend.Reset()
	}
}

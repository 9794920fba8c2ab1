// Package controller is validator-client failover: on the HA leader, once per epoch, it
// decides from Vigil's own request stream (failover/watch) whether each active validator client
// (VC) is doing its duties, and moves the keys of a failed one to a healthy standby VC, fencing
// the failed one out. Its state (consecutive misses, fenced clients, the audit log) lives in the
// slashing database (slashing.FailoverLedger), so a new leader resumes it.
//
// # Policy, evaluated at the end of each epoch E plus a grace
//
//   - The chain must be healthy: a beacon node answers, is not syncing, and its head advanced
//     since the last evaluation. Otherwise nothing is counted and nothing moves.
//   - An unfenced client (active, or a standby once keys were moved to it) with at least one
//     active validator among its keys missed E when
//     none of those keys had an ATTESTATION requested by it for target E. Keys that are not
//     active validators (pending, exited) are not expected to attest. A client that received keys
//     recently is not counted for HoldAfterMove epochs (a VC's doppelganger delay).
//   - A miss that the beacon node contradicts (liveness: one of the client's validators was seen
//     attesting in E) is not counted: the requests went to another Vigil instance before a
//     takeover, or this instance restarted. Liveness only vetoes; a beacon node that restarted
//     and reports nothing live never causes a move, as Vigil's own stream must show the miss.
//   - A client has failed when it missed K consecutive epochs (Config.MissedEpochs).
//   - No move when every active client with active keys failed in the same evaluation (a common
//     cause: the beacon node, the network, Vigil itself); no move to a standby that is fenced,
//     whose keymanager does not answer, or (hot standby) that sent no request lately.
//   - A move is one transaction (slashing.FailoverLedger.MoveKeys: assignment flip, the failed
//     client fenced, the audit record); from then on the failed client's requests for those keys
//     get 403 and the standby's are signed. A fenced client stays fenced until an operator runs
//     `vigil failover unfence`.
//
// # Quick detection, between the epoch evaluations
//
// In the middle of every slot (QuickCheck): a judged client that this instance has seen attest,
// whose last ATTESTATION request (any key) is more than K epochs plus the grace old, and that
// has held keys for at least that long (a client given keys back after an unfence starts
// afresh), has failed, under the same guards and with the same move as an epoch evaluation. Every active
// key has exactly one attestation duty per epoch, so two requests of a healthy client are
// never more than two epochs less a slot apart: for K ≥ 2 the silence cannot be a healthy
// client's (K = 1 has no quick path). It judges a client killed right after its last request
// K epochs and the grace later, in the middle of an epoch rather than at the end of the next,
// so the standby (which holds its duties: it is given selection proofs) signs the rest of that
// epoch's duties: at most K + 1 epochs missed per moved key.
//
// # Keys on the VCs: reconciled, so a new leader rolls any move forward
//
// Every evaluation, for each standby S that is healthy: hot standby (default) stages on S every
// key of the active clients and every key assigned to S (POST /eth/v1/remotekeys with S's
// signer URL; S's requests for keys not yet moved get 403, which proves it alive and holding
// the duties); cold mode stages only the keys assigned to S. In cold mode the keys of a fenced
// client are deleted from its VC, repeated every evaluation until its keymanager no longer lists
// them (Lodestar 1.5.1 answers "deleted" to a first DELETE and keeps signing).
//
// # Safety
//
// The controller never signs and never touches slashing history: it only changes which client
// the signer's Authorizer lets use a key (failover/assignment). Every signature, whichever VC
// asks, is still checked and recorded in the one slashing database before it is released, so
// no move (a wrong one included, or two leaders disagreeing) can release a slashable pair; the
// worst a wrong move does is make the wrong VC the signer of a key until an operator moves it
// back. Ledger writes are fenced by the HA term (Postgres), so a deposed leader moves nothing.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/failover/beacon"
	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/failover/remotekeys"
	"github.com/vigil-signer/vigil/failover/watch"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// Beacon is what the controller reads from beacon nodes (failover/beacon.Client).
type Beacon interface {
	Syncing(ctx context.Context) (beacon.Sync, error)
	Validators(ctx context.Context, keys []phase0.BLSPubKey) (map[phase0.BLSPubKey]beacon.Validator, error)
	Liveness(ctx context.Context, epoch phase0.Epoch, indices []phase0.ValidatorIndex) (map[phase0.ValidatorIndex]bool, error)
}

// VCs reaches each client's keymanager (remotekeys).
type VCs interface {
	List(ctx context.Context, c *clients.Client) ([]remotekeys.Key, error)
	Import(ctx context.Context, c *clients.Client, pubkeys []string, signerURL string) ([]remotekeys.Result, error)
	Delete(ctx context.Context, c *clients.Client, pubkeys []string) ([]remotekeys.Result, error)
}

// Tracker is Vigil's own request stream (failover/watch.Tracker).
type Tracker interface {
	AttestedBy(client string, key signer.PublicKey, epoch phase0.Epoch) bool
	AttestedAny(client string, epoch phase0.Epoch) bool
	Client(client string) watch.ClientStats
}

// Assignments is the signer's view of who owns which key (failover/assignment.Authorizer).
type Assignments interface {
	Refresh(ctx context.Context) error
	Owners() map[phase0.BLSPubKey]string
	Moved(keys []signer.PublicKey, client string)
}

// Mode says what the controller does.
type Mode string

const (
	// Act detects and moves keys.
	Act Mode = "act"
	// Observe detects and reports, moving nothing.
	Observe Mode = "observe"
)

// Metrics are the controller's hooks for Prometheus (any may be nil).
type Metrics struct {
	Missed       func(client string)                   // one missed epoch
	Consecutive  func(client string, n int)            // consecutive missed epochs now
	Keys         func(client string, n int)            // keys assigned
	Moved        func(from, to, reason string, n int)  // keys moved
	ChainHealthy func(ok bool)                         //
	Stuck        func(stuck bool)                      // a failed client could not be moved
	LastRequest  func(client string, last time.Time)   //
	Staged       func(client string, staged, want int) // keys held by a standby of those wanted
}

// Config configures a Controller.
type Config struct {
	Clients     func() *clients.Set
	Ledger      slashing.FailoverLedger
	Beacon      Beacon
	VCs         VCs
	Tracker     Tracker
	Assignments Assignments
	IsLeader    func() bool // nil: always

	Genesis        time.Time
	SecondsPerSlot time.Duration
	SlotsPerEpoch  uint64
	// MissedEpochs is K (default 2); Grace the wait after an epoch's end before judging it
	// (default two slots); HoldAfterMove how many epochs a client that received keys is not
	// judged (default K + 3: a VC's doppelganger protection).
	MissedEpochs  int
	Grace         time.Duration
	HoldAfterMove int
	// UnfenceAfter, when positive, unfences a fenced client once it asked for attestations in
	// that many consecutive epochs (opt-in; 0: only an operator unfences). Its keys stay where
	// they were moved.
	UnfenceAfter int
	Mode         Mode
	Cold         bool // cold move: no staging ahead of time; delete from the failed VC

	Now     func() time.Time
	After   func(d time.Duration) <-chan time.Time
	Logger  *slog.Logger
	Metrics Metrics
	// Evaluated is called after every evaluation (tests wait on it).
	Evaluated func(Evaluation)
}

// Evaluation is the outcome of one epoch's evaluation (or of one quick check).
type Evaluation struct {
	Epoch        phase0.Epoch // judged; for a quick check, the epoch in progress
	Quick        bool         // a quick check (QuickCheck), not an epoch evaluation
	Leader       bool
	ChainHealthy bool
	Missed       map[string]int // consecutive misses per judged client
	Failed       []string
	Moves        []Move
	Skipped      string // why nothing was moved although a client failed ("" none)
	Err          error
}

// Move is one failover.
type Move struct {
	From, To string
	Keys     int
}

// Controller runs the policy.
type Controller struct {
	cfg Config

	mu        sync.Mutex
	lastHead  phase0.Slot             // the chain's head at the last epoch evaluation
	quickHead phase0.Slot             // at the last quick check
	owning    map[string]time.Time    // client → since when it holds keys (quick checks)
	healthy   map[string]streak       // fenced client → consecutive epochs it asked (UnfenceAfter)
	held      map[string]phase0.Epoch // client → first epoch it is judged again
}

// New returns a controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Clients == nil || cfg.Ledger == nil || cfg.Beacon == nil || cfg.VCs == nil || cfg.Tracker == nil || cfg.Assignments == nil {
		return nil, errors.New("controller: Config needs Clients, Ledger, Beacon, VCs, Tracker and Assignments")
	}
	if cfg.SlotsPerEpoch == 0 || cfg.SecondsPerSlot <= 0 || cfg.Genesis.IsZero() {
		return nil, errors.New("controller: the network's genesis time, slot length and epoch length are needed")
	}
	if cfg.MissedEpochs <= 0 {
		cfg.MissedEpochs = 2
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * cfg.SecondsPerSlot
	}
	if cfg.HoldAfterMove <= 0 {
		cfg.HoldAfterMove = cfg.MissedEpochs + 3
	}
	if cfg.Mode == "" {
		cfg.Mode = Act
	}
	if cfg.IsLeader == nil {
		cfg.IsLeader = func() bool { return true }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, held: map[string]phase0.Epoch{}, owning: map[string]time.Time{}, healthy: map[string]streak{}}, nil
}

func (c *Controller) epochDuration() time.Duration {
	return c.cfg.SecondsPerSlot * time.Duration(c.cfg.SlotsPerEpoch)
}

// epochAt is the epoch at t (0 before genesis).
func (c *Controller) epochAt(t time.Time) phase0.Epoch {
	if t.Before(c.cfg.Genesis) {
		return 0
	}
	return phase0.Epoch(t.Sub(c.cfg.Genesis) / c.epochDuration())
}

// Run evaluates every epoch (at its end plus the grace) and runs a quick check in the middle
// of every slot in between, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	next := c.epochAt(c.cfg.Now()) // judge from the epoch in progress on
	slot := c.cfg.SecondsPerSlot
	for {
		now := c.cfg.Now()
		at := c.cfg.Genesis.Add(time.Duration(next+1)*c.epochDuration() + c.cfg.Grace)
		wake := at
		if now.After(c.cfg.Genesis) {
			// The middle of the next slot.
			tick := c.cfg.Genesis.Add((now.Sub(c.cfg.Genesis)/slot+1)*slot + slot/2)
			if tick.Before(at) {
				wake = tick
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.cfg.After(wake.Sub(now)):
		}
		if wake.Before(at) {
			ev := c.QuickCheck(ctx)
			if ev.Err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("failover: quick check failed; nothing moved", "err", ev.Err)
			}
			if c.cfg.Evaluated != nil {
				c.cfg.Evaluated(ev)
			}
			continue
		}
		ev := c.Evaluate(ctx, next)
		if ev.Err != nil && ctx.Err() == nil {
			// Without this an evaluation that fails (database, beacon node) judges nothing,
			// silently, every epoch.
			c.cfg.Logger.Warn("failover: the epoch could not be evaluated; nothing judged or moved", "epoch", uint64(next), "err", ev.Err)
		}
		if c.cfg.Evaluated != nil {
			c.cfg.Evaluated(ev)
		}
		next++
		if now := c.epochAt(c.cfg.Now()); now > next+1 {
			next = now - 1 // fell behind (suspended, slow database): judge the last complete epoch
		}
	}
}

// QuickCheck is the check between epoch evaluations (package doc, "Quick detection"): a judged
// client whose last ATTESTATION request is more than K epochs plus the grace old has failed.
// It needs this instance to have seen the client attest (a new leader's tracker starts empty
// and falls back to the epoch evaluations) and K ≥ 2, and acts under the same guards as
// Evaluate.
func (c *Controller) QuickCheck(ctx context.Context) (ev Evaluation) {
	now := c.cfg.Now()
	e := c.epochAt(now)
	ev = Evaluation{Epoch: e, Quick: true, Missed: map[string]int{}}
	if c.cfg.MissedEpochs < 2 {
		return ev // one key's duties can be two epochs less a slot apart: K = 1 has no quick path
	}
	if ev.Leader = c.cfg.IsLeader(); !ev.Leader {
		// Another instance leads meanwhile: what this one saw is stale once it leads again.
		c.mu.Lock()
		clear(c.owning)
		c.mu.Unlock()
		return ev
	}
	limit := time.Duration(c.cfg.MissedEpochs)*c.epochDuration() + c.cfg.Grace
	owning := map[string]bool{}
	for _, cl := range c.cfg.Assignments.Owners() {
		owning[cl] = true
	}
	c.mu.Lock()
	for cl := range owning {
		if _, ok := c.owning[cl]; !ok {
			c.owning[cl] = now
		}
	}
	for cl := range c.owning {
		if !owning[cl] {
			delete(c.owning, cl)
		}
	}
	since := maps.Clone(c.owning)
	c.mu.Unlock()
	overdue := func(client string) (time.Duration, bool) {
		last := c.cfg.Tracker.Client(client).LastAttestation
		held, ok := since[client]
		return now.Sub(last), ok && !last.IsZero() && now.Sub(last) > limit && now.Sub(held) > limit
	}
	// Without an overdue client that holds keys, nothing is read.
	someLate := false
	for cl := range owning {
		if _, late := overdue(cl); late {
			someLate = true
		}
	}
	if !someLate {
		return ev
	}
	log := c.cfg.Logger.With("epoch", uint64(e), "check", "quick")
	snap, err := c.gather(ctx, &c.quickHead, log)
	if err != nil {
		ev.Err = err
		return ev
	}
	if ev.ChainHealthy = snap.healthy; !ev.ChainHealthy {
		return ev
	}
	judged := 0
	silent := map[string]time.Duration{}
	for _, cl := range snap.set.Clients() {
		keys, ok := c.judged(snap, cl, e)
		if !ok {
			continue
		}
		judged++
		if d, late := overdue(cl.Name); late {
			if c.seenLive(ctx, snap, keys, log, cl.Name, e-1, e) {
				continue
			}
			silent[cl.Name] = d
			ev.Failed = append(ev.Failed, cl.Name)
			ev.Missed[cl.Name] = c.cfg.MissedEpochs
			log.Warn("failover: validator client asked for no attestation for more than K epochs and the grace", "client", cl.Name, "silent", d.Round(100*time.Millisecond), "limit", limit)
		}
	}
	sort.Strings(ev.Failed)
	c.act(ctx, snap, &ev, judged, func(from string) string {
		return fmt.Sprintf("no attestation requested for %s (more than %d epochs and the grace: every duty of those epochs missed)", silent[from].Round(100*time.Millisecond), c.cfg.MissedEpochs)
	}, log)
	if len(ev.Moves) > 0 && ev.Err == nil {
		// Only after a move (the epoch evaluations reconcile every epoch): the moved keys
		// reach the standby's keymanager now rather than at the epoch's end.
		c.reconcile(ctx, snap.set, snap.states, snap.byClient, log)
	}
	return ev
}

// streak counts consecutive epochs (UnfenceAfter): n epochs up to last.
type streak struct {
	n    int
	last phase0.Epoch
}

// snapshot is what one evaluation reads before judging.
type snapshot struct {
	set      *clients.Set
	byClient map[string][]phase0.BLSPubKey
	states   map[string]slashing.ClientState
	vals     map[phase0.BLSPubKey]beacon.Validator
	healthy  bool
}

// gather reads the assignments, the ledger's client states, the chain's health (its head
// compared with *lastHead, which it updates) and the validators' statuses.
func (c *Controller) gather(ctx context.Context, lastHead *phase0.Slot, log *slog.Logger) (*snapshot, error) {
	snap := &snapshot{set: c.cfg.Clients(), byClient: map[string][]phase0.BLSPubKey{}}
	if err := c.cfg.Assignments.Refresh(ctx); err != nil {
		return nil, err
	}
	var all []phase0.BLSPubKey
	for k, cl := range c.cfg.Assignments.Owners() {
		snap.byClient[cl] = append(snap.byClient[cl], k)
		all = append(all, k)
	}
	states, err := c.cfg.Ledger.ClientStates(ctx)
	if err != nil {
		return nil, err
	}
	snap.states = states
	if snap.healthy = c.chainHealthy(ctx, lastHead, log); !snap.healthy {
		return snap, nil
	}
	vals, err := c.cfg.Beacon.Validators(ctx, all)
	if err != nil {
		return nil, fmt.Errorf("validator statuses: %w", err)
	}
	if len(all) > 0 && len(vals) == 0 {
		// Nothing can be judged: every key looks unknown to the chain. Say so rather than
		// skipping every client in silence (a beacon node that does not understand the query
		// answers an empty list).
		log.Warn("failover: the beacon node knows none of the assigned keys; no client can be judged", "keys", len(all))
	}
	snap.vals = vals
	return snap, nil
}

// judged reports whether cl is judged in epoch e: active clients, and a standby once keys
// were moved to it (after the hold), so that a move that does not take raises the alarm and, if
// it fails too, moves on. It returns cl's active keys.
func (c *Controller) judged(snap *snapshot, cl *clients.Client, e phase0.Epoch) ([]phase0.BLSPubKey, bool) {
	if snap.states[cl.Name].Fenced || (cl.Role != clients.Active && len(snap.byClient[cl.Name]) == 0) {
		return nil, false
	}
	c.mu.Lock()
	hold := c.held[cl.Name]
	c.mu.Unlock()
	if e < hold {
		return nil, false
	}
	var active []phase0.BLSPubKey
	for _, k := range snap.byClient[cl.Name] {
		if v, ok := snap.vals[k]; ok && v.Active() {
			active = append(active, k)
		}
	}
	return active, len(active) > 0
}

// Evaluate judges epoch e and acts on it (see the package doc).
func (c *Controller) Evaluate(ctx context.Context, e phase0.Epoch) (ev Evaluation) {
	ev = Evaluation{Epoch: e, Missed: map[string]int{}}
	if ev.Leader = c.cfg.IsLeader(); !ev.Leader {
		c.mu.Lock()
		clear(c.healthy) // streaks are this instance's, counted while it leads
		c.mu.Unlock()
		return ev
	}
	log := c.cfg.Logger.With("epoch", uint64(e))
	snap, err := c.gather(ctx, &c.lastHead, log)
	if err != nil {
		ev.Err = err
		return ev
	}
	for _, cl := range snap.set.Clients() {
		c.metric(func(m Metrics) {
			if m.Keys != nil {
				m.Keys(cl.Name, len(snap.byClient[cl.Name]))
			}
			if m.LastRequest != nil {
				m.LastRequest(cl.Name, c.cfg.Tracker.Client(cl.Name).LastRequest)
			}
		})
	}
	ev.ChainHealthy = snap.healthy
	c.metric(func(m Metrics) {
		if m.ChainHealthy != nil {
			m.ChainHealthy(ev.ChainHealthy)
		}
	})
	if !ev.ChainHealthy {
		return ev
	}
	set, states := snap.set, snap.states

	c.unfenceHealthy(ctx, snap, e, log)

	// Judge.
	judged := 0
	for _, cl := range set.Clients() {
		st := states[cl.Name]
		keys, ok := c.judged(snap, cl, e)
		if !ok {
			continue
		}
		active, attested := len(keys), 0
		for _, k := range keys {
			if c.cfg.Tracker.AttestedBy(cl.Name, signer.PublicKey(k), e) {
				attested++
			}
		}
		judged++
		missed := 0
		// A miss the beacon node contradicts is not counted (seenLive: liveness only vetoes).
		if attested == 0 && !c.seenLive(ctx, snap, keys, log, cl.Name, e) {
			missed = st.Missed + 1
			c.metric(func(m Metrics) {
				if m.Missed != nil {
					m.Missed(cl.Name)
				}
			})
			log.Warn("failover: validator client missed an epoch", "client", cl.Name, "active_keys", active, "consecutive", missed)
		}
		if missed != st.Missed {
			if err := c.cfg.Ledger.SetMissed(ctx, cl.Name, missed); err != nil {
				ev.Err = err
				return ev
			}
		}
		ev.Missed[cl.Name] = missed
		c.metric(func(m Metrics) {
			if m.Consecutive != nil {
				m.Consecutive(cl.Name, missed)
			}
		})
		if missed >= c.cfg.MissedEpochs {
			ev.Failed = append(ev.Failed, cl.Name)
		}
	}
	sort.Strings(ev.Failed)

	c.act(ctx, snap, &ev, judged, func(from string) string {
		return fmt.Sprintf("missed %d consecutive epochs (up to epoch %d)", ev.Missed[from], e)
	}, log)
	if c.cfg.Mode == Act && ev.Err == nil {
		c.reconcile(ctx, snap.set, snap.states, snap.byClient, log)
	}
	return ev
}

// act moves the keys of ev.Failed (unless every judged client failed, or in observe mode) and
// reconciles the VCs' keymanagers.
func (c *Controller) act(ctx context.Context, snap *snapshot, ev *Evaluation, judged int, reason func(from string) string, log *slog.Logger) {
	set, states, byClient, e := snap.set, snap.states, snap.byClient, ev.Epoch
	stuck := false
	switch {
	case len(ev.Failed) == 0:
	case len(ev.Failed) == judged && judged > 1:
		ev.Skipped = "every active client failed in the same epoch (a common cause: beacon node, network or Vigil): nothing moved"
	case c.cfg.Mode == Observe:
		ev.Skipped = "--failover-mode observe: nothing moved"
	default:
		for _, from := range ev.Failed {
			to, why := c.pickStandby(ctx, set, states, from)
			if to == nil {
				ev.Skipped, stuck = why, true
				log.Error("failover: validator client failed and cannot be moved", "client", from, "why", why)
				continue
			}
			keys := byClient[from]
			reason := reason(from)
			if err := c.cfg.Ledger.MoveKeys(ctx, keys, from, to.Name, reason); err != nil {
				ev.Err = fmt.Errorf("moving the keys of %s: %w", from, err)
				return
			}
			pks := make([]signer.PublicKey, len(keys))
			for i, k := range keys {
				pks[i] = signer.PublicKey(k)
			}
			c.cfg.Assignments.Moved(pks, to.Name)
			for _, k := range keys {
				byClient[to.Name] = append(byClient[to.Name], k)
			}
			delete(byClient, from)
			states[from] = slashing.ClientState{Fenced: true, Reason: reason}
			c.mu.Lock()
			c.held[to.Name] = e + phase0.Epoch(c.cfg.HoldAfterMove)
			c.mu.Unlock()
			ev.Moves = append(ev.Moves, Move{From: from, To: to.Name, Keys: len(keys)})
			c.metric(func(m Metrics) {
				if m.Moved != nil {
					m.Moved(from, to.Name, "missed_epochs", len(keys))
				}
			})
			log.Warn("failover: keys moved to the standby validator client; the failed client is fenced", "from", from, "to", to.Name, "keys", len(keys), "reason", reason)
		}
	}
	if ev.Skipped != "" && !stuck {
		log.Warn("failover: not moving", "failed", strings.Join(ev.Failed, ","), "why", ev.Skipped)
	}
	c.metric(func(m Metrics) {
		if m.Stuck != nil {
			m.Stuck(stuck)
		}
	})
}

func (c *Controller) metric(fn func(Metrics)) { fn(c.cfg.Metrics) }

// unfenceHealthy unfences (opt-in, UnfenceAfter) a fenced client that asked for attestations
// in UnfenceAfter consecutive epochs up to e. The streak is this instance's (a new leader starts
// counting afresh: never sooner than configured).
func (c *Controller) unfenceHealthy(ctx context.Context, snap *snapshot, e phase0.Epoch, log *slog.Logger) {
	if c.cfg.UnfenceAfter <= 0 || c.cfg.Mode != Act {
		return
	}
	for _, cl := range snap.set.Clients() {
		st := snap.states[cl.Name]
		c.mu.Lock()
		if !st.Fenced || !c.cfg.Tracker.AttestedAny(cl.Name, e) {
			delete(c.healthy, cl.Name)
			c.mu.Unlock()
			continue
		}
		run := c.healthy[cl.Name]
		if run.n == 0 || e != run.last+1 {
			run.n = 0 // not consecutive (a skipped or repeated epoch): start again
		}
		run.n, run.last = run.n+1, e
		c.healthy[cl.Name] = run
		n := run.n
		c.mu.Unlock()
		if n < c.cfg.UnfenceAfter {
			continue
		}
		reason := fmt.Sprintf("asked for attestations in %d consecutive epochs (up to epoch %d): --failover-unfence-after-epochs", n, e)
		if err := c.cfg.Ledger.SetFenced(ctx, cl.Name, false, reason); err != nil {
			log.Warn("failover: cannot unfence a recovered validator client", "client", cl.Name, "err", err)
			continue
		}
		c.mu.Lock()
		delete(c.healthy, cl.Name)
		c.mu.Unlock()
		snap.states[cl.Name] = slashing.ClientState{}
		log.Warn("failover: validator client unfenced (its keys stay where they were moved)", "client", cl.Name, "reason", reason)
	}
}

// seenLive asks the beacon node whether any of keys was live (seen attesting) in one of epochs:
// a veto on a miss that Vigil's own stream reports (its requests went to another Vigil instance
// before a takeover, or this instance's tracker restarted), never a reason to move — a beacon
// node that restarted answers false for everything. An error is no veto.
func (c *Controller) seenLive(ctx context.Context, snap *snapshot, keys []phase0.BLSPubKey, log *slog.Logger, client string, epochs ...phase0.Epoch) bool {
	indices := make([]phase0.ValidatorIndex, 0, len(keys))
	for _, k := range keys {
		indices = append(indices, snap.vals[k].Index)
	}
	for _, e := range epochs {
		live, err := c.cfg.Beacon.Liveness(ctx, e, indices)
		if err != nil {
			log.Debug("failover: liveness not available; Vigil's own requests decide", "client", client, "err", err)
			continue
		}
		for _, ok := range live {
			if ok {
				log.Info("failover: Vigil saw no attestation request from the client, but the beacon node saw its validators live; not counted as a miss", "client", client, "live_epoch", uint64(e))
				return true
			}
		}
	}
	return false
}

// chainHealthy: a beacon node answers, is synced, and its head moved since the last look
// (*lastHead: the epoch evaluations and the quick checks each keep their own).
func (c *Controller) chainHealthy(ctx context.Context, lastHead *phase0.Slot, log *slog.Logger) bool {
	s, err := c.cfg.Beacon.Syncing(ctx)
	if err != nil {
		log.Warn("failover: no beacon node answers; judging nothing", "err", err)
		return false
	}
	c.mu.Lock()
	last := *lastHead
	*lastHead = s.HeadSlot
	c.mu.Unlock()
	switch {
	case s.IsSyncing:
		log.Warn("failover: the beacon node is syncing; judging nothing", "head", uint64(s.HeadSlot), "distance", s.SyncDistance)
		return false
	case s.HeadSlot <= last:
		log.Warn("failover: the chain's head did not advance; judging nothing", "head", uint64(s.HeadSlot))
		return false
	}
	return true
}

// pickStandby returns the healthy standby of lowest priority, or why there is none.
func (c *Controller) pickStandby(ctx context.Context, set *clients.Set, states map[string]slashing.ClientState, failed string) (*clients.Client, string) {
	var cands []*clients.Client
	for _, cl := range set.Clients() {
		if cl.Role == clients.Standby && cl.Name != failed && !states[cl.Name].Fenced {
			cands = append(cands, cl)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Priority < cands[j].Priority })
	why := "no standby validator client is configured"
	for _, cl := range cands {
		if cl.KeymanagerURL == "" {
			why = "standby " + cl.Name + " has no keymanager_url"
			continue
		}
		if _, err := c.cfg.VCs.List(ctx, cl); err != nil {
			why = "standby " + cl.Name + "'s keymanager does not answer: " + err.Error()
			continue
		}
		if !c.cfg.Cold {
			last := c.cfg.Tracker.Client(cl.Name).LastRequest
			if last.IsZero() || c.cfg.Now().Sub(last) > 2*c.epochDuration() {
				why = "standby " + cl.Name + " sent no request in the last two epochs (a hot standby proves it is alive by asking)"
				continue
			}
		}
		return cl, ""
	}
	return nil, why
}

// reconcile brings the VCs' keymanagers in line with the assignments (see the package doc).
func (c *Controller) reconcile(ctx context.Context, set *clients.Set, states map[string]slashing.ClientState, byClient map[string][]phase0.BLSPubKey, log *slog.Logger) {
	var activeKeys []phase0.BLSPubKey
	for _, cl := range set.Clients() {
		if cl.Role == clients.Active && !states[cl.Name].Fenced {
			activeKeys = append(activeKeys, byClient[cl.Name]...)
		}
	}
	for _, cl := range set.Clients() {
		if cl.KeymanagerURL == "" || cl.SignerURL == "" {
			continue
		}
		switch {
		case cl.Role == clients.Standby && !states[cl.Name].Fenced:
			want := append([]phase0.BLSPubKey(nil), byClient[cl.Name]...)
			if !c.cfg.Cold {
				want = append(want, activeKeys...)
			}
			c.stage(ctx, cl, want, log)
		case states[cl.Name].Fenced && c.cfg.Cold:
			c.unstage(ctx, cl, byClient[cl.Name], log)
		}
	}
}

func hexKeys(keys []phase0.BLSPubKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%#x", k[:])
	}
	return out
}

// stage imports into cl's VC the keys of want it does not list yet.
func (c *Controller) stage(ctx context.Context, cl *clients.Client, want []phase0.BLSPubKey, log *slog.Logger) {
	listed, err := c.cfg.VCs.List(ctx, cl)
	if err != nil {
		log.Warn("failover: cannot list the keys of a standby validator client", "client", cl.Name, "err", err)
		return
	}
	wanted := hexKeys(want)
	holds := remotekeys.Holds(listed, wanted)
	var missing []string
	for _, k := range wanted {
		if !holds[k] {
			missing = append(missing, k)
		}
	}
	c.metric(func(m Metrics) {
		if m.Staged != nil {
			m.Staged(cl.Name, len(wanted)-len(missing), len(wanted))
		}
	})
	if len(missing) == 0 {
		return
	}
	if err := c.cfg.Ledger.Audit(ctx, slashing.AuditRecord{Action: "stage", To: cl.Name, Keys: len(missing)}); err != nil {
		log.Warn("failover: cannot write the audit record; not staging", "client", cl.Name, "err", err)
		return
	}
	res, err := c.cfg.VCs.Import(ctx, cl, missing, cl.SignerURL)
	if err != nil {
		log.Warn("failover: staging keys on a standby validator client failed", "client", cl.Name, "keys", len(missing), "err", err)
		return
	}
	bad := 0
	for _, r := range res {
		if r.Status != "imported" && r.Status != "duplicate" {
			bad++
		}
	}
	log.Info("failover: keys staged on the standby validator client", "client", cl.Name, "keys", len(missing), "refused", bad)
}

// unstage deletes from a fenced client's VC every key it lists that is not assigned to it
// (cold mode), repeated at every evaluation until the VC no longer lists them.
func (c *Controller) unstage(ctx context.Context, cl *clients.Client, own []phase0.BLSPubKey, log *slog.Logger) {
	listed, err := c.cfg.VCs.List(ctx, cl)
	if err != nil {
		return // a failed VC is often down: retried next epoch
	}
	mine := map[string]bool{}
	for _, k := range hexKeys(own) {
		mine[k] = true
	}
	var drop []string
	for _, k := range listed {
		// Only keys that point at Vigil: a VC's keys of other signers are not Vigil's to remove.
		if !mine[strings.ToLower(k.Pubkey)] && strings.TrimRight(k.URL, "/") == strings.TrimRight(cl.SignerURL, "/") {
			drop = append(drop, k.Pubkey)
		}
	}
	if len(drop) == 0 {
		return
	}
	if err := c.cfg.Ledger.Audit(ctx, slashing.AuditRecord{Action: "delete", From: cl.Name, Keys: len(drop)}); err != nil {
		return
	}
	if _, err := c.cfg.VCs.Delete(ctx, cl, drop); err != nil {
		log.Warn("failover: deleting keys from the fenced validator client failed; retried next epoch", "client", cl.Name, "err", err)
		return
	}
	log.Info("failover: keys deleted from the fenced validator client (repeated until it no longer lists them)", "client", cl.Name, "keys", len(drop))
}

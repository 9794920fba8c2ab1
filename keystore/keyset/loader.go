package keyset

// Key loading and hot reload: the operator's key sources (keystore directories, key-config files,
// the local keyring, Vault, an HSM) feeding the signer's key Set.
//
// Invariants:
//   - One load at a time; a reload that finds one running is refused (ErrReloadRunning), never
//     queued.
//   - The Set changes by one atomic swap at the end of a reload. Requests already holding a key
//     object finish with it; no in-flight request is dropped.
//   - A reload never loses a key because its source misbehaved: a source that fails as a whole
//     keeps all the keys it gave before; an item that fails keeps its previous key when the error
//     names the public key; an item failing without naming one holds back every removal from that
//     source for this reload (a stray item, keystore.ErrStrayItem, does not: it never held a key);
//     a source that suddenly lists no key at all (an unmounted volume, a wrong path) keeps its
//     keys and is reported as failed. Only a key that a healthy source no longer lists is removed.
//   - A removed key only leaves the Set (no new signature here); it is never disabled in the
//     slashing database. A key file moved away for a moment during a reload (which anyone who
//     can reach the signing port may trigger) must not stop that validator for good: it signs
//     again as soon as a reload finds it. Only a keymanager DELETE disables a key.
//   - The keymanager's own keys (ManagedKeys: its directory, loaded by the first load and again
//     only while that load failed as a whole, plus its imports) are kept as the keymanager holds
//     them. On a public key given by both, the operator's source wins, as at startup; when the
//     operator's copy goes away, the keymanager's copy takes its place and nothing is disabled.
//   - Reload holds the keymanager's lock around the swap, so a keymanager import or delete never
//     interleaves with it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

// ErrReloadRunning: a (re)load is already in progress.
var ErrReloadRunning = errors.New("a key reload is already running")

// Observer receives each source's outcome and the load's overall outcome after every load
// (metrics).
type Observer interface {
	ObserveKeySource(r SourceReport)
	ObserveKeyLoad(state ReloadState)
}

// SourceReport is the outcome of loading one key source: how many keys it gave and which items
// failed (by name, never with secret material).
type SourceReport struct {
	Name   string
	Loaded int                  // keys the source provides now (including Kept)
	Errors []keystore.LoadError // items that failed
	Err    error                // the source failed as a whole (unreachable, sealed, wrong PIN)
	Kept   int                  // keys kept from an earlier load because the source or an item failed
	Took   time.Duration
}

// OK reports whether the source loaded completely.
func (r SourceReport) OK() bool { return r.Err == nil && len(r.Errors) == 0 }

// LoaderConfig assembles a Loader.
type LoaderConfig struct {
	Sources []keystore.Source // in priority order: on a duplicate public key the first wins
	// Managed is the keymanager's key directory (nil: none), after Sources in priority.
	Managed  *Managed
	Keys     *Set
	Lock     sync.Locker // taken around the swap (the keymanager's); nil: none
	Observer Observer    // nil: none
	Logger   *slog.Logger
	// Publish receives the source reports after every load (the Signer's SetSourceReports).
	Publish func([]SourceReport)
}

// ReloadState is where the last reload stands.
type ReloadState string

// Reload states.
const (
	ReloadIdle      ReloadState = "idle" // never ran since start
	ReloadRunning   ReloadState = "running"
	ReloadCompleted ReloadState = "completed" // every source loaded every item
	ReloadDegraded  ReloadState = "degraded"  // finished, but a source or an item failed
	ReloadFailed    ReloadState = "failed"    // cancelled or timed out; nothing changed
)

// ReloadStatus describes the last (or current) reload.
type ReloadStatus struct {
	State    ReloadState
	Started  time.Time
	Finished time.Time // zero while running
	Keys     int       // keys in the set after the reload
	Added    int
	Removed  int
	Kept     int // keys kept from a previous load because their source or item failed
	Sources  []SourceReport
	Error    string // why a failed reload failed
}

// Loader loads the key sources into the KeySet, at start and on every reload.
type Loader struct {
	cfg LoaderConfig
	// mu makes "running" and the published status change together: once GET /reload shows a
	// load finished, a new one can start at once.
	mu      sync.Mutex
	running bool
	status  atomic.Pointer[ReloadStatus]

	quit     chan struct{} // closed by Stop: cancels background reloads
	stopOnce sync.Once
	bg       sync.WaitGroup // background reloads

	// Owned by the goroutine holding running.
	prev          []map[keystore.PublicKey]keystore.Key // per source, the keys of the last load
	managedReport *SourceReport                         // nil until the keymanager directory was loaded

	refreshManaged atomic.Bool // the next load reads the keymanager directory again (ReloadManaged)
}

// ReloadManaged is Reload that also reads the keymanager's directory again (which a plain reload
// leaves to the keymanager): after Managed.Sync brought in keystores the other instance of an HA
// pair imported or deleted.
func (l *Loader) ReloadManaged(timeout time.Duration) error {
	l.refreshManaged.Store(true)
	return l.Reload(timeout)
}

// NewKeyLoader returns a loader; nothing is loaded until Load.
func NewLoader(cfg LoaderConfig) *Loader {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Loader{cfg: cfg, prev: make([]map[keystore.PublicKey]keystore.Key, len(cfg.Sources)), quit: make(chan struct{})}
	l.status.Store(&ReloadStatus{State: ReloadIdle})
	return l
}

// Status returns the last reload's status.
func (l *Loader) Status() ReloadStatus { return *l.status.Load() }

// Start does the first load (bounded by ctx) and returns when it is done: an error when it was
// interrupted (nothing loaded), nil otherwise, also when a source or an item failed (Status says
// which). Background reloads (Reload) may run from then on, until Stop.
func (l *Loader) Start(ctx context.Context) error {
	st, err := l.Load(ctx)
	if err != nil {
		return err
	}
	if st.State == ReloadFailed {
		return fmt.Errorf("loading keys: %s", st.Error)
	}
	return nil
}

// Stop cancels a running background reload and waits for it; later Reload calls fail. Safe to
// call twice.
func (l *Loader) Stop() {
	l.mu.Lock()
	l.stopOnce.Do(func() { close(l.quit) })
	l.mu.Unlock()
	l.bg.Wait()
}

// ErrStopped: the loader was stopped (shutting down); no reload starts.
var ErrStopped = errors.New("the key loader is stopped (shutting down)")

// Reload begins a reload in the background (bounded by timeout, cancelled by Stop) and returns
// at once; ErrReloadRunning when one is running.
func (l *Loader) Reload(timeout time.Duration) error {
	if err := l.beginBackground(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		defer l.bg.Done()
		defer cancel()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-l.quit:
				cancel()
			case <-stop:
			}
		}()
		l.run(ctx)
	}()
	return nil
}

// Load loads (or reloads) every source now and returns the status; ErrReloadRunning when one is
// running.
func (l *Loader) Load(ctx context.Context) (ReloadStatus, error) {
	if !l.begin() {
		return ReloadStatus{}, ErrReloadRunning
	}
	return l.run(ctx), nil
}

// begin marks a load running (false: one already is) and publishes it.
func (l *Loader) begin() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return false
	}
	l.running = true
	l.status.Store(&ReloadStatus{State: ReloadRunning, Started: time.Now()})
	return true
}

// beginBackground is begin for a background reload: refused after Stop, counted for Stop.
func (l *Loader) beginBackground() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.quit:
		return ErrStopped
	default:
	}
	if l.running {
		return ErrReloadRunning
	}
	l.running = true
	l.status.Store(&ReloadStatus{State: ReloadRunning, Started: time.Now()})
	l.bg.Add(1)
	return nil
}

// finish publishes a load's final status and ends it, together.
func (l *Loader) finish(st *ReloadStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.Store(st)
	l.running = false
}

// run does one load; the caller has begun it, run finishes it.
func (l *Loader) run(ctx context.Context) ReloadStatus {
	st := ReloadStatus{State: ReloadRunning, Started: l.status.Load().Started}
	log := l.cfg.Logger

	next := make([]map[keystore.PublicKey]keystore.Key, len(l.cfg.Sources))
	reports := make([]SourceReport, len(l.cfg.Sources))
	for i, src := range l.cfg.Sources {
		t0 := time.Now()
		res, err := src.Load(ctx)
		if ctx.Err() != nil {
			st.State, st.Error, st.Finished = ReloadFailed, fmt.Sprintf("key load interrupted: %v", ctx.Err()), time.Now()
			l.finish(&st)
			if l.cfg.Observer != nil {
				l.cfg.Observer.ObserveKeyLoad(st.State)
			}
			log.Error("key reload failed: nothing changed", "err", ctx.Err())
			return st
		}
		keys, rep := merge(src.Name(), l.prev[i], res, err)
		rep.Took = time.Since(t0)
		st.Kept += rep.Kept
		next[i], reports[i] = keys, rep
		for _, e := range rep.Errors {
			log.Error("key not loaded", "source", src.Name(), "item", e.Item, "err", e.Err)
		}
		if rep.Err != nil {
			log.Error("key source failed", "source", src.Name(), "err", rep.Err, "keys_kept", rep.Kept)
		}
	}

	ours := map[keystore.Key]bool{} // key objects the sources gave before: everything else is kept
	if m := l.cfg.Managed; m != nil && (l.managedReport == nil || l.managedReport.Err != nil || l.refreshManaged.Swap(false)) {
		for _, k := range m.current() { // replaced by this load: a key gone from the directory goes
			ours[k] = true
		}
		t0 := time.Now()
		res, err := m.Load(ctx)
		_, rep := merge(m.Name(), nil, res, err)
		rep.Took = time.Since(t0)
		for _, e := range rep.Errors {
			log.Error("key not loaded", "source", m.Name(), "item", e.Item, "err", e.Err)
		}
		if rep.Err != nil {
			log.Error("key source failed", "source", m.Name(), "err", rep.Err)
		}
		l.managedReport = &rep
	}

	for _, m := range l.prev {
		for _, k := range m {
			ours[k] = true
		}
	}
	var removed []keystore.PublicKey
	if l.cfg.Lock != nil {
		l.cfg.Lock.Lock()
	}
	current := *l.cfg.Keys.m.Load()
	var managed map[keystore.PublicKey]keystore.Key // read under the lock: a delete can't slip in
	if l.cfg.Managed != nil {
		managed = l.cfg.Managed.current()
		rep := *l.managedReport
		rep.Loaded = len(managed)
		reports = append(reports, rep)
	}
	set := make(map[keystore.PublicKey]keystore.Key, len(current))
	for _, m := range next {
		for pk, k := range m {
			if _, dup := set[pk]; !dup {
				set[pk] = k
			}
		}
	}
	for pk, k := range managed {
		if _, dup := set[pk]; !dup {
			set[pk] = k
		}
	}
	for pk, k := range current {
		if !ours[k] {
			if _, dup := set[pk]; !dup {
				set[pk] = k
			}
		}
	}
	for pk := range current {
		if _, ok := set[pk]; !ok {
			removed = append(removed, pk)
		}
	}
	for pk := range set {
		if _, ok := current[pk]; !ok {
			st.Added++
		}
	}
	l.cfg.Keys.m.Store(&set)
	l.prev = next
	st.Removed, st.Keys = len(removed), len(set)

	for _, pk := range removed {
		log.Info("key removed (unloaded; still enabled in the slashing database)", "pubkey", pk.String())
	}
	if l.cfg.Lock != nil {
		l.cfg.Lock.Unlock()
	}

	st.Sources, st.Finished, st.State = reports, time.Now(), ReloadCompleted
	for _, r := range reports {
		if r.Err != nil || len(r.Errors) > 0 {
			st.State = ReloadDegraded
		}
		if l.cfg.Observer != nil {
			l.cfg.Observer.ObserveKeySource(r)
		}
	}
	if l.cfg.Publish != nil {
		l.cfg.Publish(reports)
	}
	if l.cfg.Observer != nil {
		l.cfg.Observer.ObserveKeyLoad(st.State)
	}
	l.finish(&st)
	log.Info("keys loaded", "keys", st.Keys, "added", st.Added, "removed", st.Removed, "kept", st.Kept,
		"state", st.State, "took", st.Finished.Sub(st.Started).Round(time.Millisecond))
	// Decryption leaves large garbage behind (an scrypt key derivation takes 256 MiB of scratch:
	// the keyring's key-encryption key, every scrypt EIP-2335 keystore), which the runtime would
	// keep resident for minutes. A load is rare (startup, reload), so hand the pages back now:
	// with 10,000 keys that is the difference between ~330 MB and ~50 MB resident.
	debug.FreeOSMemory()
	return st
}

// merge turns one source's load into its key map, keeping previous keys the rules say to keep.
func merge(name string, prev map[keystore.PublicKey]keystore.Key, res keystore.LoadResult, err error) (map[keystore.PublicKey]keystore.Key, SourceReport) {
	rep := SourceReport{Name: name}
	out := map[keystore.PublicKey]keystore.Key{}
	if err != nil {
		for pk, k := range prev {
			out[pk] = k
		}
		rep.Err, rep.Loaded, rep.Kept = err, len(out), len(out)
		return out, rep
	}
	for _, k := range res.Keys {
		if _, dup := out[k.PublicKey()]; !dup {
			out[k.PublicKey()] = k
		}
	}
	rep.Errors = res.Errors
	holdAll := false
	if len(res.Keys) == 0 && len(res.Errors) == 0 && len(prev) > 0 {
		for pk, k := range prev {
			out[pk] = k
		}
		rep.Err = fmt.Errorf("the source lists no key at all (it gave %d before): keeping them; an empty source looks like an unmounted volume or a wrong path, so remove keys from it one at a time, or restart without it", len(prev))
		rep.Loaded, rep.Kept = len(out), len(out)
		return out, rep
	}
	for _, e := range res.Errors {
		if errors.Is(e.Err, keystore.ErrStrayItem) {
			continue // never held a key
		}
		if e.Pubkey == (keystore.PublicKey{}) {
			holdAll = true
			continue
		}
		if k, ok := prev[e.Pubkey]; ok {
			if _, loaded := out[e.Pubkey]; !loaded {
				out[e.Pubkey] = k
				rep.Kept++
			}
		}
	}
	if holdAll {
		for pk, k := range prev {
			if _, ok := out[pk]; !ok {
				out[pk] = k
				rep.Kept++
			}
		}
	}
	rep.Loaded = len(out)
	return out, rep
}

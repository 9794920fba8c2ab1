package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/failover/assignment"
	"github.com/vigil-signer/vigil/failover/beacon"
	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/failover/remotekeys"
	"github.com/vigil-signer/vigil/failover/watch"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

// fakeBeacon is a hand-written beacon node: a head the test moves, validator statuses.
type fakeBeacon struct {
	mu      sync.Mutex
	head    phase0.Slot
	syncing bool
	down    bool
	status  map[phase0.BLSPubKey]string
	live    map[phase0.Epoch]map[phase0.ValidatorIndex]bool // liveness answers (none: nothing live)
	noLive  bool                                            // the liveness endpoint fails
}

func (b *fakeBeacon) Liveness(_ context.Context, e phase0.Epoch, indices []phase0.ValidatorIndex) (map[phase0.ValidatorIndex]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.noLive {
		return nil, errors.New("404 not found")
	}
	out := map[phase0.ValidatorIndex]bool{}
	for _, i := range indices {
		out[i] = b.live[e][i]
	}
	return out, nil
}

func (b *fakeBeacon) Syncing(context.Context) (beacon.Sync, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return beacon.Sync{}, errors.New("connection refused")
	}
	return beacon.Sync{HeadSlot: b.head, IsSyncing: b.syncing}, nil
}

func (b *fakeBeacon) Validators(_ context.Context, keys []phase0.BLSPubKey) (map[phase0.BLSPubKey]beacon.Validator, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[phase0.BLSPubKey]beacon.Validator{}
	for _, k := range keys {
		st := b.status[k]
		if st == "" {
			st = "active_ongoing"
		}
		out[k] = beacon.Validator{Index: phase0.ValidatorIndex(k[0]), Status: st} // key(b)'s index is b
	}
	return out, nil
}

// fakeVCs are hand-written VC keymanagers, with Lodestar 1.5.1's first-DELETE quirk.
type fakeVCs struct {
	mu      sync.Mutex
	keys    map[string]map[string]string // client → pubkey → url
	down    map[string]bool
	deletes map[string]int
}

func newVCs() *fakeVCs {
	return &fakeVCs{keys: map[string]map[string]string{}, down: map[string]bool{}, deletes: map[string]int{}}
}

func (f *fakeVCs) List(_ context.Context, c *clients.Client) ([]remotekeys.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[c.Name] {
		return nil, errors.New("connection refused")
	}
	var out []remotekeys.Key
	for p, u := range f.keys[c.Name] {
		out = append(out, remotekeys.Key{Pubkey: p, URL: u})
	}
	return out, nil
}

func (f *fakeVCs) Import(_ context.Context, c *clients.Client, pubkeys []string, url string) ([]remotekeys.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[c.Name] {
		return nil, errors.New("connection refused")
	}
	if f.keys[c.Name] == nil {
		f.keys[c.Name] = map[string]string{}
	}
	var out []remotekeys.Result
	for _, p := range pubkeys {
		f.keys[c.Name][p] = url
		out = append(out, remotekeys.Result{Status: "imported"})
	}
	return out, nil
}

func (f *fakeVCs) Delete(_ context.Context, c *clients.Client, pubkeys []string) ([]remotekeys.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[c.Name] {
		return nil, errors.New("connection refused")
	}
	var out []remotekeys.Result
	for _, p := range pubkeys {
		f.deletes[c.Name+p]++
		if f.deletes[c.Name+p] > 1 { // the first delete answers "deleted" and keeps the key
			delete(f.keys[c.Name], p)
		}
		out = append(out, remotekeys.Result{Status: "deleted"})
	}
	return out, nil
}

func (f *fakeVCs) holds(client string, k phase0.BLSPubKey) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.keys[client][fmt.Sprintf("%#x", k[:])]
	return ok
}

type rig struct {
	t       *testing.T
	store   *sqlite.Store
	set     *clients.Set
	bn      *fakeBeacon
	vcs     *fakeVCs
	tracker *watch.Tracker
	authz   *assignment.Authorizer
	now     time.Time
	genesis time.Time
	leader  bool
	stuck   bool
	c       *Controller
}

const clientsYAML = `clients:
  - name: vc1
    keymanager_url: http://vc1:5062
    signer_url: http://vigil:9101
  - name: vc2
    keymanager_url: http://vc2:5062
    signer_url: http://vigil:9102
  - name: sb
    role: standby
    keymanager_url: http://sb:5062
    signer_url: http://vigil:9103
`

func key(b byte) phase0.BLSPubKey { var k phase0.BLSPubKey; k[0] = b; return k }

func newRig(t *testing.T, dbPath string, cold bool) *rig {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "db.sqlite")
	}
	store, err := sqlite.Open(context.Background(), dbPath, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	set, err := clients.Parse([]byte(clientsYAML), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, store: store, set: set, bn: &fakeBeacon{head: 1, status: map[phase0.BLSPubKey]string{}}, vcs: newVCs(), leader: true,
		genesis: time.Unix(1_700_000_000, 0)}
	r.now = r.genesis
	r.tracker = watch.New(func() time.Time { return r.now })
	r.authz = assignment.New(assignment.Config{Store: store, Clients: func() *clients.Set { return set }})
	r.c, err = New(Config{Clients: func() *clients.Set { return set }, Ledger: store, Beacon: r.bn, VCs: r.vcs, Tracker: r.tracker,
		Assignments: r.authz, IsLeader: func() bool { return r.leader }, Genesis: r.genesis, SecondsPerSlot: time.Second, SlotsPerEpoch: 8,
		Cold: cold, Now: func() time.Time { return r.now }, Metrics: Metrics{Stuck: func(s bool) { r.stuck = s }}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// attest records that client asked for attestations of keys at target e (and moves time on).
func (r *rig) attest(client string, e phase0.Epoch, keys ...phase0.BLSPubKey) {
	r.now = r.genesis.Add(time.Duration(e) * 8 * time.Second)
	for _, k := range keys {
		r.tracker.ObserveRequest(signer.Event{Caller: signer.Caller{Name: client}, Key: signer.PublicKey(k), Type: signer.TypeAttestation,
			Epoch: e, Outcome: signer.OutcomeSigned})
	}
}

// epoch evaluates e with the head advanced (a healthy chain unless the test says otherwise).
func (r *rig) epoch(e phase0.Epoch) Evaluation {
	r.t.Helper()
	r.bn.mu.Lock()
	r.bn.head += 8
	r.bn.mu.Unlock()
	r.now = r.genesis.Add(time.Duration(e+1)*8*time.Second + 2*time.Second)
	ev := r.c.Evaluate(context.Background(), e)
	if ev.Err != nil {
		r.t.Fatalf("epoch %d: %v", e, ev.Err)
	}
	return ev
}

func (r *rig) adopt(client string, keys ...phase0.BLSPubKey) {
	r.t.Helper()
	for _, k := range keys {
		if err := r.authz.Authorize(context.Background(), signer.Caller{Name: client}, signer.PublicKey(k), signer.TypeAttestation); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) owner(k phase0.BLSPubKey) string {
	m, err := r.store.KeyAssignments(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return m[k]
}

// Hot standby: the standby holds every key ahead of time; the active client misses K epochs;
// one transaction moves its keys and fences it; the standby's next request is signed.
func TestHotStandbyFailover(t *testing.T) {
	r := newRig(t, "", false)
	ctx := context.Background()
	r.adopt("vc1", key(1), key(2))
	r.adopt("vc2", key(3))
	for e := phase0.Epoch(0); e < 2; e++ {
		r.attest("vc1", e, key(1), key(2))
		r.attest("vc2", e, key(3))
		r.attest("sb", e, key(1), key(2), key(3)) // refused (403), but alive with the duties
		if ev := r.epoch(e); len(ev.Missed) != 2 || ev.Missed["vc1"] != 0 || len(ev.Moves) != 0 {
			t.Fatalf("healthy epoch %d: %+v", e, ev)
		}
	}
	for _, k := range []phase0.BLSPubKey{key(1), key(2), key(3)} {
		if !r.vcs.holds("sb", k) {
			t.Fatalf("key %x not staged on the standby", k[0])
		}
	}
	if err := r.authz.Authorize(ctx, signer.Caller{Name: "sb"}, signer.PublicKey(key(1)), signer.TypeAttestation); !errors.Is(err, signer.ErrForbidden) {
		t.Fatalf("the standby before the move: %v, want 403", err)
	}
	// vc1 dies.
	r.attest("vc2", 2, key(3))
	r.attest("sb", 2, key(1), key(2), key(3))
	if ev := r.epoch(2); ev.Missed["vc1"] != 1 || len(ev.Moves) != 0 {
		t.Fatalf("first miss: %+v", ev)
	}
	r.attest("vc2", 3, key(3))
	r.attest("sb", 3, key(1), key(2), key(3))
	ev := r.epoch(3)
	if len(ev.Moves) != 1 || ev.Moves[0] != (Move{From: "vc1", To: "sb", Keys: 2}) {
		t.Fatalf("second miss: %+v, want vc1's 2 keys moved to sb", ev)
	}
	if r.owner(key(1)) != "sb" || r.owner(key(3)) != "vc2" {
		t.Fatalf("owners after the move: %s %s", r.owner(key(1)), r.owner(key(3)))
	}
	if err := r.authz.Authorize(ctx, signer.Caller{Name: "vc1"}, signer.PublicKey(key(1)), signer.TypeAttestation); !errors.Is(err, signer.ErrForbidden) {
		t.Fatalf("the failed client after the move: %v, want 403", err)
	}
	if err := r.authz.Authorize(ctx, signer.Caller{Name: "sb"}, signer.PublicKey(key(1)), signer.TypeAttestation); err != nil {
		t.Fatalf("the standby after the move: %v", err)
	}
	st, _ := r.store.ClientStates(ctx)
	if !st["vc1"].Fenced {
		t.Fatal("the failed client is not fenced")
	}
	log, _ := r.store.AuditLog(ctx, 10)
	if len(log) == 0 || log[0].Action != "move" {
		t.Fatalf("audit log %+v", log)
	}
	// Doppelganger delay: the standby does not attest for a while; no second move.
	hold := 3 + phase0.Epoch(r.c.cfg.HoldAfterMove)
	for e := phase0.Epoch(4); e < hold; e++ {
		r.attest("vc2", e, key(3))
		if ev := r.epoch(e); len(ev.Moves) != 0 || ev.Missed["sb"] != 0 {
			t.Fatalf("epoch %d inside the standby's hold: %+v", e, ev)
		}
	}
	// After the hold, the standby is judged like any owner: a move that did not take is seen.
	r.attest("vc2", hold, key(3))
	if ev := r.epoch(hold); ev.Missed["sb"] != 1 {
		t.Fatalf("after the hold: %+v, want the standby judged", ev)
	}
}

// Every active client failing in the same epoch is a common cause: nothing moves.
func TestAllClientsFailingMovesNothing(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	r.attest("sb", 0, key(1), key(2))
	for e := phase0.Epoch(0); e < 4; e++ {
		r.attest("sb", e, key(1), key(2))
		ev := r.epoch(e)
		if len(ev.Moves) != 0 {
			t.Fatalf("epoch %d: moved %+v", e, ev.Moves)
		}
		if e >= 1 && !strings.Contains(ev.Skipped, "every active client failed") {
			t.Fatalf("epoch %d: skipped %q", e, ev.Skipped)
		}
	}
}

// An unhealthy chain (syncing, head stuck, no beacon node: a flapping node) judges nothing.
func TestUnhealthyChainJudgesNothing(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	for e := phase0.Epoch(0); e < 6; e++ {
		r.attest("vc2", e, key(2))
		r.attest("sb", e, key(1), key(2))
		switch e % 3 {
		case 0:
			r.bn.syncing = true
		case 1:
			r.bn.syncing, r.bn.down = false, true
		case 2:
			r.bn.down = false
			r.bn.head = r.c.lastHead - 8 // the head does not advance past the last one seen
		}
		ev := r.epoch(e)
		if ev.ChainHealthy || len(ev.Missed) != 0 || len(ev.Moves) != 0 {
			t.Fatalf("epoch %d on an unhealthy chain: %+v", e, ev)
		}
	}
	if st, _ := r.store.ClientStates(context.Background()); st["vc1"].Missed != 0 || st["vc1"].Fenced {
		t.Fatalf("state changed on an unhealthy chain: %+v", st["vc1"])
	}
}

// The standby unreachable: no move, the stuck alarm, and the failed client not fenced.
func TestStandbyUnreachable(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	r.vcs.down["sb"] = true
	for e := phase0.Epoch(0); e < 3; e++ {
		r.attest("vc2", e, key(2))
		r.attest("sb", e, key(1))
		r.epoch(e)
	}
	ev := r.epoch(3)
	if len(ev.Moves) != 0 || !r.stuck || !strings.Contains(ev.Skipped, "does not answer") {
		t.Fatalf("standby down: %+v stuck=%v", ev, r.stuck)
	}
	if st, _ := r.store.ClientStates(context.Background()); st["vc1"].Fenced || r.owner(key(1)) != "vc1" {
		t.Fatal("state changed without a move")
	}
}

// Keys that are not active validators (pending, exited) are not expected to attest.
func TestInactiveKeysAreNotJudged(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	r.bn.status[key(1)] = "pending_queued"
	for e := phase0.Epoch(0); e < 4; e++ {
		r.attest("vc2", e, key(2))
		r.attest("sb", e, key(1), key(2))
		if ev := r.epoch(e); len(ev.Moves) != 0 {
			t.Fatalf("moved a client whose keys are not active: %+v", ev)
		}
	}
}

// Not the HA leader: nothing is judged, counted or moved.
func TestOnlyTheLeaderActs(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.leader = false
	for e := phase0.Epoch(0); e < 4; e++ {
		if ev := r.epoch(e); ev.Leader || len(ev.Missed) != 0 {
			t.Fatalf("a standby instance judged: %+v", ev)
		}
	}
}

// Cold move, and a leader change in the middle of it: the move committed (one transaction), the
// old leader died before touching the VCs; the new leader rolls forward from the database:
// imports the moved keys on the standby and deletes them from the failed VC, repeating the
// delete until the VC (answering "deleted" the first time and keeping the key) lists them no
// more.
func TestColdMoveRollsForwardOnANewLeader(t *testing.T) {
	db := filepath.Join(t.TempDir(), "db.sqlite")
	old := newRig(t, db, true)
	old.adopt("vc1", key(1))
	old.adopt("vc2", key(2))
	old.vcs.keys["vc1"] = map[string]string{fmt.Sprintf("%#x", key(1)): "http://vigil:9101"}
	if err := old.store.MoveKeys(context.Background(), []phase0.BLSPubKey{key(1)}, "vc1", "sb", "missed 2 consecutive epochs"); err != nil {
		t.Fatal(err)
	}
	_ = old.store.Close()

	r := newRig(t, db, true)
	r.vcs = old.vcs
	r.c.cfg.VCs = r.vcs
	r.attest("vc2", 5, key(2))
	r.epoch(5)
	if !r.vcs.holds("sb", key(1)) {
		t.Fatal("the new leader did not import the moved key on the standby")
	}
	if !r.vcs.holds("vc1", key(1)) {
		t.Fatal("the fake VC lost its first-delete quirk")
	}
	r.attest("vc2", 6, key(2))
	r.epoch(6)
	if r.vcs.holds("vc1", key(1)) {
		t.Fatal("the key is still on the failed VC after the repeated delete")
	}
	if r.vcs.holds("sb", key(2)) {
		t.Fatal("cold mode staged an active client's key on the standby")
	}
}

// Observe mode: detects and reports, moves nothing.
func TestObserveMode(t *testing.T) {
	r := newRig(t, "", false)
	r.c.cfg.Mode = Observe
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	for e := phase0.Epoch(0); e < 4; e++ {
		r.attest("vc2", e, key(2))
		r.attest("sb", e, key(1), key(2))
		ev := r.epoch(e)
		if len(ev.Moves) != 0 {
			t.Fatalf("observe mode moved keys: %+v", ev)
		}
		if e >= 1 && len(ev.Failed) != 1 {
			t.Fatalf("observe mode did not detect the failure: %+v", ev)
		}
	}
	if r.vcs.holds("sb", key(1)) {
		t.Fatal("observe mode staged keys")
	}
}

// quick runs a quick check at t (seconds after genesis) with the head advanced.
func (r *rig) quick(t float64) Evaluation {
	r.t.Helper()
	r.bn.mu.Lock()
	r.bn.head++
	r.bn.mu.Unlock()
	r.now = r.genesis.Add(time.Duration(t * float64(time.Second)))
	ev := r.c.QuickCheck(context.Background())
	if ev.Err != nil {
		r.t.Fatalf("quick check at %gs: %v", t, ev.Err)
	}
	return ev
}

// Quick detection: a client silent for more than K epochs plus the grace (18 s here) is moved in
// the middle of the epoch, before the epoch evaluation that would have moved it; a client that
// is merely between duties is left alone; a client silent since before it was given keys back is
// judged afresh.
func TestQuickCheckMovesBeforeTheEpochEnds(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1), key(2))
	r.adopt("vc2", key(3))
	if ev := r.quick(0); len(ev.Failed) != 0 {
		t.Fatalf("at start: %+v", ev)
	}
	for e := phase0.Epoch(0); e < 2; e++ {
		r.attest("vc1", e, key(1), key(2))
		r.attest("vc2", e, key(3))
		r.attest("sb", e, key(1), key(2), key(3))
		r.epoch(e)
	}
	// vc1's last request was at 8 s (epoch 1). vc2 and the standby go on.
	r.attest("vc2", 2, key(3))
	r.attest("sb", 2, key(1), key(2), key(3))
	if ev := r.quick(20); len(ev.Failed) != 0 || len(ev.Moves) != 0 {
		t.Fatalf("12 s of silence (within two epochs): %+v", ev)
	}
	if ev := r.epoch(2); ev.Missed["vc1"] != 1 || len(ev.Moves) != 0 {
		t.Fatalf("epoch 2: %+v", ev)
	}
	r.attest("vc2", 3, key(3))
	r.attest("sb", 3, key(1), key(2), key(3))
	if ev := r.quick(26); len(ev.Failed) != 0 {
		t.Fatalf("18 s of silence (not more than the limit): %+v", ev)
	}
	ev := r.quick(26.5) // epoch 3, slot 2: the epoch evaluation would move at 34 s
	if !ev.Quick || len(ev.Moves) != 1 || ev.Moves[0] != (Move{From: "vc1", To: "sb", Keys: 2}) {
		t.Fatalf("18.5 s of silence: %+v, want vc1's 2 keys moved to sb", ev)
	}
	if r.owner(key(1)) != "sb" || r.owner(key(2)) != "sb" || r.owner(key(3)) != "vc2" {
		t.Fatalf("owners after the quick move: %s %s %s", r.owner(key(1)), r.owner(key(2)), r.owner(key(3)))
	}
	log, _ := r.store.AuditLog(context.Background(), 10)
	if len(log) == 0 || log[0].Action != "move" || !strings.Contains(log[0].Reason, "no attestation requested for 18.5s") {
		t.Fatalf("audit log %+v", log)
	}
	// The epoch evaluation that follows moves nothing more (vc1 is fenced, sb is held).
	if ev := r.epoch(3); len(ev.Moves) != 0 {
		t.Fatalf("epoch 3 after the quick move: %+v", ev)
	}
	// The standby is not judged by the quick path while it is held either.
	if ev := r.quick(60); len(ev.Moves) != 0 {
		t.Fatalf("the held standby: %+v", ev)
	}
}

// Every client silent at once is a common cause (the beacon node, Vigil): nothing moves; and
// an unhealthy chain judges nothing.
func TestQuickCheckGuards(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	r.quick(0)
	r.attest("vc1", 0, key(1))
	r.attest("vc2", 0, key(2))
	r.attest("sb", 1, key(1), key(2))
	ev := r.quick(19)
	if len(ev.Failed) != 2 || len(ev.Moves) != 0 || !strings.Contains(ev.Skipped, "every active client failed") {
		t.Fatalf("both silent: %+v, want nothing moved", ev)
	}
	r.attest("vc2", 2, key(2))
	r.bn.mu.Lock()
	r.bn.syncing = true
	r.bn.mu.Unlock()
	if ev := r.quick(20); ev.ChainHealthy || len(ev.Failed) != 0 || len(ev.Moves) != 0 {
		t.Fatalf("syncing beacon node: %+v, want nothing judged", ev)
	}
	if r.owner(key(1)) != "vc1" {
		t.Fatalf("key 1 moved to %s", r.owner(key(1)))
	}
}

// A miss that the beacon node contradicts is not counted (the client's requests went to another
// Vigil instance before a takeover); a beacon node that restarted and sees nothing live while
// the client attests through Vigil moves nothing; a failing liveness endpoint is no veto.
func TestLivenessOnlyVetoes(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1), key(2))
	r.adopt("vc2", key(3))
	r.quick(0)
	for e := phase0.Epoch(0); e < 2; e++ {
		r.attest("vc1", e, key(1), key(2))
		r.attest("vc2", e, key(3))
		r.attest("sb", e, key(1), key(2), key(3))
		r.epoch(e)
	}
	// vc1 sends this instance nothing from epoch 2 on, but the beacon node sees key 1 live.
	r.bn.mu.Lock()
	r.bn.live = map[phase0.Epoch]map[phase0.ValidatorIndex]bool{2: {1: true}, 3: {1: true}}
	r.bn.mu.Unlock()
	for e := phase0.Epoch(2); e < 4; e++ {
		r.attest("vc2", e, key(3))
		r.attest("sb", e, key(1), key(2), key(3))
		if ev := r.epoch(e); ev.Missed["vc1"] != 0 || len(ev.Moves) != 0 {
			t.Fatalf("epoch %d, vc1 live by the beacon node: %+v, want no miss", e, ev)
		}
	}
	if ev := r.quick(33); len(ev.Failed) != 0 || len(ev.Moves) != 0 {
		t.Fatalf("quick check, vc1 live by the beacon node: %+v, want no move", ev)
	}
	// The beacon node restarts: nothing is live by it, while vc1 attests through Vigil again.
	r.bn.mu.Lock()
	r.bn.live = nil
	r.bn.mu.Unlock()
	for e := phase0.Epoch(4); e < 7; e++ {
		r.attest("vc1", e, key(1), key(2))
		r.attest("vc2", e, key(3))
		r.attest("sb", e, key(1), key(2), key(3))
		if ev := r.epoch(e); ev.Missed["vc1"] != 0 || len(ev.Moves) != 0 {
			t.Fatalf("epoch %d, liveness false negatives: %+v, want no miss", e, ev)
		}
	}
	// Liveness unavailable: Vigil's own stream decides (two misses move).
	r.bn.mu.Lock()
	r.bn.noLive = true
	r.bn.mu.Unlock()
	var moved []Move
	for e := phase0.Epoch(7); e < 9; e++ {
		r.attest("vc2", e, key(3))
		r.attest("sb", e, key(1), key(2), key(3))
		moved = append(moved, r.epoch(e).Moves...)
	}
	if len(moved) != 1 || moved[0].From != "vc1" {
		t.Fatalf("without liveness: moves %+v, want vc1 moved after two misses", moved)
	}
}

// Opt-in unfence: a fenced client that asks for attestations in M consecutive epochs is
// unfenced (audited), its keys staying where they were moved; a gap restarts the count; off by
// default.
func TestUnfenceAfterHealthyEpochs(t *testing.T) {
	r := newRig(t, "", false)
	ctx := context.Background()
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	for e := phase0.Epoch(0); e < 2; e++ {
		r.attest("vc1", e, key(1))
		r.attest("vc2", e, key(2))
		r.attest("sb", e, key(1), key(2))
		r.epoch(e)
	}
	for e := phase0.Epoch(2); e < 4; e++ { // vc1 dies: moved at epoch 3
		r.attest("vc2", e, key(2))
		r.attest("sb", e, key(1), key(2))
		r.epoch(e)
	}
	if r.owner(key(1)) != "sb" {
		t.Fatalf("key 1 not moved: owner %s", r.owner(key(1)))
	}
	fenced := func() bool {
		st, err := r.store.ClientStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st["vc1"].Fenced
	}
	// Off by default: vc1 comes back and asks (403) for three epochs; it stays fenced.
	for e := phase0.Epoch(4); e < 7; e++ {
		r.attest("vc1", e, key(1))
		r.attest("vc2", e, key(2))
		r.epoch(e)
	}
	if !fenced() {
		t.Fatal("unfenced without --failover-unfence-after-epochs")
	}
	r.c.cfg.UnfenceAfter = 2
	r.attest("vc1", 7, key(1))
	r.attest("vc2", 7, key(2))
	r.epoch(7)
	r.attest("vc2", 8, key(2)) // a gap: the count restarts
	r.epoch(8)
	r.attest("vc1", 9, key(1))
	r.attest("vc2", 9, key(2))
	r.epoch(9)
	if !fenced() {
		t.Fatal("unfenced after one healthy epoch since a gap (want 2)")
	}
	r.attest("vc1", 10, key(1))
	r.attest("vc2", 10, key(2))
	r.epoch(10)
	if fenced() {
		t.Fatal("still fenced after 2 consecutive healthy epochs")
	}
	if r.owner(key(1)) != "sb" {
		t.Fatalf("unfencing moved key 1 back to %s; keys stay where they were moved", r.owner(key(1)))
	}
	log, _ := r.store.AuditLog(ctx, 1)
	if len(log) == 0 || !strings.Contains(log[0].Reason, "--failover-unfence-after-epochs") {
		t.Fatalf("audit log %+v", log)
	}
}

// After leading again (another instance led meanwhile), the quick path does not judge on what
// this instance saw before: a client is judged silent only K epochs and the grace after this
// instance leads again, even with no liveness to veto.
func TestQuickCheckAfterLeadingAgain(t *testing.T) {
	r := newRig(t, "", false)
	r.adopt("vc1", key(1))
	r.adopt("vc2", key(2))
	r.bn.mu.Lock()
	r.bn.noLive = true
	r.bn.mu.Unlock()
	r.quick(0)
	r.attest("vc1", 0, key(1))
	r.attest("vc2", 0, key(2))
	r.leader = false
	if ev := r.quick(20); ev.Leader || len(ev.Failed) != 0 {
		t.Fatalf("not leading: %+v", ev)
	}
	r.leader = true
	r.attest("vc2", 3, key(2)) // vc1's requests went to the other instance meanwhile
	r.attest("sb", 3, key(1), key(2))
	if ev := r.quick(31); len(ev.Failed) != 0 || len(ev.Moves) != 0 {
		t.Fatalf("first quick check after leading again: %+v, want nothing judged", ev)
	}
	r.attest("vc2", 5, key(2))
	r.attest("sb", 5, key(1), key(2))
	if ev := r.quick(49.5); len(ev.Moves) != 1 || ev.Moves[0].From != "vc1" {
		t.Fatalf("silent for more than the limit since leading again: %+v, want vc1 moved", ev)
	}
}

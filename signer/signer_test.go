package signer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// fakeStore is a slashing.Store that records the calls of the sign pipeline and answers with err.
// With gate set, SignBlock and SignAttestation announce themselves on entered and wait for gate
// to close.
type fakeStore struct {
	mu      sync.Mutex
	blocks  []slashing.Block
	atts    []slashing.Attestation
	err     error
	pingErr error
	gate    chan struct{}
	entered chan struct{}
}

var _ slashing.Store = (*fakeStore)(nil)

func (f *fakeStore) wait(ctx context.Context) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *fakeStore) SignBlock(ctx context.Context, b slashing.Block) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocks = append(f.blocks, b)
	return f.err
}

func (f *fakeStore) SignAttestation(ctx context.Context, a slashing.Attestation) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.atts = append(f.atts, a)
	return f.err
}

func (f *fakeStore) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.blocks) + len(f.atts)
}

func (f *fakeStore) GenesisValidatorsRoot(context.Context) (phase0.Root, bool, error) {
	return phase0.Root{}, false, errors.New("fakeStore: not implemented")
}

func (f *fakeStore) ImportValidator(context.Context, phase0.Root, slashing.ValidatorHistory) error {
	return errors.New("fakeStore: not implemented")
}

func (f *fakeStore) ExportValidators(context.Context, []phase0.BLSPubKey, func(slashing.ValidatorHistory) error) error {
	return errors.New("fakeStore: not implemented")
}

func (f *fakeStore) SetEnabled(context.Context, phase0.BLSPubKey, bool) error {
	return errors.New("fakeStore: not implemented")
}

func (f *fakeStore) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("fakeStore: Ping without a deadline")
	}
	return f.pingErr
}

func (f *fakeStore) Close() error { return nil }

// countingKey wraps a key and counts Sign calls, so a test can prove nothing was signed.
type countingKey struct {
	keystore.Key
	signs atomic.Int64
}

func (k *countingKey) Sign(ctx context.Context, root [32]byte) (keystore.Signature, error) {
	k.signs.Add(1)
	return k.Key.Sign(ctx, root)
}

// observation is one Observer call.
type observation struct {
	typ     signer.Type
	outcome signer.Outcome
}

type recordingObserver struct {
	mu     sync.Mutex
	got    []observation
	events []signer.Event
}

func (o *recordingObserver) ObserveRequest(e signer.Event) {
	if e.Duration < 0 {
		panic("negative duration")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, observation{e.Type, e.Outcome})
	o.events = append(o.events, e)
}

func (o *recordingObserver) lastEvent() signer.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.events) == 0 {
		return signer.Event{}
	}
	return o.events[len(o.events)-1]
}

func (o *recordingObserver) last() observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) == 0 {
		return observation{}
	}
	return o.got[len(o.got)-1]
}

const (
	mainnetGenesis = 1606824023
	epochDuration  = 12 * 32 * time.Second
	nowEpoch       = 1000 // the wall-clock epoch of every fixture
)

var (
	// testNow lies 10 s into epoch nowEpoch of mainnet.
	testNow        = time.Unix(mainnetGenesis, 0).Add(nowEpoch*epochDuration + 10*time.Second)
	testGVR, _     = signer.ParseRoot("0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95") // mainnet
	genesisVersion = phase0.Version{0, 0, 0, 0}
	altairVersion  = phase0.Version{1, 0, 0, 0}
)

type fixture struct {
	s     *signer.Signer
	net   *signer.Network
	store *fakeStore
	keys  []*countingKey
	obs   *recordingObserver
}

// setup builds a Signer on mainnet at testNow with three interop keys and a fakeStore. mod may
// change the config before New.
func setup(t *testing.T, mod func(*signer.Config)) *fixture {
	t.Helper()
	f := &fixture{net: mustNetwork(t, "mainnet"), store: &fakeStore{}, obs: &recordingObserver{}}
	var keys []keystore.Key
	for i := range uint64(3) {
		sk, err := keystore.InteropSecretKey(i)
		if err != nil {
			t.Fatal(err)
		}
		k := &countingKey{Key: keystore.NewLocalKey(sk)}
		f.keys = append(f.keys, k)
		keys = append(keys, k)
	}
	cfg := signer.Config{
		Network: f.net, Keys: keyset.New(keys), Store: f.store, FarFutureEpochs: 2,
		Now: func() time.Time { return testNow }, Observer: f.obs,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := signer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	return f
}

func (f *fixture) pub(i int) string { return f.keys[i].PublicKey().String() }

func (f *fixture) signs() int64 {
	var n int64
	for _, k := range f.keys {
		n += k.signs.Load()
	}
	return n
}

// wantSigned checks that sig is a valid signature of r's recomputed signing root by key i.
func (f *fixture) wantSigned(t *testing.T, i int, r *signer.Request, sig keystore.Signature, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	msg, err := f.net.Compute(r)
	if err != nil {
		t.Fatal(err)
	}
	if !keystore.Verify(f.keys[i].PublicKey(), msg.Root[:], sig) {
		t.Errorf("signature %s does not verify for the signing root %#x", sig, msg.Root[:])
	}
}

// wantRefusedBefore checks an error of the given kind, a zero signature, and that neither the
// store nor any key was reached.
func (f *fixture) wantRefusedBefore(t *testing.T, sig keystore.Signature, err, kind error, substrings ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("Sign error = %v, want %v", err, kind)
	}
	if sig != (keystore.Signature{}) {
		t.Error("a signature was returned with the error")
	}
	if n := f.store.calls(); n != 0 {
		t.Errorf("the slashing store was called %d times", n)
	}
	if n := f.signs(); n != 0 {
		t.Errorf("a key signed %d times", n)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func forkInfo(previous, current phase0.Version, epoch phase0.Epoch) *signer.ForkInfo {
	return &signer.ForkInfo{
		Fork:                  phase0.Fork{PreviousVersion: previous, CurrentVersion: current, Epoch: epoch},
		GenesisValidatorsRoot: testGVR,
	}
}

func attestation(source, target phase0.Epoch, blockRoot byte) *signer.Request {
	return &signer.Request{
		Type:     signer.TypeAttestation,
		ForkInfo: forkInfo(genesisVersion, genesisVersion, 0),
		Attestation: &phase0.AttestationData{
			Slot: phase0.Slot(target) * 32, Index: 1, BeaconBlockRoot: phase0.Root{blockRoot},
			Source: &phase0.Checkpoint{Epoch: source, Root: phase0.Root{0x50}},
			Target: &phase0.Checkpoint{Epoch: target, Root: phase0.Root{0x51}},
		},
	}
}

func blockHeader(slot phase0.Slot) *signer.Request {
	return &signer.Request{
		Type:     signer.TypeBlockV2,
		Version:  signer.Deneb,
		ForkInfo: forkInfo(genesisVersion, genesisVersion, 0),
		BlockHeader: &phase0.BeaconBlockHeader{
			Slot: slot, ProposerIndex: 7, ParentRoot: phase0.Root{1}, StateRoot: phase0.Root{2}, BodyRoot: phase0.Root{3},
		},
	}
}

func randao(epoch phase0.Epoch) *signer.Request {
	return &signer.Request{Type: signer.TypeRandaoReveal, ForkInfo: forkInfo(genesisVersion, genesisVersion, 0), Epoch: &epoch}
}

// decoded builds a request from JSON (see request_test.go) and gives it fi.
func decoded(t *testing.T, body string, fi *signer.ForkInfo) *signer.Request {
	t.Helper()
	r, err := signer.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if fi != nil {
		r.ForkInfo = fi
	}
	return r
}

func TestSignAttestationRecordsThenSigns(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	r := attestation(nowEpoch-1, nowEpoch, 0xaa)
	sig, err := f.s.Sign(t.Context(), f.pub(1), r)
	f.wantSigned(t, 1, r, sig, err)
	if len(f.store.atts) != 1 || len(f.store.blocks) != 0 {
		t.Fatalf("store got %d attestations and %d blocks, want 1 and 0", len(f.store.atts), len(f.store.blocks))
	}
	msg, _ := f.net.Compute(r)
	want := slashing.Attestation{
		Pubkey: phase0.BLSPubKey(f.keys[1].PublicKey()), SourceEpoch: nowEpoch - 1, TargetEpoch: nowEpoch,
		SigningRoot: msg.Root, GenesisValidatorsRoot: testGVR,
	}
	if f.store.atts[0] != want {
		t.Errorf("store got %+v, want %+v", f.store.atts[0], want)
	}
	wantEq(t, "observation", f.obs.last(), observation{signer.TypeAttestation, signer.OutcomeSigned})
}

func TestSignBlockRecordsThenSigns(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	r := blockHeader(nowEpoch*32 + 5)
	sig, err := f.s.Sign(t.Context(), f.pub(0), r)
	f.wantSigned(t, 0, r, sig, err)
	if len(f.store.blocks) != 1 || len(f.store.atts) != 0 {
		t.Fatalf("store got %d blocks and %d attestations, want 1 and 0", len(f.store.blocks), len(f.store.atts))
	}
	msg, _ := f.net.Compute(r)
	want := slashing.Block{Pubkey: phase0.BLSPubKey(f.keys[0].PublicKey()), Slot: nowEpoch*32 + 5, SigningRoot: msg.Root, GenesisValidatorsRoot: testGVR}
	if f.store.blocks[0] != want {
		t.Errorf("store got %+v, want %+v", f.store.blocks[0], want)
	}
}

func TestSignNonSlashableSkipsStore(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *signer.Config) { c.FarFutureEpochs = 1 })
	// Non-slashable types are neither recorded nor subject to the far-future guard.
	r := randao(nowEpoch + 100)
	sig, err := f.s.Sign(t.Context(), f.pub(2), r)
	f.wantSigned(t, 2, r, sig, err)
	if n := f.store.calls(); n != 0 {
		t.Errorf("store called %d times for a RANDAO reveal", n)
	}
}

func TestSignSuppliedSigningRoot(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	r := attestation(nowEpoch-1, nowEpoch, 0xaa)
	msg, err := f.net.Compute(r)
	if err != nil {
		t.Fatal(err)
	}

	wrong := msg.Root
	wrong[31] ^= 1
	r.SigningRoot = &wrong
	sig, err := f.s.Sign(t.Context(), f.pub(0), r)
	f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest, "signing root", "does not match")
	wantEq(t, "observation", f.obs.last(), observation{signer.TypeAttestation, signer.OutcomeInvalid})

	r.SigningRoot = &msg.Root
	sig, err = f.s.Sign(t.Context(), f.pub(0), r)
	f.wantSigned(t, 0, r, sig, err)
}

func TestSignUnknownKey(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	sk, err := keystore.InteropSecretKey(9)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := f.s.Sign(t.Context(), sk.PublicKey().String(), attestation(nowEpoch-1, nowEpoch, 1))
	f.wantRefusedBefore(t, sig, err, signer.ErrUnknownKey, sk.PublicKey().String())
	wantEq(t, "observation", f.obs.last(), observation{signer.TypeAttestation, signer.OutcomeUnknownKey})
}

func TestSignMalformedIdentifier(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "0x", "0x1234", "not-a-key", "0x" + strings.Repeat("zz", 48), "0x" + strings.Repeat("ab", 49)} {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			sig, err := f.s.Sign(t.Context(), id, attestation(nowEpoch-1, nowEpoch, 1))
			f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest, "identifier")
		})
	}
}

func TestSignNilRequest(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	sig, err := f.s.Sign(t.Context(), f.pub(0), nil)
	f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest)
	wantEq(t, "observation", f.obs.last(), observation{"", signer.OutcomeInvalid})
}

func TestSignStoreRefusalPropagates(t *testing.T) {
	t.Parallel()
	for _, r := range []*signer.Request{attestation(nowEpoch-1, nowEpoch, 1), blockHeader(nowEpoch * 32)} {
		t.Run(string(r.Type), func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			f.store.err = slashing.Refuse(slashing.DoubleVote, "already signed another root")
			sig, err := f.s.Sign(t.Context(), f.pub(0), r)
			if !errors.Is(err, signer.ErrSlashable) || !errors.Is(err, slashing.ErrSlashable) {
				t.Fatalf("Sign error = %v, want ErrSlashable", err)
			}
			var refusal *slashing.Refusal
			if !errors.As(err, &refusal) || refusal.Reason != slashing.DoubleVote {
				t.Errorf("error %v does not carry the store's refusal reason", err)
			}
			if sig != (keystore.Signature{}) || f.signs() != 0 {
				t.Errorf("signed after a refusal: sig %s, %d key signs", sig, f.signs())
			}
			wantEq(t, "store calls", f.store.calls(), 1)
			wantEq(t, "observation", f.obs.last(), observation{r.Type, signer.OutcomeRefused})
		})
	}
}

func TestSignWithMemoryStore(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *signer.Config) { c.Store = slashingtest.NewMemory() })
	first := attestation(nowEpoch-1, nowEpoch, 0xaa)
	sig, err := f.s.Sign(t.Context(), f.pub(0), first)
	f.wantSigned(t, 0, first, sig, err)

	// The identical message again is a repeat: signed again.
	sig, err = f.s.Sign(t.Context(), f.pub(0), attestation(nowEpoch-1, nowEpoch, 0xaa))
	f.wantSigned(t, 0, first, sig, err)

	// Another root at the same target is a double vote; another key is unaffected.
	before := f.signs()
	sig, err = f.s.Sign(t.Context(), f.pub(0), attestation(nowEpoch-1, nowEpoch, 0xbb))
	if !errors.Is(err, signer.ErrSlashable) || sig != (keystore.Signature{}) {
		t.Fatalf("double vote: sig %s, err %v; want ErrSlashable and no signature", sig, err)
	}
	if f.signs() != before {
		t.Error("a key signed the double vote")
	}
	second := attestation(nowEpoch-1, nowEpoch, 0xbb)
	sig, err = f.s.Sign(t.Context(), f.pub(1), second)
	f.wantSigned(t, 1, second, sig, err)
}

func TestSignStoreUnavailable(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	f.store.err = fmt.Errorf("%w: connection refused", slashing.ErrUnavailable)
	sig, err := f.s.Sign(t.Context(), f.pub(0), blockHeader(nowEpoch*32))
	if !errors.Is(err, signer.ErrUnavailable) {
		t.Fatalf("Sign error = %v, want ErrUnavailable", err)
	}
	if errors.Is(err, signer.ErrSlashable) {
		t.Error("an unavailable store is reported as a slashing refusal")
	}
	if sig != (keystore.Signature{}) || f.signs() != 0 {
		t.Error("signed although the store was unavailable")
	}
	wantEq(t, "outcome", signer.OutcomeOf(err), signer.OutcomeUnavailable)
	wantEq(t, "observation", f.obs.last(), observation{signer.TypeBlockV2, signer.OutcomeUnavailable})
}

func TestSignFarFutureGuard(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		margin  uint64
		r       *signer.Request
		refused bool
	}{
		{"attestation at now", 2, attestation(nowEpoch-1, nowEpoch, 1), false},
		{"attestation at the margin", 2, attestation(nowEpoch-1, nowEpoch+2, 1), false},
		{"attestation one past the margin", 2, attestation(nowEpoch-1, nowEpoch+3, 1), true},
		{"attestation far ahead", 2, attestation(nowEpoch-1, 1<<40, 1), true},
		{"attestation from the past", 2, attestation(0, 1, 1), false},
		{"margin one, two epochs ahead", 1, attestation(nowEpoch-1, nowEpoch+2, 1), true},
		{"margin one, next epoch", 1, attestation(nowEpoch-1, nowEpoch+1, 1), false},
		{"zero turns the guard off", 0, attestation(nowEpoch-1, 1<<40, 1), false},
		{"block at the last slot of the margin", 2, blockHeader((nowEpoch+3)*32 - 1), false},
		{"block at the first slot past the margin", 2, blockHeader((nowEpoch + 3) * 32), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, func(c *signer.Config) { c.FarFutureEpochs = tc.margin })
			sig, err := f.s.Sign(t.Context(), f.pub(0), tc.r)
			if !tc.refused {
				f.wantSigned(t, 0, tc.r, sig, err)
				wantEq(t, "store calls", f.store.calls(), 1)
				return
			}
			f.wantRefusedBefore(t, sig, err, signer.ErrSlashable, "epoch")
			var refusal *slashing.Refusal
			if !errors.As(err, &refusal) || refusal.Reason != slashing.FarFuture {
				t.Errorf("error %v is not a FarFuture refusal", err)
			}
			wantEq(t, "observation", f.obs.last(), observation{tc.r.Type, signer.OutcomeRefused})
		})
	}
}

func TestSignFarFutureGuardOffWithoutGenesisTime(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *signer.Config) { c.Network = mustNetwork(t, "minimal") })
	r := attestation(1<<39, 1<<40, 1)
	r.ForkInfo = forkInfo(phase0.Version{0, 0, 0, 1}, phase0.Version{0, 0, 0, 1}, 0)
	sig, err := f.s.Sign(t.Context(), f.pub(0), r)
	if err != nil {
		t.Fatalf("Sign: %v (the guard needs a known genesis time)", err)
	}
	if sig == (keystore.Signature{}) {
		t.Error("no signature")
	}
	wantEq(t, "store calls", f.store.calls(), 1)
}

func TestSignFarFutureGuardBeforeGenesis(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *signer.Config) {
		c.Now = func() time.Time { return time.Unix(mainnetGenesis-3600, 0) }
	})
	// Before genesis (a future or mistyped genesis time) the guard measures from epoch 0: a
	// far-future vote must not raise the watermarks for good.
	r := attestation(0, 1, 1)
	sig, err := f.s.Sign(t.Context(), f.pub(0), r)
	f.wantSigned(t, 0, r, sig, err)
	g := setup(t, func(c *signer.Config) {
		c.Now = func() time.Time { return time.Unix(mainnetGenesis-3600, 0) }
	})
	far := attestation(1, 1_000_000, 1)
	sig, err = g.s.Sign(t.Context(), g.pub(0), far)
	g.wantRefusedBefore(t, sig, err, signer.ErrSlashable, "epoch")
}

func TestSignMaxInFlight(t *testing.T) {
	t.Parallel()
	const limit = 2
	store := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 16)} // buffered: a buggy extra call must not hang the test
	f := setup(t, func(c *signer.Config) { c.Store = store; c.Concurrency = limit; c.MaxInFlight = limit })
	f.store = store

	errs := make(chan error, limit)
	for i := range limit {
		go func() {
			_, err := f.s.Sign(t.Context(), f.pub(i), attestation(nowEpoch-1, nowEpoch, byte(i)))
			errs <- err
		}()
	}
	for range limit {
		select {
		case <-store.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the in-flight requests never reached the store")
		}
	}

	start := time.Now()
	sig, err := f.s.Sign(t.Context(), f.pub(2), randao(nowEpoch))
	if !errors.Is(err, signer.ErrOverloaded) {
		t.Errorf("Sign beyond MaxInFlight: err %v, want ErrOverloaded", err)
	}
	if sig != (keystore.Signature{}) {
		t.Error("overloaded Sign returned a signature")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("overloaded Sign took %v, want fail-fast", d)
	}
	wantEq(t, "outcome", signer.OutcomeOf(err), signer.OutcomeOverloaded)
	wantEq(t, "observation", f.obs.last(), observation{signer.TypeRandaoReveal, signer.OutcomeOverloaded})

	close(store.gate)
	for range limit {
		if err := <-errs; err != nil {
			t.Errorf("in-flight Sign: %v", err)
		}
	}
	// The slots are free again.
	r := randao(nowEpoch)
	sig, err = f.s.Sign(t.Context(), f.pub(2), r)
	f.wantSigned(t, 2, r, sig, err)
}

// TestSignQueuesBeyondConcurrency: a request that finds every slot taken waits for one (it is
// not refused) and does nothing before it gets it.
func TestSignQueuesBeyondConcurrency(t *testing.T) {
	t.Parallel()
	store := &fakeStore{gate: make(chan struct{}), entered: make(chan struct{}, 16)}
	f := setup(t, func(c *signer.Config) { c.Store = store; c.Concurrency = 1; c.MaxInFlight = 8 })
	f.store = store

	errs := make(chan error, 2)
	go func() {
		_, err := f.s.Sign(t.Context(), f.pub(0), attestation(nowEpoch-1, nowEpoch, 0))
		errs <- err
	}()
	<-store.entered
	go func() {
		_, err := f.s.Sign(t.Context(), f.pub(1), attestation(nowEpoch-1, nowEpoch, 1))
		errs <- err
	}()
	for {
		if running, queued := f.s.Load(); running == 1 && queued == 1 {
			break
		}
		runtime.Gosched()
	}
	select {
	case <-store.entered:
		t.Fatal("the queued request reached the store while the only slot was held")
	default:
	}
	close(store.gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Sign: %v", err)
		}
	}
	if n := len(store.entered); n != 1 {
		t.Errorf("store entered %d more times, want 1 (the queued request)", n)
	}
}

func TestSignContextCancelledInStore(t *testing.T) {
	t.Parallel()
	store := &fakeStore{gate: make(chan struct{})}
	f := setup(t, func(c *signer.Config) { c.Store = store })
	f.store = store
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sig, err := f.s.Sign(ctx, f.pub(0), attestation(nowEpoch-1, nowEpoch, 1))
	if err == nil || sig != (keystore.Signature{}) || f.signs() != 0 {
		t.Fatalf("Sign with a cancelled store call: sig %s, err %v; want an error and no signature", sig, err)
	}
}

func TestSyncCommitteeTypesNeedAltair(t *testing.T) {
	t.Parallel()
	altairSlot := phase0.Slot(74240 * 32)
	syncMsg := func(slot phase0.Slot) string {
		return req("SYNC_COMMITTEE_MESSAGE", "sync_committee_message", obj("beacon_block_root", jRoot, "slot", q(fmt.Sprint(slot))))
	}
	selection := func(slot phase0.Slot) string {
		return req("SYNC_COMMITTEE_SELECTION_PROOF", "sync_aggregator_selection_data", obj("slot", q(fmt.Sprint(slot)), "subcommittee_index", q("1")))
	}
	contribution := func(slot phase0.Slot) string {
		return req("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "contribution_and_proof", strings.Replace(jContribution, `"slot":"13"`, `"slot":"`+fmt.Sprint(slot)+`"`, 1))
	}
	genesisOnly := forkInfo(genesisVersion, genesisVersion, 0)
	altairFork := forkInfo(genesisVersion, altairVersion, 74240)
	for name, body := range map[string]func(phase0.Slot) string{"message": syncMsg, "selection": selection, "contribution": contribution} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			sig, err := f.s.Sign(t.Context(), f.pub(0), decoded(t, body(altairSlot), genesisOnly))
			f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest, "ALTAIR", "genesis")

			// With the real fork info, a slot before Altair still picks the genesis version.
			sig, err = f.s.Sign(t.Context(), f.pub(0), decoded(t, body(altairSlot-1), altairFork))
			f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest, "ALTAIR")

			r := decoded(t, body(altairSlot), altairFork)
			sig, err = f.s.Sign(t.Context(), f.pub(0), r)
			f.wantSigned(t, 0, r, sig, err)
		})
	}
}

func TestSignForeignForkVersion(t *testing.T) {
	t.Parallel()
	foreign := phase0.Version{0x90, 0x00, 0x00, 0x69} // Sepolia's genesis version
	tests := []struct {
		name string
		r    *signer.Request
	}{
		{"attestation, current version", func() *signer.Request {
			r := attestation(nowEpoch-1, nowEpoch, 1)
			r.ForkInfo = forkInfo(genesisVersion, foreign, 0)
			return r
		}()},
		{"block, previous version", func() *signer.Request {
			r := blockHeader(nowEpoch * 32)
			r.ForkInfo = forkInfo(foreign, altairVersion, nowEpoch+1)
			return r
		}()},
		{"randao", func() *signer.Request {
			r := randao(nowEpoch)
			r.ForkInfo = forkInfo(phase0.Version{0xde, 0xad, 0xbe, 0xef}, phase0.Version{0xde, 0xad, 0xbe, 0xef}, 0)
			return r
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			sig, err := f.s.Sign(t.Context(), f.pub(0), tc.r)
			f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest, "not a fork of network mainnet")
		})
	}
}

func TestSignDeposit(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	right := decoded(t, obj("type", q("DEPOSIT"), "deposit", jDeposit), nil)
	sig, err := f.s.Sign(t.Context(), f.pub(0), right)
	f.wantSigned(t, 0, right, sig, err)

	// A deposit for another network is signed for that network's fork version (not refused, and
	// not signed for this network's: the two signatures differ).
	other := decoded(t, obj("type", q("DEPOSIT"), "deposit", strings.Replace(jDeposit, `"genesis_fork_version":"0x00000000"`, `"genesis_fork_version":"0x00000001"`, 1)), nil)
	sig2, err := f.s.Sign(t.Context(), f.pub(0), other)
	f.wantSigned(t, 0, other, sig2, err)
	if sig2 == sig {
		t.Fatal("a deposit for another fork version got this network's signature")
	}
	wantEq(t, "store calls", f.store.calls(), 0)
}

func TestSignValidatorRegistration(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	r := decoded(t, obj("type", q("VALIDATOR_REGISTRATION"), "validator_registration", jRegistration), nil)
	sig, err := f.s.Sign(t.Context(), f.pub(1), r)
	f.wantSigned(t, 1, r, sig, err)
	wantEq(t, "store calls", f.store.calls(), 0)
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	_, decodeErr := signer.DecodeRequest([]byte("[]"))
	tests := []struct {
		err  error
		want signer.Outcome
	}{
		{nil, signer.OutcomeSigned},
		{signer.ErrSlashable, signer.OutcomeRefused},
		{slashing.Refuse(slashing.SurroundingVote, "x"), signer.OutcomeRefused},
		{fmt.Errorf("ctx: %w", slashing.Refuse(slashing.FarFuture, "x")), signer.OutcomeRefused},
		{signer.ErrInvalidRequest, signer.OutcomeInvalid},
		{decodeErr, signer.OutcomeInvalid},
		{fmt.Errorf("%w: nope", signer.ErrUnknownKey), signer.OutcomeUnknownKey},
		{fmt.Errorf("%w: nope", signer.ErrForbidden), signer.OutcomeForbidden},
		{fmt.Errorf("%w: standby", signer.ErrNotLeader), signer.OutcomeNotLeader},
		{fmt.Errorf("%w: busy", signer.ErrOverloaded), signer.OutcomeOverloaded},
		{fmt.Errorf("%w: down", signer.ErrUnavailable), signer.OutcomeUnavailable},
		{slashing.ErrUnavailable, signer.OutcomeUnavailable},
		{errors.New("boom"), signer.OutcomeError},
		{context.Canceled, signer.OutcomeError},
	}
	for _, tc := range tests {
		if got := signer.OutcomeOf(tc.err); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestNewRequiresCollaborators(t *testing.T) {
	t.Parallel()
	n := mustNetwork(t, "minimal")
	keys := keyset.New(nil)
	store := &fakeStore{}
	for name, cfg := range map[string]signer.Config{
		"no network": {Keys: keys, Store: store},
		"no keys":    {Network: n, Store: store},
		"no store":   {Network: n, Keys: keys},
	} {
		if _, err := signer.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	s, err := signer.New(signer.Config{Network: n, Keys: keys, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if s.Network() != n || s.Keys() != keys {
		t.Error("Network() or Keys() does not return the configured value")
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	h := f.s.Health(t.Context(), time.Second)
	if h.Store != nil || !h.OK() || h.Keys != 3 || len(h.Sources) != 0 {
		t.Errorf("healthy: %+v, OK %v", h, h.OK())
	}

	f.s.SetSourceReports([]signer.SourceReport{
		{Name: "keystore-dir", Loaded: 3},
		{Name: "key-config", Loaded: 0, Errors: []keystore.LoadError{{Item: "bad.yaml", Err: keystore.ErrMalformed}}},
	})
	h = f.s.Health(t.Context(), time.Second)
	if h.OK() || len(h.Sources) != 2 || h.Sources[1].Errors[0].Item != "bad.yaml" {
		t.Errorf("with a load error: %+v, OK %v; want not OK and the reports", h, h.OK())
	}

	f.s.SetSourceReports(nil)
	f.store.pingErr = fmt.Errorf("%w: ping", slashing.ErrUnavailable)
	h = f.s.Health(t.Context(), time.Second)
	if h.OK() || !errors.Is(h.Store, slashing.ErrUnavailable) {
		t.Errorf("store down: %+v, OK %v", h, h.OK())
	}
}

func TestKeySet(t *testing.T) {
	t.Parallel()
	var keys []keystore.Key
	for i := range uint64(6) {
		sk, err := keystore.InteropSecretKey(i)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, keystore.NewLocalKey(sk))
	}
	dupSK, err := keystore.InteropSecretKey(1)
	if err != nil {
		t.Fatal(err)
	}
	dup := keystore.NewLocalKey(dupSK)

	s := keyset.New([]keystore.Key{keys[3], keys[1], keys[0], dup, keys[2]})
	wantEq(t, "Len", s.Len(), 4)
	if k, ok := s.Get(keys[1].PublicKey()); !ok || k != keys[1] {
		t.Errorf("Get(key 1) = %v, %v; want the first of the duplicates", k, ok)
	}
	if _, ok := s.Get(keys[4].PublicKey()); ok {
		t.Error("Get found a key that was never added")
	}
	wantSorted(t, s.PublicKeys(), keys[:4])

	s.Replace([]keystore.Key{keys[5], keys[4]})
	wantEq(t, "Len after Replace", s.Len(), 2)
	if _, ok := s.Get(keys[0].PublicKey()); ok {
		t.Error("Replace kept an old key")
	}
	if k, ok := s.Get(keys[5].PublicKey()); !ok || k != keys[5] {
		t.Error("Replace lost a new key")
	}
	wantSorted(t, s.PublicKeys(), keys[4:])

	s.Replace(nil)
	if s.Len() != 0 || len(s.PublicKeys()) != 0 {
		t.Errorf("empty set: Len %d, PublicKeys %v", s.Len(), s.PublicKeys())
	}
	if s.PublicKeys() == nil {
		t.Error("PublicKeys of an empty set is nil (encodes as JSON null, not [])")
	}
}

// wantSorted checks that got holds exactly the public keys of want, in byte order.
func wantSorted(t *testing.T, got []keystore.PublicKey, want []keystore.Key) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("PublicKeys has %d keys, want %d", len(got), len(want))
	}
	for i := 1; i < len(got); i++ {
		if bytes.Compare(got[i-1][:], got[i][:]) >= 0 {
			t.Errorf("PublicKeys not in byte order at %d: %s >= %s", i, got[i-1], got[i])
		}
	}
	for _, k := range want {
		found := false
		for _, pk := range got {
			found = found || pk == k.PublicKey()
		}
		if !found {
			t.Errorf("PublicKeys lacks %s", k.PublicKey())
		}
	}
}

func TestParseIdentifier(t *testing.T) {
	t.Parallel()
	sk, err := keystore.InteropSecretKey(0)
	if err != nil {
		t.Fatal(err)
	}
	want := sk.PublicKey()
	plain := strings.TrimPrefix(want.String(), "0x")
	wantEq(t, "interop key 0", want.String(), "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c")
	for _, id := range []string{
		"0x" + plain,
		plain,
		"0x" + strings.ToUpper(plain),
		"0X" + strings.ToUpper(plain),
		strings.ToUpper(plain),
		" 0x" + plain + " ",
	} {
		got, err := signer.ParseIdentifier(id)
		if err != nil || got != want {
			t.Errorf("ParseIdentifier(%q) = %s, %v; want %s", id, got, err, want)
		}
	}
	for _, id := range []string{"", "0x", "0x" + plain[:94], "0x" + plain + "00", "0x" + plain[:95] + "g", "0x0x" + plain} {
		if _, err := signer.ParseIdentifier(id); !errors.Is(err, signer.ErrInvalidRequest) {
			t.Errorf("ParseIdentifier(%q) error = %v, want ErrInvalidRequest", id, err)
		}
	}
}

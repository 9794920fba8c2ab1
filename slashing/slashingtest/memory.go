package slashingtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// Memory is an in-memory slashing.Store: the reference model the
// conformance suite compares real stores against, and a fake for unit tests
// of other packages. It applies exactly the rules of package slashing
// (CheckBlock, CheckAttestation, MergeBlock, MergeAttestation,
// ImportWatermarks, ExportHistory) under one mutex. It is NOT durable: never
// use it to protect real keys.
type Memory struct {
	mu     sync.Mutex
	closed bool
	gvr    *phase0.Root
	high   *slashing.HighWatermark
	keys   map[phase0.BLSPubKey]*memKey
	// importing holds the import markers of keys whose chunked import is in
	// progress (see slashing.ChunkImporter).
	importing map[phase0.BLSPubKey]*memImport
	// importIdle is the import idle timeout (nil: slashing.DefaultImportIdleTimeout).
	importIdle *time.Duration
}

type memKey struct {
	disabled bool
	lw       slashing.LowWatermarks
	blocks   map[phase0.Slot]slashing.SignedBlock
	atts     map[phase0.Epoch]slashing.SignedAttestation
}

var (
	_ slashing.Store         = (*Memory)(nil)
	_ slashing.Maintainer    = (*Memory)(nil)
	_ slashing.ChunkImporter = (*Memory)(nil)
)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{keys: make(map[phase0.BLSPubKey]*memKey)}
}

var errMemoryClosed = fmt.Errorf("%w: memory store closed", slashing.ErrUnavailable)

func (m *Memory) key(pk phase0.BLSPubKey) *memKey {
	k := m.keys[pk]
	if k == nil {
		k = &memKey{blocks: map[phase0.Slot]slashing.SignedBlock{}, atts: map[phase0.Epoch]slashing.SignedAttestation{}}
		m.keys[pk] = k
	}
	return k
}

func (m *Memory) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errMemoryClosed
	}
	return nil
}

// SignBlock implements slashing.Store.
func (m *Memory) SignBlock(ctx context.Context, b slashing.Block) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := slashing.CheckGenesisValidatorsRoot(m.gvr, b.GenesisValidatorsRoot); err != nil {
		return err
	}
	k := m.key(b.Pubkey)
	f := slashing.BlockFacts{Enabled: !k.disabled, LowWatermark: k.lw.Slot}
	if m.high != nil {
		f.High = &m.high.Slot
	}
	if e, ok := k.blocks[b.Slot]; ok {
		f.Existing = &e
	}
	v, err := slashing.CheckBlock(b, f)
	if err != nil || v == slashing.Repeat {
		return err
	}
	m.pin(b.GenesisValidatorsRoot)
	r := b.SigningRoot
	k.blocks[b.Slot] = slashing.SignedBlock{Slot: b.Slot, SigningRoot: &r}
	if k.lw.Slot == nil {
		s := b.Slot
		k.lw.Slot = &s
	}
	return nil
}

// SignAttestation implements slashing.Store.
func (m *Memory) SignAttestation(ctx context.Context, a slashing.Attestation) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := slashing.CheckGenesisValidatorsRoot(m.gvr, a.GenesisValidatorsRoot); err != nil {
		return err
	}
	k := m.key(a.Pubkey)
	f := slashing.AttestationFacts{Enabled: !k.disabled, LowWatermark: k.lw.Attestation}
	if m.high != nil {
		f.High = &m.high.Epoch
	}
	if e, ok := k.atts[a.TargetEpoch]; ok {
		f.SameTarget = &e
	}
	req := slashing.SignedAttestation{SourceEpoch: a.SourceEpoch, TargetEpoch: a.TargetEpoch}
	for _, e := range k.atts {
		if f.Surrounding == nil && slashing.Surrounds(e, req) {
			e := e
			f.Surrounding = &e
		}
		if f.Surrounded == nil && slashing.Surrounds(req, e) {
			e := e
			f.Surrounded = &e
		}
	}
	v, err := slashing.CheckAttestation(a, f)
	if err != nil || v == slashing.Repeat {
		return err
	}
	m.pin(a.GenesisValidatorsRoot)
	r := a.SigningRoot
	req.SigningRoot = &r
	k.atts[a.TargetEpoch] = req
	if k.lw.Attestation == nil {
		k.lw.Attestation = &slashing.AttestationWatermark{Source: a.SourceEpoch, Target: a.TargetEpoch}
	}
	return nil
}

func (m *Memory) pin(gvr phase0.Root) {
	if m.gvr == nil {
		m.gvr = &gvr
	}
}

// GenesisValidatorsRoot implements slashing.Store.
func (m *Memory) GenesisValidatorsRoot(ctx context.Context) (phase0.Root, bool, error) {
	if err := m.enter(ctx); err != nil {
		return phase0.Root{}, false, err
	}
	defer m.mu.Unlock()
	if m.gvr == nil {
		return phase0.Root{}, false, nil
	}
	return *m.gvr, true, nil
}

// ImportValidator implements slashing.Store.
func (m *Memory) ImportValidator(ctx context.Context, gvr phase0.Root, h slashing.ValidatorHistory) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.gvr != nil && *m.gvr != gvr {
		return fmt.Errorf("%w: genesis validators root %#x does not match the database's %#x", slashing.ErrInterchange, gvr[:], m.gvr[:])
	}
	if err := m.checkRunning(h.Pubkey, 0); err != nil {
		return err
	}
	m.pin(gvr)
	k := m.key(h.Pubkey)
	m.endImport(h.Pubkey, k) // a marker left by an interrupted import of the key
	for _, b := range h.SignedBlocks {
		if e, ok := k.blocks[b.Slot]; ok {
			b = slashing.MergeBlock(e, b)
		}
		k.blocks[b.Slot] = b
	}
	for _, a := range h.SignedAttestations {
		if e, ok := k.atts[a.TargetEpoch]; ok {
			a = slashing.MergeAttestation(e, a)
		}
		k.atts[a.TargetEpoch] = a
	}
	lw := slashing.ImportWatermarks(h)
	if k.lw.Slot == nil {
		k.lw.Slot = lw.Slot
	}
	if k.lw.Attestation == nil {
		k.lw.Attestation = lw.Attestation
	}
	return nil
}

// ExportValidators implements slashing.Store.
func (m *Memory) ExportValidators(ctx context.Context, pubkeys []phase0.BLSPubKey, fn func(slashing.ValidatorHistory) error) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	var out []slashing.ValidatorHistory
	want := func(phase0.BLSPubKey) bool { return true }
	if pubkeys != nil {
		want = func(pk phase0.BLSPubKey) bool { return slices.Contains(pubkeys, pk) }
	}
	for pk, k := range m.keys {
		if !want(pk) || (len(k.blocks) == 0 && len(k.atts) == 0 && k.lw.Slot == nil && k.lw.Attestation == nil) {
			continue
		}
		var blocks []slashing.SignedBlock
		for _, b := range k.blocks {
			blocks = append(blocks, b)
		}
		var atts []slashing.SignedAttestation
		for _, a := range k.atts {
			atts = append(atts, a)
		}
		out = append(out, slashing.ExportHistory(pk, k.lw, blocks, atts))
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b slashing.ValidatorHistory) int { return slashing.ComparePubkeys(a.Pubkey, b.Pubkey) })
	for _, h := range out {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// SetEnabled implements slashing.Store.
func (m *Memory) SetEnabled(ctx context.Context, pubkey phase0.BLSPubKey, enabled bool) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if mi := m.importing[pubkey]; mi != nil {
		mi.wasEnabled = enabled // applied when the import completes; disabled meanwhile
		return nil
	}
	m.key(pubkey).disabled = !enabled
	return nil
}

// Ping implements slashing.Store.
func (m *Memory) Ping(ctx context.Context) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

// Close implements slashing.Store.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Prune implements slashing.Maintainer.
func (m *Memory) Prune(ctx context.Context, opts slashing.PruneOptions) (slashing.PruneResult, error) {
	var res slashing.PruneResult
	if err := opts.Validate(); err != nil {
		return res, err
	}
	if err := m.enter(ctx); err != nil {
		return res, err
	}
	defer m.mu.Unlock()
	for _, k := range m.keys {
		var blocks []slashing.SignedBlock
		for _, b := range k.blocks {
			blocks = append(blocks, b)
		}
		var atts []slashing.SignedAttestation
		for _, a := range k.atts {
			atts = append(atts, a)
		}
		next, changed := slashing.PrunePlan(k.lw, blocks, atts, opts)
		if !changed {
			continue
		}
		res.Validators++
		k.lw = next
		for slot := range k.blocks {
			if next.Slot != nil && slot < *next.Slot {
				delete(k.blocks, slot)
				res.Blocks++
			}
		}
		for target := range k.atts {
			if next.Attestation != nil && target < next.Attestation.Target {
				delete(k.atts, target)
				res.Attestations++
			}
		}
	}
	return res, nil
}

// RaiseLowWatermarks implements slashing.Maintainer.
func (m *Memory) RaiseLowWatermarks(ctx context.Context, pubkeys []phase0.BLSPubKey, slot phase0.Slot, epoch phase0.Epoch) (int, error) {
	if err := m.enter(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	n := 0
	targets := pubkeys
	if targets == nil {
		for pk := range m.keys {
			targets = append(targets, pk)
		}
	}
	for _, pk := range targets {
		k := m.key(pk) // named keys are registered: watermarks can precede a key's first signature
		if next, changed := slashing.RaisedWatermarks(k.lw, slot, epoch); changed {
			k.lw = next
			n++
		}
	}
	return n, nil
}

// SetHighWatermark implements slashing.Maintainer.
func (m *Memory) SetHighWatermark(ctx context.Context, hw *slashing.HighWatermark) error {
	if err := m.enter(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if hw == nil {
		m.high = nil
		return nil
	}
	h := *hw
	m.high = &h
	return nil
}

// HighWatermark implements slashing.Maintainer.
func (m *Memory) HighWatermark(ctx context.Context) (*slashing.HighWatermark, error) {
	if err := m.enter(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	if m.high == nil {
		return nil, nil
	}
	h := *m.high
	return &h, nil
}

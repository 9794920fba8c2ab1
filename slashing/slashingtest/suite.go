// Package slashingtest is the conformance suite every slashing.Store
// implementation runs (Run, RunInterchangeVectors), and Memory, the
// in-memory reference model the suite compares stores against.
//
// A store's test looks like:
//
//	func TestConformance(t *testing.T) {
//		slashingtest.Run(t, func(t *testing.T) slashing.Store { return openFresh(t) })
//	}
//
// open must return a new, empty store each time; the suite closes it.
package slashingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// Key returns a deterministic test public key (not a valid BLS point: stores
// must not care).
func Key(n int) phase0.BLSPubKey {
	var pk phase0.BLSPubKey
	for i := range pk {
		pk[i] = 0x5a
	}
	pk[0] = 0x80 | byte(n>>8)
	pk[1] = byte(n)
	return pk
}

// Root returns a deterministic test root; Root(0) is the zero root.
func Root(n byte) phase0.Root {
	var r phase0.Root
	if n != 0 {
		for i := range r {
			r[i] = n
		}
	}
	return r
}

// GVR is the genesis validators root the suite signs with unless a step says
// otherwise.
var GVR = Root(0xee)

// OtherGVR is a second network's genesis validators root.
var OtherGVR = Root(0xdd)

// ---------------------------------------------------------------------------
// Steps of the specification tables.

type action struct {
	desc string
	do   func(ctx context.Context, s slashing.Store) error
}

type expect struct {
	ok     bool
	reason slashing.Reason // for refusals
	is     error           // for other errors
}

var ok = expect{ok: true}

func refused(r slashing.Reason) expect { return expect{reason: r} }
func fails(err error) expect           { return expect{is: err} }

func (e expect) String() string {
	switch {
	case e.ok:
		return "accepted"
	case e.reason != "":
		return "refused: " + string(e.reason)
	default:
		return fmt.Sprintf("error wrapping %v", e.is)
	}
}

type step struct {
	spec string // the rule this step shows, as a sentence
	act  action
	want expect
}

func block(key int, slot uint64, root byte) action { return blockOn(GVR, key, slot, root) }

func blockOn(gvr phase0.Root, key int, slot uint64, root byte) action {
	b := slashing.Block{Pubkey: Key(key), Slot: phase0.Slot(slot), SigningRoot: Root(root), GenesisValidatorsRoot: gvr}
	return action{
		desc: fmt.Sprintf("block key%d slot %d root %#x", key, slot, root),
		do:   func(ctx context.Context, s slashing.Store) error { return s.SignBlock(ctx, b) },
	}
}

func att(key int, source, target uint64, root byte) action {
	return attOn(GVR, key, source, target, root)
}

func attOn(gvr phase0.Root, key int, source, target uint64, root byte) action {
	a := slashing.Attestation{Pubkey: Key(key), SourceEpoch: phase0.Epoch(source), TargetEpoch: phase0.Epoch(target),
		SigningRoot: Root(root), GenesisValidatorsRoot: gvr}
	return action{
		desc: fmt.Sprintf("attestation key%d %d→%d root %#x", key, source, target, root),
		do:   func(ctx context.Context, s slashing.Store) error { return s.SignAttestation(ctx, a) },
	}
}

func setEnabled(key int, enabled bool) action {
	return action{
		desc: fmt.Sprintf("set key%d enabled=%v", key, enabled),
		do: func(ctx context.Context, s slashing.Store) error {
			return s.SetEnabled(ctx, Key(key), enabled)
		},
	}
}

// B and A build interchange messages for import steps; root 0 means "no
// signing_root" (unknown).
func B(slot uint64, root byte) slashing.SignedBlock {
	b := slashing.SignedBlock{Slot: phase0.Slot(slot)}
	if root != 0 {
		r := Root(root)
		b.SigningRoot = &r
	}
	return b
}

// A is an imported attestation (root 0: unknown).
func A(source, target uint64, root byte) slashing.SignedAttestation {
	a := slashing.SignedAttestation{SourceEpoch: phase0.Epoch(source), TargetEpoch: phase0.Epoch(target)}
	if root != 0 {
		r := Root(root)
		a.SigningRoot = &r
	}
	return a
}

// H is one validator's history for an import step.
func H(key int, blocks []slashing.SignedBlock, atts []slashing.SignedAttestation) slashing.ValidatorHistory {
	if blocks == nil {
		blocks = []slashing.SignedBlock{}
	}
	if atts == nil {
		atts = []slashing.SignedAttestation{}
	}
	return slashing.ValidatorHistory{Pubkey: Key(key), SignedBlocks: blocks, SignedAttestations: atts}
}

// Document encodes an interchange document.
func Document(gvr phase0.Root, hs ...slashing.ValidatorHistory) []byte {
	var buf bytes.Buffer
	enc, err := slashing.NewEncoder(&buf, slashing.Metadata{GenesisValidatorsRoot: gvr})
	if err != nil {
		panic(err)
	}
	for _, h := range hs {
		if err := enc.Encode(h); err != nil {
			panic(err)
		}
	}
	if err := enc.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func importDoc(gvr phase0.Root, hs ...slashing.ValidatorHistory) action {
	doc := Document(gvr, hs...)
	return action{
		desc: fmt.Sprintf("import %d entries for %#x", len(hs), gvr[:2]),
		do: func(ctx context.Context, s slashing.Store) error {
			_, err := slashing.Import(ctx, s, bytes.NewReader(doc), slashing.ImportOptions{})
			return err
		},
	}
}

func check(t *testing.T, got error, want expect) {
	t.Helper()
	switch {
	case want.ok:
		if got != nil {
			t.Fatalf("want accepted, got %v", got)
		}
	case want.reason != "":
		var r *slashing.Refusal
		if !errors.As(got, &r) || !errors.Is(got, slashing.ErrSlashable) {
			t.Fatalf("want refused (%s), got %v", want.reason, got)
		}
		if r.Reason != want.reason {
			t.Fatalf("want refused (%s), got refused (%s): %v", want.reason, r.Reason, got)
		}
	default:
		if !errors.Is(got, want.is) {
			t.Fatalf("want an error wrapping %v, got %v", want.is, got)
		}
	}
}

func fresh(t *testing.T, open func(t *testing.T) slashing.Store) slashing.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func runSteps(t *testing.T, s slashing.Store, steps []step) {
	t.Helper()
	ctx := context.Background()
	for i, st := range steps {
		err := st.act.do(ctx, s)
		t.Run(fmt.Sprintf("%02d %s", i, st.spec), func(t *testing.T) {
			t.Logf("%s → %v", st.act.desc, err)
			check(t, err, st.want)
		})
	}
}

// ---------------------------------------------------------------------------
// The specification.

var blockRules = []step{
	{"the first block of a new key is accepted", block(1, 100, 1), ok},
	{"an identical repeat (same slot, same root) is accepted again", block(1, 100, 1), ok},
	{"another root at a signed slot is a double proposal", block(1, 100, 2), refused(slashing.DoubleProposal)},
	{"the zero root at a signed slot is a double proposal", block(1, 100, 0), refused(slashing.DoubleProposal)},
	{"a higher slot is accepted", block(1, 120, 3), ok},
	{"a lower unsigned slot above the low watermark is accepted (complete history)", block(1, 110, 4), ok},
	{"that gap block is now recorded: another root there is refused", block(1, 110, 5), refused(slashing.DoubleProposal)},
	{"a slot below the low watermark (the first signed slot) is refused", block(1, 99, 1), refused(slashing.BelowLowWatermark)},
	{"keys are independent: the same slot for another key is accepted", block(2, 100, 2), ok},
	{"slot 0 for a new key is accepted", block(3, 0, 1), ok},
	{"the largest u64 slot is accepted (no far-future rule in the store)", block(4, ^uint64(0), 1), ok},
	{"and below it, for the same key, is the low watermark", block(4, 1<<63, 1), refused(slashing.BelowLowWatermark)},
}

var attestationRules = []step{
	{"the first vote of a new key is accepted", att(1, 10, 11, 1), ok},
	{"an identical repeat is accepted again", att(1, 10, 11, 1), ok},
	{"another root at a voted target is a double vote", att(1, 10, 11, 2), refused(slashing.DoubleVote)},
	{"another source at a voted target is a double vote", att(1, 11, 11, 1), refused(slashing.DoubleVote)},
	{"source after target is refused", att(1, 13, 12, 1), refused(slashing.SourceAfterTarget)},
	{"a later vote is accepted", att(1, 11, 12, 1), ok},
	{"a long vote is accepted", att(1, 12, 20, 1), ok},
	{"a vote surrounding a recorded one is refused", att(1, 11, 21, 1), refused(slashing.SurroundingVote)},
	{"a vote surrounded by a recorded one is refused", att(1, 13, 19, 1), refused(slashing.SurroundedVote)},
	{"a source below the low watermark source is refused", att(1, 9, 30, 1), refused(slashing.BelowLowWatermark)},
	{"a target below the low watermark target is refused", att(1, 10, 10, 1), refused(slashing.BelowLowWatermark)},
	{"a vote starting where a recorded one ends is not a surround", att(1, 20, 25, 1), ok},
	{"source equal to target is accepted", att(1, 27, 27, 1), ok},
	{"a second key votes", att(2, 10, 20, 1), ok},
	{"…and votes later", att(2, 30, 31, 1), ok},
	{"a vote in the gap between recorded ones that surrounds nothing is accepted (complete history)", att(2, 20, 25, 1), ok},
	{"…is recorded: another root there is a double vote", att(2, 20, 25, 2), refused(slashing.DoubleVote)},
	{"the largest u64 epochs are accepted", att(3, ^uint64(0)-1, ^uint64(0), 1), ok},
}

var genesisRules = []step{
	{"the first signature pins the genesis validators root", blockOn(GVR, 1, 10, 1), ok},
	{"a block for another network is refused", blockOn(OtherGVR, 1, 11, 1), refused(slashing.GenesisRootMismatch)},
	{"an attestation for another network is refused", attOn(OtherGVR, 2, 1, 2, 1), refused(slashing.GenesisRootMismatch)},
	{"an identical repeat for another network is refused", blockOn(OtherGVR, 1, 10, 1), refused(slashing.GenesisRootMismatch)},
	{"an import for another network is refused", importDoc(OtherGVR, H(3, []slashing.SignedBlock{B(5, 0)}, nil)), fails(slashing.ErrInterchange)},
	{"…and imported nothing: key3's slot 5 is still free", block(3, 5, 1), ok},
	{"the pinned network still signs", attOn(GVR, 2, 1, 2, 1), ok},
}

var enabledRules = []step{
	{"a key can be disabled before it ever signed", setEnabled(1, false), ok},
	{"a disabled key's block is refused", block(1, 10, 1), refused(slashing.ValidatorDisabled)},
	{"a disabled key's attestation is refused", att(1, 1, 2, 1), refused(slashing.ValidatorDisabled)},
	{"re-enabling is allowed", setEnabled(1, true), ok},
	{"a re-enabled key signs", block(1, 10, 1), ok},
	{"disabling a key with history", setEnabled(1, false), ok},
	{"even an identical repeat of a disabled key is refused", block(1, 10, 1), refused(slashing.ValidatorDisabled)},
	{"other keys are unaffected", block(2, 10, 1), ok},
	{"the history survives disabling: enable again", setEnabled(1, true), ok},
	{"…and the double proposal is still refused", block(1, 10, 2), refused(slashing.DoubleProposal)},
	{"an import does not re-enable a disabled key", setEnabled(3, false), ok},
	{"…import for it", importDoc(GVR, H(3, []slashing.SignedBlock{B(5, 1)}, nil)), ok},
	{"…it stays disabled", block(3, 6, 1), refused(slashing.ValidatorDisabled)},
}

var importRules = []step{
	{"an import into an empty database succeeds and pins its root", importDoc(GVR,
		H(1, []slashing.SignedBlock{B(20, 0), B(10, 1)}, []slashing.SignedAttestation{A(5, 6, 0), A(2, 3, 1)}),
		H(2, nil, []slashing.SignedAttestation{A(0, 1, 2)}),
	), ok},
	{"an imported block with a root repeats", block(1, 10, 1), ok},
	{"another root at an imported slot is a double proposal", block(1, 10, 2), refused(slashing.DoubleProposal)},
	{"any root at a slot imported without one is refused", block(1, 20, 1), refused(slashing.DoubleProposal)},
	{"below the imported minimum slot is refused", block(1, 9, 1), refused(slashing.BelowLowWatermark)},
	{"a gap between imported slots is accepted (complete history)", block(1, 15, 1), ok},
	{"an imported vote with a root repeats", att(1, 2, 3, 1), ok},
	{"any vote at a target imported without a root is a double vote", att(1, 5, 6, 1), refused(slashing.DoubleVote)},
	{"below the imported minimum source is refused", att(1, 1, 8, 1), refused(slashing.BelowLowWatermark)},
	{"a vote surrounding an imported one is refused", att(1, 4, 7, 1), refused(slashing.SurroundingVote)},
	{"a vote between imported ones is accepted", att(1, 3, 4, 1), ok},
	{"importing older history later does not lower the watermark", importDoc(GVR, H(1, []slashing.SignedBlock{B(5, 0)}, []slashing.SignedAttestation{A(0, 1, 0)})), ok},
	{"…slot 6 is still below the watermark", block(1, 6, 1), refused(slashing.BelowLowWatermark)},
	{"…source 1 is still below the watermark", att(1, 1, 9, 1), refused(slashing.BelowLowWatermark)},
	{"importing newer history fills in above the watermark", importDoc(GVR, H(1, []slashing.SignedBlock{B(30, 7)}, []slashing.SignedAttestation{A(8, 9, 0)})), ok},
	{"…the imported slot is now taken", block(1, 30, 8), refused(slashing.DoubleProposal)},
	{"…and its root repeats", block(1, 30, 7), ok},
	{"…the imported vote surrounds nothing but blocks its target", att(1, 7, 9, 1), refused(slashing.DoubleVote)},
	{"conflicting imports of one slot leave an unknown root", importDoc(GVR, H(2, []slashing.SignedBlock{B(40, 1)}, nil), H(2, []slashing.SignedBlock{B(40, 2)}, nil)), ok},
	{"…so the first root no longer repeats", block(2, 40, 1), refused(slashing.DoubleProposal)},
	{"importing a slot that was signed with another root leaves an unknown root", importDoc(GVR, H(1, []slashing.SignedBlock{B(15, 9)}, nil)), ok},
	{"…so the signed root no longer repeats", block(1, 15, 1), refused(slashing.DoubleProposal)},
	{"re-importing an identical entry changes nothing", importDoc(GVR, H(1, []slashing.SignedBlock{B(30, 7)}, nil)), ok},
	{"…the root still repeats", block(1, 30, 7), ok},
	{"an import of slashable data within one entry is recorded whole", importDoc(GVR, H(3, nil, []slashing.SignedAttestation{A(0, 10, 0), A(2, 5, 0)})), ok},
	{"…the long vote is history: a vote inside it is surrounded", att(3, 3, 6, 1), refused(slashing.SurroundedVote)},
	{"…the short vote is history: a vote around it is surrounding", att(3, 1, 11, 1), refused(slashing.SurroundingVote)},
}

// Run runs the conformance suite. open must return a new, empty store for
// each call; the suite closes the stores it opens.
func Run(t *testing.T, open func(t *testing.T) slashing.Store) {
	t.Run("BlockRules", func(t *testing.T) { runSteps(t, fresh(t, open), blockRules) })
	t.Run("AttestationRules", func(t *testing.T) { runSteps(t, fresh(t, open), attestationRules) })
	t.Run("GenesisValidatorsRoot", func(t *testing.T) { testGenesis(t, fresh(t, open)) })
	t.Run("EnabledFlag", func(t *testing.T) { runSteps(t, fresh(t, open), enabledRules) })
	t.Run("ImportThenRefusals", func(t *testing.T) { runSteps(t, fresh(t, open), importRules) })
	t.Run("ImportFilterAndResult", func(t *testing.T) { testImportFilter(t, fresh(t, open)) })
	t.Run("ExportImportRoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	t.Run("ExportWithoutRoot", func(t *testing.T) { testExportWithoutRoot(t, fresh(t, open)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, fresh(t, open)) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, fresh(t, open)) })
	t.Run("MatchesReferenceModel", func(t *testing.T) { testModel(t, fresh(t, open)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
	runChunked(t, open)
}

func testGenesis(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	if _, ok, err := s.GenesisValidatorsRoot(ctx); err != nil || ok {
		t.Fatalf("a new store has no genesis validators root: got ok=%v err=%v", ok, err)
	}
	runSteps(t, s, genesisRules)
	got, ok, err := s.GenesisValidatorsRoot(ctx)
	if err != nil || !ok || got != GVR {
		t.Fatalf("GenesisValidatorsRoot = %#x, %v, %v; want %#x", got, ok, err, GVR)
	}
}

func testImportFilter(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	doc := Document(GVR,
		H(1, []slashing.SignedBlock{B(10, 1)}, nil),
		H(2, []slashing.SignedBlock{B(10, 1)}, []slashing.SignedAttestation{A(1, 2, 1)}),
		H(3, nil, []slashing.SignedAttestation{A(1, 2, 1)}),
	)
	var progress []slashing.ImportProgress
	gvr := GVR
	res, err := slashing.Import(ctx, s, bytes.NewReader(doc), slashing.ImportOptions{
		GenesisValidatorsRoot: &gvr,
		Pubkeys:               []phase0.BLSPubKey{Key(2), Key(9)},
		Progress:              func(p slashing.ImportProgress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := slashing.ImportResult{GenesisValidatorsRoot: GVR, Entries: 3, Imported: 1, Skipped: 2, Blocks: 1, Attestations: 1}
	if res != want {
		t.Fatalf("ImportResult = %+v, want %+v", res, want)
	}
	if len(progress) != 3 || progress[2].Entries != 3 || progress[2].Imported != 1 || progress[2].BytesRead == 0 {
		t.Fatalf("progress = %+v", progress)
	}
	hs := exportAll(t, s, nil)
	if len(hs) != 1 || hs[0].Pubkey != Key(2) {
		t.Fatalf("only key2 may be imported, export has %d entries", len(hs))
	}
	check(t, block(1, 10, 2).do(ctx, s), ok) // key1 was filtered out
	check(t, block(2, 10, 2).do(ctx, s), refused(slashing.DoubleProposal))

	// A document for another network is refused when the node knows its network.
	_, err = slashing.Import(ctx, s, bytes.NewReader(Document(OtherGVR)), slashing.ImportOptions{GenesisValidatorsRoot: &gvr})
	check(t, err, fails(slashing.ErrInterchange))
}

func exportAll(t *testing.T, s slashing.Store, pubkeys []phase0.BLSPubKey) []slashing.ValidatorHistory {
	t.Helper()
	var hs []slashing.ValidatorHistory
	if err := s.ExportValidators(context.Background(), pubkeys, func(h slashing.ValidatorHistory) error {
		hs = append(hs, h)
		return nil
	}); err != nil {
		t.Fatalf("ExportValidators: %v", err)
	}
	for i := 1; i < len(hs); i++ {
		if slashing.ComparePubkeys(hs[i-1].Pubkey, hs[i].Pubkey) >= 0 {
			t.Fatalf("export not in pubkey order at %d", i)
		}
	}
	return hs
}

func exportDoc(t *testing.T, s slashing.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := slashing.Export(context.Background(), s, &buf, nil); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

func testRoundTrip(t *testing.T, open func(t *testing.T) slashing.Store) {
	ctx := context.Background()
	a := fresh(t, open)
	runSteps(t, a, []step{
		{"sign blocks", block(1, 10, 1), ok},
		{"sign blocks", block(1, 12, 2), ok},
		{"sign votes", att(1, 1, 2, 1), ok},
		{"sign votes", att(1, 2, 5, 2), ok},
		{"another key", att(2, 7, 8, 3), ok},
		{"import unknown roots", importDoc(GVR, H(3, []slashing.SignedBlock{B(4, 0), B(9, 5)}, []slashing.SignedAttestation{A(0, 3, 0), A(1, 2, 0)})), ok},
		{"import under a signed key", importDoc(GVR, H(1, []slashing.SignedBlock{B(11, 0)}, []slashing.SignedAttestation{A(5, 6, 4)})), ok},
	})
	docA := exportDoc(t, a)
	b := fresh(t, open)
	if _, err := slashing.Import(ctx, b, bytes.NewReader(docA), slashing.ImportOptions{}); err != nil {
		t.Fatalf("importing the export: %v", err)
	}
	docB := exportDoc(t, b)
	if !bytes.Equal(docA, docB) {
		t.Fatalf("round trip changed the export:\n%s\n---\n%s", docA, docB)
	}
	// Every exported message is refused with another root by the importer.
	for _, h := range exportAll(t, b, nil) {
		for _, m := range h.SignedBlocks {
			err := b.SignBlock(ctx, slashing.Block{Pubkey: h.Pubkey, Slot: m.Slot, SigningRoot: Root(0x77), GenesisValidatorsRoot: GVR})
			check(t, err, refused(slashing.DoubleProposal))
		}
		for _, m := range h.SignedAttestations {
			err := b.SignAttestation(ctx, slashing.Attestation{Pubkey: h.Pubkey, SourceEpoch: m.SourceEpoch, TargetEpoch: m.TargetEpoch, SigningRoot: Root(0x77), GenesisValidatorsRoot: GVR})
			check(t, err, refused(slashing.DoubleVote))
		}
	}
	// A filtered export holds only the asked keys.
	if hs := exportAll(t, a, []phase0.BLSPubKey{Key(2), Key(42)}); len(hs) != 1 || hs[0].Pubkey != Key(2) {
		t.Fatalf("filtered export: %d entries", len(hs))
	}
}

func testExportWithoutRoot(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	var buf bytes.Buffer
	if err := slashing.Export(ctx, s, &buf, nil); !errors.Is(err, slashing.ErrNoGenesisValidatorsRoot) {
		t.Fatalf("Export of an empty store = %v, want ErrNoGenesisValidatorsRoot", err)
	}
	if err := slashing.ExportWithRoot(ctx, s, &buf, GVR, nil); err != nil {
		t.Fatalf("ExportWithRoot: %v", err)
	}
	dec := slashing.NewDecoder(&buf)
	m, err := dec.Metadata()
	if err != nil || m.GenesisValidatorsRoot != GVR {
		t.Fatalf("metadata %+v %v", m, err)
	}
	check(t, block(1, 1, 1).do(ctx, s), ok)
	buf.Reset()
	if err := slashing.ExportWithRoot(ctx, s, &buf, OtherGVR, nil); !errors.Is(err, slashing.ErrInterchange) {
		t.Fatalf("ExportWithRoot for another network = %v", err)
	}
}

func testCancelled(t *testing.T, s slashing.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SignBlock(ctx, slashing.Block{Pubkey: Key(1), Slot: 5, SigningRoot: Root(1), GenesisValidatorsRoot: GVR}); err == nil {
		t.Fatal("SignBlock with a cancelled context returned nil")
	}
	if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 1, TargetEpoch: 2, SigningRoot: Root(1), GenesisValidatorsRoot: GVR}); err == nil {
		t.Fatal("SignAttestation with a cancelled context returned nil")
	}
	if err := s.ImportValidator(ctx, GVR, H(2, []slashing.SignedBlock{B(1, 1)}, nil)); err == nil {
		t.Fatal("ImportValidator with a cancelled context returned nil")
	}
	bg := context.Background()
	if _, ok, err := s.GenesisValidatorsRoot(bg); err != nil || ok {
		t.Fatalf("nothing may be recorded (root pinned: %v, %v)", ok, err)
	}
	if hs := exportAll(t, s, nil); len(hs) != 0 {
		t.Fatalf("nothing may be recorded, export has %d entries", len(hs))
	}
	check(t, block(1, 5, 2).do(bg, s), ok)
	check(t, att(1, 1, 2, 2).do(bg, s), ok)
	check(t, block(2, 1, 2).do(bg, s), ok)
	// A deadline that expires while waiting is an error too, never a false nil.
	dctx, dcancel := context.WithTimeout(bg, time.Nanosecond)
	defer dcancel()
	<-dctx.Done()
	if err := s.SignBlock(dctx, slashing.Block{Pubkey: Key(1), Slot: 6, SigningRoot: Root(1), GenesisValidatorsRoot: GVR}); err == nil {
		t.Fatal("SignBlock with an expired deadline returned nil")
	}
}

func testClosed(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	check(t, block(1, 1, 1).do(ctx, s), ok)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_ = s.Close() // safe twice
	check(t, block(1, 2, 1).do(ctx, s), fails(slashing.ErrUnavailable))
	check(t, att(1, 1, 2, 1).do(ctx, s), fails(slashing.ErrUnavailable))
	check(t, setEnabled(1, false).do(ctx, s), fails(slashing.ErrUnavailable))
	if err := s.ImportValidator(ctx, GVR, H(1, nil, nil)); !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("ImportValidator after Close = %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v", err)
	}
}

// testConcurrency: many goroutines send conflicting requests for the same
// keys at once. Afterwards: at most one root per (key, slot) and per (key,
// target) was accepted, no two accepted votes surround each other, no
// accepted vote has source > target, and every accepted request is in the
// export.
func testConcurrency(t *testing.T, s slashing.Store) {
	const (
		workers = 16
		perW    = 40
		keys    = 2
	)
	type accepted struct {
		key          int
		block        bool
		slot, source uint64
		target       uint64
		root         byte
	}
	var (
		mu  sync.Mutex
		got []accepted
		wg  sync.WaitGroup
	)
	start := make(chan struct{})
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			<-start
			ctx := context.Background()
			for range perW {
				k := 1 + rng.IntN(keys)
				root := byte(1 + rng.IntN(3))
				var err error
				var a accepted
				if rng.IntN(2) == 0 {
					slot := uint64(rng.IntN(12))
					err = s.SignBlock(ctx, slashing.Block{Pubkey: Key(k), Slot: phase0.Slot(slot), SigningRoot: Root(root), GenesisValidatorsRoot: GVR})
					a = accepted{key: k, block: true, slot: slot, root: root}
				} else {
					src := uint64(rng.IntN(8))
					tgt := src + uint64(rng.IntN(6))
					err = s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(k), SourceEpoch: phase0.Epoch(src), TargetEpoch: phase0.Epoch(tgt), SigningRoot: Root(root), GenesisValidatorsRoot: GVR})
					a = accepted{key: k, source: src, target: tgt, root: root}
				}
				switch {
				case err == nil:
					mu.Lock()
					got = append(got, a)
					mu.Unlock()
				case !errors.Is(err, slashing.ErrSlashable):
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("unexpected error: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("nothing was accepted")
	}
	blockRoot := map[[2]uint64]byte{}
	voteOf := map[[2]uint64]accepted{}
	var votes []accepted
	for _, a := range got {
		if a.block {
			k := [2]uint64{uint64(a.key), a.slot}
			if r, seen := blockRoot[k]; seen && r != a.root {
				t.Fatalf("double proposal accepted: key%d slot %d roots %#x and %#x", a.key, a.slot, r, a.root)
			}
			blockRoot[k] = a.root
			continue
		}
		if a.source > a.target {
			t.Fatalf("source after target accepted: %+v", a)
		}
		k := [2]uint64{uint64(a.key), a.target}
		if v, seen := voteOf[k]; seen && (v.root != a.root || v.source != a.source) {
			t.Fatalf("double vote accepted: %+v and %+v", v, a)
		}
		voteOf[k] = a
		votes = append(votes, a)
	}
	for _, x := range votes {
		for _, y := range votes {
			if x.key == y.key && x.source < y.source && x.target > y.target {
				t.Fatalf("surround accepted: %+v surrounds %+v", x, y)
			}
		}
	}
	exported := map[string]bool{}
	for _, h := range exportAll(t, s, nil) {
		for _, b := range h.SignedBlocks {
			if b.SigningRoot != nil {
				exported[fmt.Sprintf("%x b %d %x", h.Pubkey[:2], b.Slot, b.SigningRoot[0])] = true
			}
		}
		for _, a := range h.SignedAttestations {
			if a.SigningRoot != nil {
				exported[fmt.Sprintf("%x a %d %d %x", h.Pubkey[:2], a.SourceEpoch, a.TargetEpoch, a.SigningRoot[0])] = true
			}
		}
	}
	for _, a := range got {
		pk := Key(a.key)
		var id string
		if a.block {
			id = fmt.Sprintf("%x b %d %x", pk[:2], a.slot, a.root)
		} else {
			id = fmt.Sprintf("%x a %d %d %x", pk[:2], a.source, a.target, a.root)
		}
		if !exported[id] {
			t.Fatalf("accepted request missing from the export: %+v", a)
		}
	}
	t.Logf("%d of %d requests accepted", len(got), workers*perW)
}

// testModel drives the store and the reference model with the same random
// sequence of operations and requires the same outcome for each, and the
// same export at the end.
func testModel(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	m := NewMemory()
	rng := rand.New(rand.NewPCG(2026, 3076))
	outcome := func(err error) string {
		var r *slashing.Refusal
		switch {
		case err == nil:
			return "ok"
		case errors.As(err, &r):
			return "refused " + string(r.Reason)
		case errors.Is(err, slashing.ErrInterchange):
			return "interchange error"
		default:
			return "error " + err.Error()
		}
	}
	for i := range 600 {
		var act action
		gvr := GVR
		if i > 20 && rng.IntN(40) == 0 {
			gvr = OtherGVR
		}
		k := 1 + rng.IntN(3)
		switch op := rng.IntN(20); {
		case op < 8:
			act = blockOn(gvr, k, uint64(rng.IntN(30)), byte(1+rng.IntN(2)))
		case op < 17:
			src := uint64(rng.IntN(15))
			tgt := src + uint64(rng.IntN(8))
			if src > 0 && rng.IntN(10) == 0 {
				tgt = src - 1 // source after target
			}
			act = attOn(gvr, k, src, tgt, byte(1+rng.IntN(2)))
		case op < 19:
			var bs []slashing.SignedBlock
			var as []slashing.SignedAttestation
			for range rng.IntN(4) {
				bs = append(bs, B(uint64(rng.IntN(30)), byte(rng.IntN(3))))
			}
			for range rng.IntN(4) {
				src := uint64(rng.IntN(15))
				as = append(as, A(src, src+uint64(rng.IntN(6)), byte(rng.IntN(3))))
			}
			act = importDoc(gvr, H(k, bs, as))
		default:
			act = setEnabled(k, rng.IntN(3) != 0)
		}
		want := outcome(act.do(ctx, m))
		got := outcome(act.do(ctx, s))
		if got != want {
			t.Fatalf("op %d %s: store says %q, reference model says %q", i, act.desc, got, want)
		}
	}
	if a, b := exportDoc(t, s), exportDoc(t, m); !bytes.Equal(a, b) {
		t.Fatalf("exports differ:\nstore:\n%s\nmodel:\n%s", a, b)
	}
}

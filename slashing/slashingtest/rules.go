package slashingtest

import (
	"context"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
)

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

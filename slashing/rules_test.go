package slashing_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

func root(b byte) *phase0.Root        { r := phase0.Root{b}; return &r }
func slot(s phase0.Slot) *phase0.Slot { return &s }

func reason(err error) slashing.Reason {
	var r *slashing.Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func TestCheckBlock(t *testing.T) {
	b := slashing.Block{Slot: 10, SigningRoot: phase0.Root{1}}
	for _, tc := range []struct {
		name    string
		f       slashing.BlockFacts
		verdict slashing.Verdict
		reason  slashing.Reason
	}{
		{"disabled (the zero value) refuses", slashing.BlockFacts{}, 0, slashing.ValidatorDisabled},
		{"new key records", slashing.BlockFacts{Enabled: true}, slashing.Record, ""},
		{"at the watermark records", slashing.BlockFacts{Enabled: true, LowWatermark: slot(10)}, slashing.Record, ""},
		{"below the watermark refuses", slashing.BlockFacts{Enabled: true, LowWatermark: slot(11)}, 0, slashing.BelowLowWatermark},
		{"identical repeats", slashing.BlockFacts{Enabled: true, Existing: &slashing.SignedBlock{Slot: 10, SigningRoot: root(1)}}, slashing.Repeat, ""},
		{"other root refuses", slashing.BlockFacts{Enabled: true, Existing: &slashing.SignedBlock{Slot: 10, SigningRoot: root(2)}}, 0, slashing.DoubleProposal},
		{"unknown root refuses", slashing.BlockFacts{Enabled: true, Existing: &slashing.SignedBlock{Slot: 10}}, 0, slashing.DoubleProposal},
	} {
		v, err := slashing.CheckBlock(b, tc.f)
		if v != tc.verdict || reason(err) != tc.reason || (err != nil) != (tc.reason != "") {
			t.Errorf("%s: got %v, %v", tc.name, v, err)
		}
		if err != nil && !errors.Is(err, slashing.ErrSlashable) {
			t.Errorf("%s: refusal does not wrap ErrSlashable", tc.name)
		}
	}
}

func TestCheckAttestation(t *testing.T) {
	a := slashing.Attestation{SourceEpoch: 5, TargetEpoch: 8, SigningRoot: phase0.Root{1}}
	vote := func(s, t phase0.Epoch, r *phase0.Root) *slashing.SignedAttestation {
		return &slashing.SignedAttestation{SourceEpoch: s, TargetEpoch: t, SigningRoot: r}
	}
	lw := func(s, t phase0.Epoch) *slashing.AttestationWatermark {
		return &slashing.AttestationWatermark{Source: s, Target: t}
	}
	for _, tc := range []struct {
		name    string
		a       slashing.Attestation
		f       slashing.AttestationFacts
		verdict slashing.Verdict
		reason  slashing.Reason
	}{
		{"disabled refuses", a, slashing.AttestationFacts{}, 0, slashing.ValidatorDisabled},
		{"new records", a, slashing.AttestationFacts{Enabled: true}, slashing.Record, ""},
		{"source after target refuses", slashing.Attestation{SourceEpoch: 9, TargetEpoch: 8}, slashing.AttestationFacts{Enabled: true}, 0, slashing.SourceAfterTarget},
		{"source below watermark", a, slashing.AttestationFacts{Enabled: true, LowWatermark: lw(6, 0)}, 0, slashing.BelowLowWatermark},
		{"target below watermark", a, slashing.AttestationFacts{Enabled: true, LowWatermark: lw(0, 9)}, 0, slashing.BelowLowWatermark},
		{"at the watermark records", a, slashing.AttestationFacts{Enabled: true, LowWatermark: lw(5, 8)}, slashing.Record, ""},
		{"identical repeats", a, slashing.AttestationFacts{Enabled: true, SameTarget: vote(5, 8, root(1))}, slashing.Repeat, ""},
		{"same root other source is a double vote", a, slashing.AttestationFacts{Enabled: true, SameTarget: vote(4, 8, root(1))}, 0, slashing.DoubleVote},
		{"unknown root is a double vote", a, slashing.AttestationFacts{Enabled: true, SameTarget: vote(5, 8, nil)}, 0, slashing.DoubleVote},
		{"surrounded", a, slashing.AttestationFacts{Enabled: true, Surrounding: vote(4, 9, nil)}, 0, slashing.SurroundedVote},
		{"surrounding", a, slashing.AttestationFacts{Enabled: true, Surrounded: vote(6, 7, nil)}, 0, slashing.SurroundingVote},
		{"a repeat is not re-checked for surrounds", a, slashing.AttestationFacts{Enabled: true, SameTarget: vote(5, 8, root(1)), Surrounding: vote(4, 9, nil)}, slashing.Repeat, ""},
	} {
		v, err := slashing.CheckAttestation(tc.a, tc.f)
		if v != tc.verdict || reason(err) != tc.reason || (err != nil) != (tc.reason != "") {
			t.Errorf("%s: got %v, %v", tc.name, v, err)
		}
	}
}

func TestCheckGenesisValidatorsRoot(t *testing.T) {
	if err := slashing.CheckGenesisValidatorsRoot(nil, phase0.Root{1}); err != nil {
		t.Fatal(err)
	}
	if err := slashing.CheckGenesisValidatorsRoot(root(1), phase0.Root{1}); err != nil {
		t.Fatal(err)
	}
	if r := reason(slashing.CheckGenesisValidatorsRoot(root(1), phase0.Root{2})); r != slashing.GenesisRootMismatch {
		t.Fatalf("got %q", r)
	}
}

func TestMerge(t *testing.T) {
	b := func(r *phase0.Root) slashing.SignedBlock { return slashing.SignedBlock{Slot: 3, SigningRoot: r} }
	if got := slashing.MergeBlock(b(root(1)), b(root(1))); !reflect.DeepEqual(got, b(root(1))) {
		t.Errorf("identical: %+v", got)
	}
	for _, pair := range [][2]*phase0.Root{{root(1), root(2)}, {root(1), nil}, {nil, root(1)}, {nil, nil}} {
		if got := slashing.MergeBlock(b(pair[0]), b(pair[1])); got.SigningRoot != nil || got.Slot != 3 {
			t.Errorf("conflict %v: %+v", pair, got)
		}
	}
	v := func(s phase0.Epoch, r *phase0.Root) slashing.SignedAttestation {
		return slashing.SignedAttestation{SourceEpoch: s, TargetEpoch: 9, SigningRoot: r}
	}
	if got := slashing.MergeAttestation(v(2, root(1)), v(2, root(1))); !reflect.DeepEqual(got, v(2, root(1))) {
		t.Errorf("identical: %+v", got)
	}
	if got := slashing.MergeAttestation(v(2, root(1)), v(4, root(1))); !reflect.DeepEqual(got, v(4, nil)) {
		t.Errorf("other source keeps the larger source and forgets the root: %+v", got)
	}
	if got := slashing.MergeAttestation(v(5, nil), v(4, root(1))); !reflect.DeepEqual(got, v(5, nil)) {
		t.Errorf("%+v", got)
	}
}

func TestImportWatermarks(t *testing.T) {
	lw := slashing.ImportWatermarks(slashing.ValidatorHistory{
		SignedBlocks:       []slashing.SignedBlock{{Slot: 9}, {Slot: 4}, {Slot: 7}},
		SignedAttestations: []slashing.SignedAttestation{{SourceEpoch: 3, TargetEpoch: 9}, {SourceEpoch: 5, TargetEpoch: 6}},
	})
	if *lw.Slot != 4 || *lw.Attestation != (slashing.AttestationWatermark{Source: 3, Target: 6}) {
		t.Fatalf("%+v %+v", *lw.Slot, *lw.Attestation)
	}
	if lw := slashing.ImportWatermarks(slashing.ValidatorHistory{}); lw.Slot != nil || lw.Attestation != nil {
		t.Fatal("no messages, no watermarks")
	}
}

func TestExportHistory(t *testing.T) {
	pk := phase0.BLSPubKey{7}
	att := func(s, t phase0.Epoch, r *phase0.Root) slashing.SignedAttestation {
		return slashing.SignedAttestation{SourceEpoch: s, TargetEpoch: t, SigningRoot: r}
	}
	blk := func(s phase0.Slot, r *phase0.Root) slashing.SignedBlock {
		return slashing.SignedBlock{Slot: s, SigningRoot: r}
	}

	t.Run("messages below the watermark are left out, sorted output", func(t *testing.T) {
		h := slashing.ExportHistory(pk,
			slashing.LowWatermarks{Slot: slot(10), Attestation: &slashing.AttestationWatermark{Source: 2, Target: 5}},
			[]slashing.SignedBlock{blk(12, root(1)), blk(5, nil), blk(10, root(2))},
			[]slashing.SignedAttestation{att(3, 7, nil), att(2, 5, root(1)), att(1, 6, nil), att(4, 4, nil)})
		want := slashing.ValidatorHistory{Pubkey: pk,
			SignedBlocks:       []slashing.SignedBlock{blk(10, root(2)), blk(12, root(1))},
			SignedAttestations: []slashing.SignedAttestation{att(2, 5, root(1)), att(3, 7, nil)}}
		if !reflect.DeepEqual(h, want) {
			t.Fatalf("%+v", h)
		}
	})
	t.Run("a watermark above every message is exported as an unknown-root message", func(t *testing.T) {
		h := slashing.ExportHistory(pk,
			slashing.LowWatermarks{Slot: slot(20), Attestation: &slashing.AttestationWatermark{Source: 8, Target: 9}},
			[]slashing.SignedBlock{blk(12, root(1)), blk(25, root(1))},
			[]slashing.SignedAttestation{att(9, 10, root(1))})
		want := slashing.ValidatorHistory{Pubkey: pk,
			SignedBlocks:       []slashing.SignedBlock{blk(20, nil), blk(25, root(1))},
			SignedAttestations: []slashing.SignedAttestation{att(8, 9, nil), att(9, 10, root(1))}}
		if !reflect.DeepEqual(h, want) {
			t.Fatalf("%+v", h)
		}
		// Imported elsewhere, the minima give back our watermarks.
		lw := slashing.ImportWatermarks(h)
		if *lw.Slot != 20 || *lw.Attestation != (slashing.AttestationWatermark{Source: 8, Target: 9}) {
			t.Fatalf("importer watermarks %+v %+v", *lw.Slot, *lw.Attestation)
		}
	})
	t.Run("no watermark, nothing left out", func(t *testing.T) {
		h := slashing.ExportHistory(pk, slashing.LowWatermarks{}, nil, nil)
		if len(h.SignedBlocks) != 0 || len(h.SignedAttestations) != 0 || h.SignedBlocks == nil || h.SignedAttestations == nil {
			t.Fatalf("%+v", h)
		}
	})
}

package slashingtest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

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

package slashingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// runChunked is the conformance part for chunked imports (slashing's "Chunked imports").
func runChunked(t *testing.T, open func(t *testing.T) slashing.Store) {
	t.Run("ChunkedImportMatchesOnePiece", func(t *testing.T) { testChunkedMatchesOnePiece(t, open) })
	t.Run("ChunkedImportRefusesTheKeyBetweenChunks", func(t *testing.T) { testChunkedRefusesBetween(t, fresh(t, open)) })
	t.Run("ChunkedImportInterruptedStaysRefused", func(t *testing.T) { testChunkedInterrupted(t, fresh(t, open)) })
	t.Run("ChunkedImportRunningIsNotCutShort", func(t *testing.T) { testChunkedRunning(t, fresh(t, open)) })
}

// importMarkers is the part of a store that reports and times import markers (every store of
// this project has it).
type importMarkers interface {
	SetImportIdleTimeout(time.Duration)
	ImportMarkers(ctx context.Context) ([]slashing.ImportMarker, error)
}

func markersOf(t *testing.T, s slashing.Store) importMarkers {
	t.Helper()
	im, ok := s.(importMarkers)
	if !ok {
		t.Fatalf("%T does not report import markers (SetImportIdleTimeout, ImportMarkers)", s)
	}
	return im
}

// chunkedHistory is an entry with duplicates, unknown roots and unordered messages, so the
// merges within one chunk and across chunks both matter.
func chunkedHistory(key int) slashing.ValidatorHistory {
	var blocks []slashing.SignedBlock
	var atts []slashing.SignedAttestation
	for i := range 12 {
		blocks = append(blocks, B(uint64(100+7*((i*5)%12)), byte(i%3)))
		atts = append(atts, A(uint64(20+(i*7)%12), uint64(21+(i*7)%12), byte(i%4)))
	}
	blocks = append(blocks, B(100, 9), B(135, 0))                 // conflicting duplicates
	atts = append(atts, A(19, 21, 5), A(25, 26, 0), A(24, 26, 0)) // repeated targets
	return H(key, blocks, atts)
}

// probes are requests whose outcome depends on the whole imported entry and its watermarks.
func probes(key int) []action {
	var out []action
	for _, slot := range []uint64{99, 100, 107, 135, 150, 200} {
		out = append(out, block(key, slot, 42))
	}
	for _, st := range [][2]uint64{{18, 19}, {19, 21}, {20, 21}, {22, 40}, {31, 32}, {40, 41}, {10, 60}} {
		out = append(out, att(key, st[0], st[1], 42))
	}
	return out
}

func outcome(err error) string {
	var r *slashing.Refusal
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &r):
		return string(r.Reason)
	}
	return "error: " + err.Error()
}

// Importing an entry in chunks of 1, 2, 5 messages leaves exactly what importing it in one piece
// leaves: the same export and the same decision on every probe, with and without history
// (and watermarks) recorded before the import.
func testChunkedMatchesOnePiece(t *testing.T, open func(t *testing.T) slashing.Store) {
	ctx := context.Background()
	for _, prior := range []bool{false, true} {
		var want []byte
		var wantOutcomes []string
		for _, size := range []int{0, 1, 2, 5} { // 0: one piece
			t.Run(fmt.Sprintf("prior=%v/chunk=%d", prior, size), func(t *testing.T) {
				s := fresh(t, open)
				if prior {
					check(t, s.SignBlock(ctx, slashing.Block{Pubkey: Key(1), Slot: 130, SigningRoot: Root(7), GenesisValidatorsRoot: GVR}), ok)
					check(t, s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 30, TargetEpoch: 35, SigningRoot: Root(7), GenesisValidatorsRoot: GVR}), ok)
				}
				opts := slashing.ImportOptions{ChunkSize: size}
				if size == 0 {
					opts.ChunkSize = 1 << 20
				}
				doc := Document(GVR, chunkedHistory(1), H(2, []slashing.SignedBlock{B(5, 1)}, nil))
				if _, err := slashing.Import(ctx, s, bytes.NewReader(doc), opts); err != nil {
					t.Fatal(err)
				}
				got := exportDoc(t, s)
				var outcomes []string
				for _, p := range probes(1) {
					outcomes = append(outcomes, p.desc+" → "+outcome(p.do(ctx, s)))
				}
				if want == nil {
					want, wantOutcomes = got, outcomes
					return
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("export after a chunked import:\n%s\none piece:\n%s", got, want)
				}
				for i := range outcomes {
					if outcomes[i] != wantOutcomes[i] {
						t.Errorf("%s, one piece: %s", outcomes[i], wantOutcomes[i])
					}
				}
			})
		}
	}
}

// The attack on the safety argument: between two chunks, a request that conflicts with a
// message of a chunk not yet imported must be refused (the key is refused as a whole), a
// keymanager DELETE made during the import stays in force after it, and other keys sign.
func testChunkedRefusesBetween(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	// Chunks of 2 messages: block 10, block 20 | att 1→2, att 2→3 | att 3→4, att 4→5.
	h := H(1, []slashing.SignedBlock{B(10, 1), B(20, 1)},
		[]slashing.SignedAttestation{A(1, 2, 1), A(2, 3, 1), A(3, 4, 1), A(4, 5, 1)})
	var seen []string
	hook := func(ctx context.Context, pk phase0.BLSPubKey, chunk int, last bool) {
		if last {
			return
		}
		// Conflicts with records of later chunks: a double vote at target 5, a vote surrounding 3→4.
		for _, a := range []slashing.Attestation{
			{Pubkey: Key(1), SourceEpoch: 4, TargetEpoch: 5, SigningRoot: Root(2), GenesisValidatorsRoot: GVR},
			{Pubkey: Key(1), SourceEpoch: 2, TargetEpoch: 6, SigningRoot: Root(2), GenesisValidatorsRoot: GVR},
		} {
			err := s.SignAttestation(ctx, a)
			seen = append(seen, outcome(err))
			if !errors.Is(err, slashing.ErrSlashable) {
				t.Errorf("after chunk %d: attestation %d→%d accepted while its key is being imported (%v)", chunk, a.SourceEpoch, a.TargetEpoch, err)
			}
		}
		if err := s.SignBlock(ctx, slashing.Block{Pubkey: Key(1), Slot: 20, SigningRoot: Root(2), GenesisValidatorsRoot: GVR}); !errors.Is(err, slashing.ErrSlashable) {
			t.Errorf("after chunk %d: block accepted during the import: %v", chunk, err)
		}
		if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(2), SourceEpoch: 1, TargetEpoch: phase0.Epoch(chunk + 1), SigningRoot: Root(1), GenesisValidatorsRoot: GVR}); err != nil {
			t.Errorf("another key is refused during the import: %v", err)
		}
		if chunk == 2 {
			if err := s.SetEnabled(ctx, Key(1), false); err != nil { // keymanager DELETE mid-import
				t.Fatal(err)
			}
		}
	}
	if _, err := slashing.Import(ctx, s, bytes.NewReader(Document(GVR, h)), slashing.ImportOptions{ChunkSize: 2, AfterChunk: hook}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 { // after chunks 1 and 2
		t.Fatalf("the hook ran %d times, want 2 (outcomes %v)", len(seen)/2, seen)
	}
	// Deleted during the import: still disabled after it.
	if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 5, TargetEpoch: 6, SigningRoot: Root(1), GenesisValidatorsRoot: GVR}); outcome(err) != string(slashing.ValidatorDisabled) {
		t.Fatalf("after a DELETE during the import: %v, want validator_disabled", err)
	}
	check(t, s.SetEnabled(ctx, Key(1), true), ok)
	// Now every imported record counts.
	for _, c := range []struct {
		a    slashing.Attestation
		want string
	}{
		{slashing.Attestation{Pubkey: Key(1), SourceEpoch: 4, TargetEpoch: 5, SigningRoot: Root(2), GenesisValidatorsRoot: GVR}, string(slashing.DoubleVote)},
		{slashing.Attestation{Pubkey: Key(1), SourceEpoch: 2, TargetEpoch: 6, SigningRoot: Root(2), GenesisValidatorsRoot: GVR}, string(slashing.SurroundingVote)},
		{slashing.Attestation{Pubkey: Key(1), SourceEpoch: 5, TargetEpoch: 6, SigningRoot: Root(2), GenesisValidatorsRoot: GVR}, "accepted"},
	} {
		if got := outcome(s.SignAttestation(ctx, c.a)); got != c.want {
			t.Errorf("after the import: %d→%d %s, want %s", c.a.SourceEpoch, c.a.TargetEpoch, got, c.want)
		}
	}
}

// An import that stops after its first chunk (a crash) leaves the key refused; the older
// import's later chunks are refused once a re-run has taken the key over; the re-run completes
// and restores the key.
func testChunkedInterrupted(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	ci, ok := s.(slashing.ChunkImporter)
	if !ok {
		t.Fatalf("%T does not implement slashing.ChunkImporter", s)
	}
	first := slashing.ImportChunk{Pubkey: Key(1), ImportID: 7, First: true, SignedBlocks: []slashing.SignedBlock{B(10, 1)}}
	if err := ci.ImportChunk(ctx, GVR, first); err != nil {
		t.Fatal(err)
	}
	// "Crashed" here: the key is refused, whatever is asked.
	a := slashing.Attestation{Pubkey: Key(1), SourceEpoch: 1, TargetEpoch: 2, SigningRoot: Root(1), GenesisValidatorsRoot: GVR}
	if got := outcome(s.SignAttestation(ctx, a)); got != string(slashing.ValidatorDisabled) {
		t.Fatalf("after an interrupted import: %s, want validator_disabled", got)
	}
	// Once the idle timeout has passed since its last chunk (0 here: at once), the import counts
	// as interrupted, and health can say so.
	im := markersOf(t, s)
	im.SetImportIdleTimeout(0)
	if ms, err := im.ImportMarkers(ctx); err != nil || len(ms) != 1 || ms[0].Pubkey != Key(1) || !ms[0].Interrupted {
		t.Fatalf("ImportMarkers after the crash: %+v, %v; want Key(1) interrupted", ms, err)
	}
	// A re-run (new id) takes the key over and completes.
	h := H(1, []slashing.SignedBlock{B(10, 1)}, []slashing.SignedAttestation{A(1, 2, 1), A(2, 3, 1), A(3, 4, 1)})
	if _, err := slashing.Import(ctx, s, bytes.NewReader(Document(GVR, h)), slashing.ImportOptions{ChunkSize: 2}); err != nil {
		t.Fatal(err)
	}
	// The interrupted import's next chunk comes too late: refused, nothing written.
	late := slashing.ImportChunk{Pubkey: Key(1), ImportID: 7, Last: true, SignedBlocks: []slashing.SignedBlock{B(99, 1)}}
	if err := ci.ImportChunk(ctx, GVR, late); !errors.Is(err, slashing.ErrImportConflict) {
		t.Fatalf("a superseded import's chunk: %v, want ErrImportConflict", err)
	}
	if got := outcome(s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 4, TargetEpoch: 5, SigningRoot: Root(1), GenesisValidatorsRoot: GVR})); got != "accepted" {
		t.Fatalf("after the re-run: %s, want accepted", got)
	}
	if got := outcome(s.SignBlock(ctx, slashing.Block{Pubkey: Key(1), Slot: 99, SigningRoot: Root(2), GenesisValidatorsRoot: GVR})); got != "accepted" {
		t.Fatalf("block 99 (only in the refused late chunk): %s, want accepted", got)
	}
	// A one-piece import also heals an interrupted chunked one.
	if err := ci.ImportChunk(ctx, GVR, slashing.ImportChunk{Pubkey: Key(3), ImportID: 8, First: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.ImportValidator(ctx, GVR, H(3, []slashing.SignedBlock{B(1, 1)}, nil)); err != nil {
		t.Fatal(err)
	}
	if got := outcome(s.SignBlock(ctx, slashing.Block{Pubkey: Key(3), Slot: 2, SigningRoot: Root(1), GenesisValidatorsRoot: GVR})); got != "accepted" {
		t.Fatalf("after a one-piece re-import: %s, want accepted", got)
	}
	if ms, err := im.ImportMarkers(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("ImportMarkers after the re-runs: %+v, %v; want none", ms, err)
	}
}

// A second import of a key while a first one is running (its last chunk within the idle
// timeout) is refused with nothing written, in both forms (chunked and one piece): letting it
// complete would restore the key's flag while the first import's entry is only partly merged.
// The running import then completes, and only then is the key signed for.
func testChunkedRunning(t *testing.T, s slashing.Store) {
	ctx := context.Background()
	ci, ok := s.(slashing.ChunkImporter)
	if !ok {
		t.Fatalf("%T does not implement slashing.ChunkImporter", s)
	}
	im := markersOf(t, s)
	im.SetImportIdleTimeout(time.Hour)
	// The running import: its first chunk is in; its last chunk holds vote 5→6.
	if err := ci.ImportChunk(ctx, GVR, slashing.ImportChunk{Pubkey: Key(1), ImportID: 7, First: true,
		SignedAttestations: []slashing.SignedAttestation{A(1, 2, 1)}}); err != nil {
		t.Fatal(err)
	}
	if ms, err := im.ImportMarkers(ctx); err != nil || len(ms) != 1 || ms[0].Pubkey != Key(1) || ms[0].Interrupted {
		t.Fatalf("ImportMarkers while running: %+v, %v; want Key(1), not interrupted", ms, err)
	}
	// A second, chunked import of the same key: refused, nothing written.
	second := H(1, []slashing.SignedBlock{B(50, 1)}, []slashing.SignedAttestation{A(2, 3, 1), A(3, 4, 1), A(4, 5, 1)})
	if _, err := slashing.Import(ctx, s, bytes.NewReader(Document(GVR, second)), slashing.ImportOptions{ChunkSize: 2}); !errors.Is(err, slashing.ErrImportInProgress) {
		t.Fatalf("a chunked import while another runs: %v, want ErrImportInProgress", err)
	}
	// And in one piece: refused too (it would have cleared the marker).
	if err := s.ImportValidator(ctx, GVR, second); !errors.Is(err, slashing.ErrImportInProgress) {
		t.Fatalf("a one-piece import while another runs: %v, want ErrImportInProgress", err)
	}
	if got := outcome(s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 5, TargetEpoch: 6, SigningRoot: Root(9), GenesisValidatorsRoot: GVR})); got != string(slashing.ValidatorDisabled) {
		t.Fatalf("while the first import runs: %s, want validator_disabled", got)
	}
	// The running import is not disturbed: its later chunks go in and its last one ends it.
	if err := ci.ImportChunk(ctx, GVR, slashing.ImportChunk{Pubkey: Key(1), ImportID: 7,
		SignedAttestations: []slashing.SignedAttestation{A(3, 4, 1)}}); err != nil {
		t.Fatalf("the running import's next chunk: %v", err)
	}
	lw := slashing.LowWatermarks{}
	slashing.AddWatermarks(&lw, nil, []slashing.SignedAttestation{A(1, 2, 1), A(3, 4, 1), A(5, 6, 1)})
	if err := ci.ImportChunk(ctx, GVR, slashing.ImportChunk{Pubkey: Key(1), ImportID: 7, Last: true,
		SignedAttestations: []slashing.SignedAttestation{A(5, 6, 1)}, Watermarks: lw}); err != nil {
		t.Fatalf("the running import's last chunk: %v", err)
	}
	// The whole first entry is in: its last vote is a repeat, a conflicting one a double vote.
	if got := outcome(s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 5, TargetEpoch: 6, SigningRoot: Root(9), GenesisValidatorsRoot: GVR})); got != string(slashing.DoubleVote) {
		t.Fatalf("after the first import: a conflicting 5→6 is %s, want %s", got, slashing.DoubleVote)
	}
	// Now the second import goes in.
	if _, err := slashing.Import(ctx, s, bytes.NewReader(Document(GVR, second)), slashing.ImportOptions{ChunkSize: 2}); err != nil {
		t.Fatalf("the second import after the first ended: %v", err)
	}
	if got := outcome(s.SignAttestation(ctx, slashing.Attestation{Pubkey: Key(1), SourceEpoch: 6, TargetEpoch: 7, SigningRoot: Root(9), GenesisValidatorsRoot: GVR})); got != "accepted" {
		t.Fatalf("after both imports: %s, want accepted", got)
	}
}

package postgres_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// TestPruneManyKeys: a prune whose deletions exceed one call's budget is
// split into several calls (each key whole), with the same result as the
// reference model; pruning again deletes nothing.
func TestPruneManyKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	m := slashingtest.NewMemory()
	const keys, votes = 150, 300 // 45,000 votes, 44,700 of them pruned: several calls
	for k := 1; k <= keys; k++ {
		var as []slashing.SignedAttestation
		var bs []slashing.SignedBlock
		for e := uint64(0); e < votes; e++ {
			as = append(as, slashingtest.A(e, e+1, 1))
			if e%10 == 0 {
				bs = append(bs, slashingtest.B(32*e+uint64(k%32), 1))
			}
		}
		h := slashingtest.H(k, bs, as)
		for _, st := range []slashing.Store{s, m} {
			if err := st.ImportValidator(ctx, slashingtest.GVR, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	opts := slashing.PruneOptions{KeepEpochs: 2, SlotsPerEpoch: 32}
	want, err := m.Prune(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := s.Prune(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pruned %+v in %v", got, time.Since(start))
	if got != want {
		t.Fatalf("Prune = %+v, reference model %+v", got, want)
	}
	if got, err := s.Prune(ctx, opts); err != nil || got != (slashing.PruneResult{}) {
		t.Fatalf("second Prune = %+v, %v", got, err)
	}
	for k := 1; k <= keys; k += 37 {
		mustRefuse(t, s.SignAttestation(ctx, att(k, 297, 298, 2)), slashing.BelowLowWatermark)
		mustRefuse(t, s.SignAttestation(ctx, att(k, 298, 299, 2)), slashing.DoubleVote)
		if err := s.SignAttestation(ctx, att(k, 300, 301, 2)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPruneEdges compares Prune with the reference model on histories at the
// ends of the u64 range and options whose KeepEpochs·SlotsPerEpoch does not
// fit in a u64.
func TestPruneEdges(t *testing.T) {
	ctx := context.Background()
	const top = math.MaxUint64
	histories := map[string]slashing.ValidatorHistory{
		"top": slashingtest.H(1,
			[]slashing.SignedBlock{slashingtest.B(top, 1), slashingtest.B(top-1, 1), slashingtest.B(0, 1)},
			[]slashing.SignedAttestation{slashingtest.A(top, top, 1), slashingtest.A(top-3, top-1, 1), slashingtest.A(5, 6, 1)}),
		"below top": slashingtest.H(2,
			[]slashing.SignedBlock{slashingtest.B(top-1, 1), slashingtest.B(top-100, 1), slashingtest.B(0, 1)},
			[]slashing.SignedAttestation{slashingtest.A(top-2, top-1, 1), slashingtest.A(top-50, top-40, 1), slashingtest.A(0, 1, 1)}),
		"middle": slashingtest.H(3,
			[]slashing.SignedBlock{slashingtest.B(1<<63, 1), slashingtest.B(1<<63-1, 1), slashingtest.B(1<<62, 1)},
			[]slashing.SignedAttestation{slashingtest.A(1<<63-1, 1<<63, 1), slashingtest.A(1<<63-2, 1<<63-1, 1), slashingtest.A(7, 8, 1)}),
		"small": slashingtest.H(4,
			[]slashing.SignedBlock{slashingtest.B(0, 1), slashingtest.B(3, 1)},
			[]slashing.SignedAttestation{slashingtest.A(0, 0, 1), slashingtest.A(0, 2, 1)}),
	}
	for _, opts := range []slashing.PruneOptions{
		{KeepEpochs: 1, SlotsPerEpoch: 1},
		{KeepEpochs: 2, SlotsPerEpoch: 1},
		{KeepEpochs: 3, SlotsPerEpoch: 32},
		{KeepEpochs: 1 << 62, SlotsPerEpoch: 2},
		{KeepEpochs: 1 << 62, SlotsPerEpoch: 4}, // product 2^64: no slot cut
		{KeepEpochs: 1<<63 + 1, SlotsPerEpoch: 3},
		{KeepEpochs: math.MaxUint64, SlotsPerEpoch: 1},
		{KeepEpochs: math.MaxUint64, SlotsPerEpoch: math.MaxUint64},
	} {
		t.Run(fmt.Sprintf("keep=%d,spe=%d", opts.KeepEpochs, opts.SlotsPerEpoch), func(t *testing.T) {
			s, _ := fresh(t, postgres.Options{Create: true})
			m := slashingtest.NewMemory()
			for _, h := range histories {
				for _, st := range []slashing.Store{s, m} {
					if err := st.ImportValidator(ctx, slashingtest.GVR, h); err != nil {
						t.Fatal(err)
					}
				}
			}
			for round := range 2 {
				want, err := m.Prune(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Prune(ctx, opts)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("round %d: Prune = %+v, reference model %+v", round, got, want)
				}
			}
			var a, b []slashing.ValidatorHistory
			collect := func(out *[]slashing.ValidatorHistory) func(slashing.ValidatorHistory) error {
				return func(h slashing.ValidatorHistory) error { *out = append(*out, h); return nil }
			}
			if err := s.ExportValidators(ctx, nil, collect(&a)); err != nil {
				t.Fatal(err)
			}
			if err := m.ExportValidators(ctx, nil, collect(&b)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("exports differ:\nstore: %+v\nmodel: %+v", a, b)
			}
		})
	}
}

package slashingtest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
)

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

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// TestMaintenanceModel drives the store and the reference model
// (slashingtest.Memory) with one random sequence of signatures, imports,
// enable/disable, low-watermark raises, prunes and high-watermark changes,
// and requires the same outcome of every operation and the same export
// along the way. Prune options include KeepEpochs·SlotsPerEpoch beyond u64
// and histories near the top of the u64 range.
func TestMaintenanceModel(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	m := slashingtest.NewMemory()
	rng := rand.New(rand.NewPCG(3076, 2026))
	outcome := func(err error) string {
		var r *slashing.Refusal
		switch {
		case err == nil:
			return "ok"
		case errors.As(err, &r):
			return "refused " + string(r.Reason)
		default:
			return "error " + err.Error()
		}
	}
	export := func(st slashing.Store) []slashing.ValidatorHistory {
		var out []slashing.ValidatorHistory
		if err := st.ExportValidators(ctx, nil, func(h slashing.ValidatorHistory) error {
			out = append(out, h)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	const keys = 5
	// Each key's history moves forward from a base: key 5 lives near the top
	// of the u64 range.
	base := func(k int) uint64 {
		if k == keys {
			return math.MaxUint64 - 4000
		}
		return 0
	}
	pos := make([]uint64, keys+1) // each key's current epoch offset
	pick := func(k int, spread int) uint64 {
		p := int(pos[k]) + rng.IntN(spread) - spread/2
		return base(k) + uint64(max(p, 0))
	}
	var prunes, pruned, raises, hws int
	for i := range 2500 {
		k := 1 + rng.IntN(keys)
		if rng.IntN(4) == 0 {
			pos[k] += uint64(1 + rng.IntN(3))
		}
		var desc string
		var do func(st slashing.Store) (string, error)
		maint := func(st slashing.Store) slashing.Maintainer { return st.(slashing.Maintainer) }
		switch op := rng.IntN(100); {
		case op < 35:
			b := block(k, base(k)+2*(pick(k, 12)-base(k)), byte(1+rng.IntN(2)))
			desc = fmt.Sprintf("block key%d slot %d", k, b.Slot)
			do = func(st slashing.Store) (string, error) { return "", st.SignBlock(ctx, b) }
		case op < 75:
			tgt := pick(k, 10)
			src := tgt - min(tgt-base(k), uint64(rng.IntN(4)))
			if rng.IntN(15) == 0 && src > base(k) {
				src, tgt = tgt, src-1 // source after target
			}
			a := att(k, src, tgt, byte(1+rng.IntN(2)))
			desc = fmt.Sprintf("vote key%d %d→%d", k, src, tgt)
			do = func(st slashing.Store) (string, error) { return "", st.SignAttestation(ctx, a) }
		case op < 80:
			var bs []slashing.SignedBlock
			var as []slashing.SignedAttestation
			for range rng.IntN(4) {
				bs = append(bs, slashingtest.B(base(k)+2*(pick(k, 20)-base(k)), byte(rng.IntN(3))))
			}
			for range rng.IntN(4) {
				tgt := pick(k, 20)
				as = append(as, slashingtest.A(tgt-min(tgt-base(k), uint64(rng.IntN(5))), tgt, byte(rng.IntN(3))))
			}
			h := slashingtest.H(k, bs, as)
			desc = fmt.Sprintf("import key%d %d blocks %d votes", k, len(bs), len(as))
			do = func(st slashing.Store) (string, error) { return "", st.ImportValidator(ctx, slashingtest.GVR, h) }
		case op < 83:
			en := rng.IntN(4) != 0
			desc = fmt.Sprintf("set key%d enabled %v", k, en)
			do = func(st slashing.Store) (string, error) { return "", st.SetEnabled(ctx, slashingtest.Key(k), en) }
		case op < 89:
			var pks []phase0.BLSPubKey
			if rng.IntN(3) != 0 {
				pks = []phase0.BLSPubKey{}
				for range 1 + rng.IntN(3) {
					pks = append(pks, slashingtest.Key(1+rng.IntN(keys+2))) // may name unknown keys, twice
				}
			}
			kk := 1 + rng.IntN(keys-1)
			slot, epoch := pick(kk, 8)*2, pick(kk, 8)
			desc = fmt.Sprintf("raise %d keys to slot %d epoch %d", len(pks), slot, epoch)
			raises++
			do = func(st slashing.Store) (string, error) {
				n, err := maint(st).RaiseLowWatermarks(ctx, pks, phase0.Slot(slot), phase0.Epoch(epoch))
				return fmt.Sprint(n), err
			}
		case op < 97:
			opts := slashing.PruneOptions{KeepEpochs: uint64(1 + rng.IntN(6)), SlotsPerEpoch: uint64(1 + rng.IntN(4))}
			switch rng.IntN(10) {
			case 0:
				opts.KeepEpochs = 1<<63 + 5 // KeepEpochs·SlotsPerEpoch overflows u64 (unless 1)
			case 1:
				opts.KeepEpochs, opts.SlotsPerEpoch = math.MaxUint64, 1
			}
			desc = fmt.Sprintf("prune %+v", opts)
			prunes++
			do = func(st slashing.Store) (string, error) {
				res, err := maint(st).Prune(ctx, opts)
				if st == slashing.Store(s) {
					pruned += res.Blocks + res.Attestations
				}
				return fmt.Sprintf("%+v", res), err
			}
		default:
			var hw *slashing.HighWatermark
			if rng.IntN(2) == 0 { // around the keys' current positions, mostly above
				kk := 1 + rng.IntN(keys-1)
				hw = &slashing.HighWatermark{Slot: phase0.Slot(2 * (pos[kk] + uint64(rng.IntN(30)))), Epoch: phase0.Epoch(pos[kk] + uint64(rng.IntN(20)))}
			}
			desc = fmt.Sprintf("set high watermark %v", hw)
			hws++
			do = func(st slashing.Store) (string, error) {
				err := maint(st).SetHighWatermark(ctx, hw)
				got, rerr := maint(st).HighWatermark(ctx)
				if rerr != nil {
					return "", rerr
				}
				return fmt.Sprint(got), err
			}
		}
		wantV, wantErr := do(m)
		gotV, gotErr := do(s)
		if want, got := wantV+" "+outcome(wantErr), gotV+" "+outcome(gotErr); got != want {
			t.Fatalf("op %d %s: store says %q, reference model says %q", i, desc, got, want)
		}
		if i%100 == 99 {
			if a, b := export(s), export(m); !reflect.DeepEqual(a, b) {
				t.Fatalf("after op %d: exports differ:\nstore: %+v\nmodel: %+v", i, a, b)
			}
		}
	}
	if a, b := export(s), export(m); !reflect.DeepEqual(a, b) {
		t.Fatalf("exports differ:\nstore: %+v\nmodel: %+v", a, b)
	}
	t.Logf("%d prunes (%d records deleted), %d raises, %d high-watermark changes", prunes, pruned, raises, hws)
	if pruned == 0 {
		t.Fatal("nothing was pruned: the test does not exercise pruning")
	}
}

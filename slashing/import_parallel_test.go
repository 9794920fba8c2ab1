package slashing_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// A parallel import must leave exactly what a sequential one leaves, including for a key whose
// entries repeat (they must merge in document order), and report the same counts.
func TestImportParallelMatchesSequential(t *testing.T) {
	var hs []slashing.ValidatorHistory
	for i := range 40 {
		k := i % 13 // repeated keys
		hs = append(hs, slashingtest.H(k,
			[]slashing.SignedBlock{slashingtest.B(uint64(10*i), byte(i%3+1))},
			[]slashing.SignedAttestation{slashingtest.A(uint64(i%5), uint64(i%7+5), byte(i%2+1))}))
	}
	doc := slashingtest.Document(slashingtest.GVR, hs...)
	export := func(workers int) ([]byte, slashing.ImportResult) {
		m := slashingtest.NewMemory()
		res, err := slashing.Import(context.Background(), m, bytes.NewReader(doc), slashing.ImportOptions{Workers: workers})
		if err != nil {
			t.Fatalf("workers=%d: %v", workers, err)
		}
		var out bytes.Buffer
		if err := slashing.Export(context.Background(), m, &out, nil); err != nil {
			t.Fatal(err)
		}
		return out.Bytes(), res
	}
	seq, seqRes := export(1)
	par, parRes := export(4)
	if !bytes.Equal(seq, par) {
		t.Fatalf("parallel import differs from sequential:\n%s\nvs\n%s", par, seq)
	}
	if seqRes != parRes {
		t.Fatalf("results differ: sequential %+v, parallel %+v", seqRes, parRes)
	}
}

type failingStore struct {
	*slashingtest.Memory
	bad phase0.BLSPubKey
}

var errBroken = errors.New("broken")

func (f failingStore) ImportValidator(ctx context.Context, gvr phase0.Root, h slashing.ValidatorHistory) error {
	if h.Pubkey == f.bad {
		return errBroken
	}
	return f.Memory.ImportValidator(ctx, gvr, h)
}

func TestImportParallelStopsOnError(t *testing.T) {
	var hs []slashing.ValidatorHistory
	for i := range 50 {
		hs = append(hs, slashingtest.H(i, []slashing.SignedBlock{slashingtest.B(1, 1)}, nil))
	}
	s := failingStore{Memory: slashingtest.NewMemory(), bad: slashingtest.Key(20)}
	res, err := slashing.Import(context.Background(), s, bytes.NewReader(slashingtest.Document(slashingtest.GVR, hs...)), slashing.ImportOptions{Workers: 4})
	if !errors.Is(err, errBroken) {
		t.Fatalf("error %v, want the store's error", err)
	}
	if res.Imported >= 50 {
		t.Fatalf("imported %d entries around a failure", res.Imported)
	}
}

package slashingtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

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

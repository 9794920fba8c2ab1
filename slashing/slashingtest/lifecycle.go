package slashingtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/slashing"
)

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

package postgres_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// TestSetHighWatermarkWaitsForWritesInFlight: a signature that read the
// fence (and no high watermark) and is still running holds SetHighWatermark
// back and commits; a signature that starts while SetHighWatermark waits
// queues behind it and is checked against the new high watermark.
func TestSetHighWatermarkWaitsForWritesInFlight(t *testing.T) {
	ctx := context.Background()
	s, url := fresh(t, postgres.Options{Create: true})
	if err := s.SignAttestation(ctx, att(1, 1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SignBlock(ctx, block(2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	release := lockKey(t, url, 1)
	inFlight := make(chan error, 1)
	go func() { inFlight <- s.SignAttestation(ctx, att(1, 10, 20, 1)) }()
	waitForLockWaiter(t, url, "vigil_sign_attestation")
	set := make(chan error, 1)
	go func() { set <- s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 5, Epoch: 5}) }()
	waitForLockWaiter(t, url, "vigil_set_high_watermark")
	late := make(chan error, 1)
	go func() { late <- s.SignBlock(ctx, block(2, 10, 1)) }()
	waitForLockWaiter(t, url, "vigil_sign_block")
	select {
	case err := <-set:
		t.Fatalf("SetHighWatermark returned while a write was in flight: %v", err)
	case err := <-late:
		t.Fatalf("a signature overtook the waiting SetHighWatermark: %v", err)
	default:
	}
	release()
	if err := <-inFlight; err != nil {
		t.Fatalf("the signature in flight (checked before the high watermark was set) = %v", err)
	}
	if err := <-set; err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, <-late, slashing.AboveHighWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 20, 21, 1)), slashing.AboveHighWatermark)
}

// TestHighWatermarkOrder: the high watermark is checked where
// slashing.CheckBlock / CheckAttestation check it: after the enabled flag
// (and, for votes, source after target), before the low watermark; the
// refusal names the high watermark.
func TestHighWatermarkOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnabled(ctx, slashingtest.Key(2), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RaiseLowWatermarks(ctx, []phase0.BLSPubKey{slashingtest.Key(3)}, 500, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 100, Epoch: 10}); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(2, 200, 1)), slashing.ValidatorDisabled)
	mustRefuse(t, s.SignAttestation(ctx, att(2, 20, 30, 1)), slashing.ValidatorDisabled)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 30, 20, 1)), slashing.SourceAfterTarget)
	mustRefuse(t, s.SignBlock(ctx, block(3, 200, 1)), slashing.AboveHighWatermark) // also below the LW 500
	mustRefuse(t, s.SignAttestation(ctx, att(3, 20, 30, 1)), slashing.AboveHighWatermark)
	mustRefuse(t, s.SignBlock(ctx, block(3, 99, 1)), slashing.BelowLowWatermark)
	err := s.SignBlock(ctx, block(1, 100, 1))
	mustRefuse(t, err, slashing.AboveHighWatermark)
	if !strings.Contains(err.Error(), "high watermark slot 100") {
		t.Fatalf("refusal %q does not name the high watermark", err)
	}
	err = s.SignAttestation(ctx, att(1, 9, 12, 1))
	mustRefuse(t, err, slashing.AboveHighWatermark)
	if !strings.Contains(err.Error(), "high watermark epoch 10") {
		t.Fatalf("refusal %q does not name the high watermark", err)
	}
	// u64 extremes survive the stored mapping.
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: math.MaxUint64, Epoch: 1 << 63}); err != nil {
		t.Fatal(err)
	}
	if hw, err := s.HighWatermark(ctx); err != nil || *hw != (slashing.HighWatermark{Slot: math.MaxUint64, Epoch: 1 << 63}) {
		t.Fatalf("HighWatermark = %v, %v", hw, err)
	}
	if err := s.SignBlock(ctx, block(1, math.MaxUint64-1, 1)); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, s.SignBlock(ctx, block(1, math.MaxUint64, 1)), slashing.AboveHighWatermark)
	mustRefuse(t, s.SignAttestation(ctx, att(1, 1<<63, 1<<63, 1)), slashing.AboveHighWatermark)
}

// TestOneRoundTripWithHighWatermark: the high watermark costs no round trip:
// signatures accepted under it and refused by it are one request each.
func TestOneRoundTripWithHighWatermark(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	if err := s.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: 100, Epoch: 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil { // warm-up
		t.Fatal(err)
	}
	for i, call := range []func() error{
		func() error { return s.SignBlock(ctx, block(1, 2, 1)) },
		func() error { return ignoreRefusal(s.SignBlock(ctx, block(1, 100, 1))) },
		func() error { return s.SignAttestation(ctx, att(1, 1, 2, 1)) },
		func() error { return ignoreRefusal(s.SignAttestation(ctx, att(1, 2, 10, 1))) },
	} {
		before := s.Stats().RoundTrips
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := s.Stats().RoundTrips - before; got != 1 {
			t.Fatalf("call %d: %d round trips, want 1", i, got)
		}
	}
}

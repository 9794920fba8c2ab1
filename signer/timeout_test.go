package signer_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
)

// A store that never answers fails the request closed within StoreTimeout: 503-class error,
// nothing signed, no hang.
func TestSignStoreTimeoutFailsClosed(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *signer.Config) { c.StoreTimeout = 50 * time.Millisecond })
	f.store.gate = make(chan struct{}) // never opened: the store blocks until its ctx ends
	start := time.Now()
	sig, err := f.s.Sign(t.Context(), f.pub(0), attestation(nowEpoch-1, nowEpoch, 1))
	took := time.Since(start)
	if !errors.Is(err, signer.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("Sign error = %v, want ErrUnavailable naming the timeout", err)
	}
	if sig != (keystore.Signature{}) || f.signs() != 0 {
		t.Error("signed although the store never answered")
	}
	if took > 5*time.Second {
		t.Errorf("Sign took %s with a 50ms store timeout", took)
	}
}

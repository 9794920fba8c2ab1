package watch

import (
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
)

func TestTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := New(func() time.Time { return now })
	var k1, k2 signer.PublicKey
	k1[0], k2[0] = 1, 2
	vc1, vc2 := signer.Caller{Name: "vc1"}, signer.Caller{Name: "vc2"}
	att := func(c signer.Caller, k signer.PublicKey, e phase0.Epoch, o signer.Outcome) {
		tr.ObserveRequest(signer.Event{Caller: c, Key: k, Type: signer.TypeAttestation, Epoch: e, Outcome: o})
	}
	att(vc1, k1, 10, signer.OutcomeSigned)
	att(vc2, k1, 10, signer.OutcomeForbidden) // a hot standby asking: alive, has the duty
	att(vc1, k2, 11, signer.OutcomeRefused)
	att(vc1, k2, 12, signer.OutcomeInvalid) // a malformed request proves nothing
	att(signer.Anonymous, k2, 13, signer.OutcomeSigned)
	tr.ObserveRequest(signer.Event{Caller: vc2, Key: k2, Type: signer.TypeRandaoReveal, Epoch: 14, Outcome: signer.OutcomeSigned})
	for _, c := range []struct {
		client string
		key    signer.PublicKey
		epoch  phase0.Epoch
		want   bool
	}{
		{"vc1", k1, 10, true}, {"vc2", k1, 10, true}, {"vc1", k1, 11, false}, {"vc1", k2, 11, true},
		{"vc1", k2, 12, false}, {"anonymous", k2, 13, false}, {"vc2", k2, 14, false},
	} {
		if got := tr.AttestedBy(c.client, c.key, c.epoch); got != c.want {
			t.Errorf("AttestedBy(%s, %x, %d) = %v, want %v", c.client, c.key[0], c.epoch, got, c.want)
		}
	}
	if s := tr.Client("vc2"); s.Requests != 2 || !s.LastRequest.Equal(now) {
		t.Errorf("vc2 stats %+v", s)
	}
	if s := tr.Client("anonymous"); s.Requests != 0 {
		t.Errorf("anonymous counted: %+v", s)
	}
	// The ring keeps the latest epochs.
	for e := phase0.Epoch(20); e < 20+ring+2; e++ {
		att(vc1, k1, e, signer.OutcomeSigned)
	}
	if tr.AttestedBy("vc1", k1, 20) || !tr.AttestedBy("vc1", k1, 20+ring+1) {
		t.Error("the ring does not keep the newest epochs")
	}
}

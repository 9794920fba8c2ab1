package signermetrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/signer/signermetrics"
)

func TestObserveRequestAndLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := signermetrics.New(reg)
	var _ signer.Observer = m
	for _, e := range []signer.Event{
		{Type: signer.TypeAttestation, Outcome: signer.OutcomeSigned, Duration: 3 * time.Millisecond},
		{Type: signer.TypeAttestation, Outcome: signer.OutcomeSigned, Duration: time.Millisecond},
		{Type: signer.TypeBlockV2, Outcome: signer.OutcomeRefused, Duration: time.Millisecond},
		{Outcome: signer.OutcomeInvalid, Duration: time.Millisecond},
	} {
		m.ObserveRequest(e)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[[2]string]float64{}
	var samples uint64
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			var typ, outcome string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "type":
					typ = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			switch mf.GetName() {
			case "vigil_sign_requests_total":
				counts[[2]string{typ, outcome}] = s.GetCounter().GetValue()
			case "vigil_sign_duration_seconds":
				samples += s.GetHistogram().GetSampleCount()
			}
		}
	}
	for k, want := range map[[2]string]float64{
		{"ATTESTATION", "signed"}: 2, {"BLOCK_V2", "refused"}: 1, {"BLOCK_V2", "signed"}: 0, {"unknown", "invalid"}: 1,
	} {
		if got, ok := counts[k]; !ok || got != want {
			t.Errorf("vigil_sign_requests_total{type=%q,outcome=%q} = %v (present %v), want %v", k[0], k[1], got, ok, want)
		}
	}
	// Every type exposes signed and refused series from the start, plus the one "unknown" series.
	if got, want := len(counts), 2*len(signer.Types)+1; got != want {
		t.Errorf("vigil_sign_requests_total has %d series, want %d", got, want)
	}
	if samples != 4 {
		t.Errorf("vigil_sign_duration_seconds has %d samples, want 4", samples)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}

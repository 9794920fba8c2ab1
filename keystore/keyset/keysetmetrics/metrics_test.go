package keysetmetrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/keystore/keyset/keysetmetrics"
)

func TestObserveKeyLoadingAndLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := keysetmetrics.New(reg, func() int { return 7 })
	var _ keyset.Observer = m
	m.ObserveKeySource(keyset.SourceReport{Name: "keystore-dir", Loaded: 3, Errors: make([]keystore.LoadError, 2), Took: 1500 * time.Millisecond})
	m.ObserveKeyLoad(keyset.ReloadDegraded)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range s.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			if s.GetCounter() != nil {
				got[name] = s.GetCounter().GetValue()
			} else {
				got[name] = s.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"vigil_keys_loaded":                                  7,
		"vigil_key_load_errors{source=keystore-dir}":         2,
		"vigil_key_source_keys{source=keystore-dir}":         3,
		"vigil_key_source_up{source=keystore-dir}":           0,
		"vigil_key_source_load_seconds{source=keystore-dir}": 1.5,
		"vigil_key_loads_total{outcome=completed}":           0,
		"vigil_key_loads_total{outcome=degraded}":            1,
		"vigil_key_loads_total{outcome=failed}":              0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got series %v, want exactly %v", got, want)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}

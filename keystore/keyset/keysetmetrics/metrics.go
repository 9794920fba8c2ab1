// Package keysetmetrics is the Prometheus side of key loading: it implements keyset.Observer
// and exports the number of loaded keys. It lives apart from keyset so that keyset (and the
// signer that imports it) never pulls in the Prometheus client and, through it, net/http.
package keysetmetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/keystore/keyset"
)

// Metrics holds the key-loading collectors. It implements keyset.Observer.
type Metrics struct {
	keyErrors  *prometheus.GaugeVec
	sourceKeys *prometheus.GaugeVec
	sourceUp   *prometheus.GaugeVec
	sourceTook *prometheus.GaugeVec
	keyLoads   *prometheus.CounterVec
}

var _ keyset.Observer = (*Metrics)(nil)

// New registers the key-loading collectors on reg. keys reports the number of loaded keys at
// scrape time (the Set's Len).
func New(reg prometheus.Registerer, keys func() int) *Metrics {
	m := &Metrics{
		keyErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_key_load_errors",
			Help: "Key items (files, secrets, token objects) that failed to load at the last (re)load, by source.",
		}, []string{"source"}),
		sourceKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_key_source_keys",
			Help: "Keys each source provides after the last (re)load (including keys kept from an earlier load).",
		}, []string{"source"}),
		sourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_key_source_up",
			Help: "1 when the source's last (re)load read every item, 0 when the source or an item failed.",
		}, []string{"source"}),
		keyLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_key_loads_total",
			Help: "Key loads (the one at start and every reload) by outcome: completed, degraded (a source or an item failed), failed (interrupted; nothing changed).",
		}, []string{"outcome"}),
		sourceTook: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_key_source_load_seconds",
			Help: "Duration of each source's last (re)load.",
		}, []string{"source"}),
	}
	reg.MustRegister(m.keyErrors, m.sourceKeys, m.sourceUp, m.sourceTook, m.keyLoads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_keys_loaded", Help: "Keys available for signing.",
		}, func() float64 { return float64(keys()) }),
	)
	for _, o := range []keyset.ReloadState{keyset.ReloadCompleted, keyset.ReloadDegraded, keyset.ReloadFailed} {
		m.keyLoads.WithLabelValues(string(o))
	}
	return m
}

// ObserveKeyLoad implements keyset.Observer.
func (m *Metrics) ObserveKeyLoad(state keyset.ReloadState) {
	m.keyLoads.WithLabelValues(string(state)).Inc()
}

// ObserveKeySource implements keyset.Observer: one source's outcome of the last (re)load.
func (m *Metrics) ObserveKeySource(r keyset.SourceReport) {
	m.keyErrors.WithLabelValues(r.Name).Set(float64(len(r.Errors)))
	m.sourceKeys.WithLabelValues(r.Name).Set(float64(r.Loaded))
	up := 0.0
	if r.OK() {
		up = 1
	}
	m.sourceUp.WithLabelValues(r.Name).Set(up)
	m.sourceTook.WithLabelValues(r.Name).Set(r.Took.Seconds())
}

// Package signermetrics is the Prometheus side of the sign pipeline: a signer.Observer that
// counts requests by type and outcome and times them. It lives apart from signer so that signer
// never pulls in the Prometheus client and, through it, net/http.
package signermetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/signer"
)

// Metrics holds the sign-request collectors. It implements signer.Observer.
type Metrics struct {
	signs    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ signer.Observer = (*Metrics)(nil)

// New registers the sign-request collectors on reg, with the signed and refused series of every
// type present from the start (so that alerts can use rate()).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		signs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sign_requests_total",
			Help: "Sign requests by type and outcome (signed, refused = slashing protection said no, invalid, unknown_key, unavailable, overloaded, error).",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_sign_duration_seconds",
			Help:    "Time spent in the sign pipeline (root computation, slashing protection, BLS), by type and outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"type", "outcome"}),
	}
	reg.MustRegister(m.signs, m.duration)
	for _, t := range signer.Types {
		for _, o := range []signer.Outcome{signer.OutcomeSigned, signer.OutcomeRefused} {
			m.signs.WithLabelValues(string(t), string(o))
		}
	}
	return m
}

// ObserveRequest implements signer.Observer. Labels are bounded: the type (or "unknown") and the
// outcome, never the key or the caller.
func (m *Metrics) ObserveRequest(e signer.Event) {
	typ := string(e.Type)
	if typ == "" {
		typ = "unknown"
	}
	m.signs.WithLabelValues(typ, string(e.Outcome)).Inc()
	m.duration.WithLabelValues(typ, string(e.Outcome)).Observe(e.Duration.Seconds())
}

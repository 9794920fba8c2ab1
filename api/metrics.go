package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-signer/vigil/signer"
)

// Metrics holds Vigil's Prometheus collectors on an explicit registry (never the global one).
// All names carry the vigil_ prefix. It implements signer.Observer.
type Metrics struct {
	reg          *prometheus.Registry
	signs        *prometheus.CounterVec
	signDuration *prometheus.HistogramVec
	httpRequests *prometheus.CounterVec
	keyErrors    *prometheus.GaugeVec
	sourceKeys   *prometheus.GaugeVec
	sourceUp     *prometheus.GaugeVec
	sourceTook   *prometheus.GaugeVec
	keyLoads     *prometheus.CounterVec
}

// NewMetrics registers Vigil's collectors (plus Go and process collectors) on a new registry.
// keys reports the number of loaded keys at scrape time.
func NewMetrics(version string, keys func() int) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		signs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sign_requests_total",
			Help: "Sign requests by type and outcome (signed, refused = slashing protection said no, invalid, unknown_key, unavailable, overloaded, error).",
		}, []string{"type", "outcome"}),
		signDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_sign_duration_seconds",
			Help:    "Time spent in the sign pipeline (root computation, slashing protection, BLS), by type and outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"type", "outcome"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_http_requests_total",
			Help: "HTTP requests on the signing listener by route pattern and status code.",
		}, []string{"route", "code"}),
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
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_build_info", Help: "Always 1; the version label says which build runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.signs, m.signDuration, m.httpRequests, m.keyErrors, m.sourceKeys, m.sourceUp, m.sourceTook, m.keyLoads, build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_keys_loaded", Help: "Keys available for signing.",
		}, func() float64 { return float64(keys()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, o := range []signer.ReloadState{signer.ReloadCompleted, signer.ReloadDegraded, signer.ReloadFailed} {
		m.keyLoads.WithLabelValues(string(o))
	}
	for _, t := range signer.Types {
		for _, o := range []signer.Outcome{signer.OutcomeSigned, signer.OutcomeRefused} {
			m.signs.WithLabelValues(string(t), string(o)) // expose zeros so alerts can use rate()
		}
	}
	return m
}

// Observe implements signer.Observer.
func (m *Metrics) Observe(t signer.Type, outcome signer.Outcome, d time.Duration) {
	typ := string(t)
	if typ == "" {
		typ = "unknown"
	}
	m.signs.WithLabelValues(typ, string(outcome)).Inc()
	m.signDuration.WithLabelValues(typ, string(outcome)).Observe(d.Seconds())
}

// ObserveKeyLoad implements signer.SourceObserver.
func (m *Metrics) ObserveKeyLoad(state signer.ReloadState) {
	m.keyLoads.WithLabelValues(string(state)).Inc()
}

// ObserveKeySource implements signer.SourceObserver: one source's outcome of the last (re)load.
func (m *Metrics) ObserveKeySource(r signer.SourceReport) {
	m.keyErrors.WithLabelValues(r.Name).Set(float64(len(r.Errors)))
	m.sourceKeys.WithLabelValues(r.Name).Set(float64(r.Loaded))
	up := 0.0
	if r.OK() {
		up = 1
	}
	m.sourceUp.WithLabelValues(r.Name).Set(up)
	m.sourceTook.WithLabelValues(r.Name).Set(r.Took.Seconds())
}

// CounterFunc registers a counter read from fn at scrape time (a component's own cumulative
// counters, e.g. the slashing database's round trips).
func (m *Metrics) CounterFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// Registry exposes the registry (tests, extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves /metrics for the metrics listener.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (m *Metrics) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		m.httpRequests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
	})
}

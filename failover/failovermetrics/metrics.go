// Package failovermetrics is the Prometheus side of the HA election: the role, term and
// transitions of this instance and the health of its lease renewals. It lives apart from
// failover so that the election never pulls in the Prometheus client.
package failovermetrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/failover"
)

// Metrics holds the election's collectors. Wire OnTransition and OnRenew into failover.Config.
type Metrics struct {
	status      func() failover.Status
	transitions *prometheus.CounterVec
	renew       *prometheus.HistogramVec

	mu        sync.Mutex
	lastRenew time.Time
}

// New registers the collectors on reg; status reads the elector's state at scrape time.
func New(reg prometheus.Registerer, status func() failover.Status) *Metrics {
	m := &Metrics{
		status: status,
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ha_transitions_total", Help: "Changes of this instance's HA role, by the role it changed to.",
		}, []string{"to"}),
		renew: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_ha_lease_renew_duration_seconds", Help: "Time of the leader's lease renewals, by result (ok, error).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"result"}),
	}
	for _, r := range []failover.Role{failover.Leader, failover.Standby} {
		m.transitions.WithLabelValues(string(r))
	}
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ha_leader", Help: "1 while this instance is the HA leader (signing), else 0.",
	}, func() float64 {
		if m.status().Role == failover.Leader {
			return 1
		}
		return 0
	})
	term := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ha_term", Help: "The fencing term this instance leads at, or the lease's term as last observed by the standby.",
	}, func() float64 { return float64(m.status().Term) })
	since := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ha_seconds_since_last_renew", Help: "Seconds since this instance last renewed the lease (-1: never).",
	}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.lastRenew.IsZero() {
			return -1
		}
		return time.Since(m.lastRenew).Seconds()
	})
	reg.MustRegister(m.transitions, m.renew, leader, term, since)
	return m
}

// OnTransition counts a transition (failover.Config.OnTransition).
func (m *Metrics) OnTransition(t failover.Transition) {
	m.transitions.WithLabelValues(string(t.To)).Inc()
}

// OnRenew times a renewal (failover.Config.OnRenew).
func (m *Metrics) OnRenew(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		m.mu.Lock()
		m.lastRenew = time.Now()
		m.mu.Unlock()
	}
	m.renew.WithLabelValues(result).Observe(d.Seconds())
}

package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry is the one explicit Prometheus registry of `vigil serve` (never the global one),
// with what belongs to the process: its build and the Go and process collectors. Every package
// registers its own collectors on it (api: HTTP; signer/signermetrics: sign requests;
// keystore/keyset/keysetmetrics: key loading; storeMetrics: the slashing store).
func newRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vigil_build_info", Help: "Always 1; the version label says which build runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	reg.MustRegister(build, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

package main

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/vigil-signer/vigil/api"
)

func parseHTTPFlags(t *testing.T, args ...string) *httpFlags {
	t.Helper()
	var h httpFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	h.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return &h
}

func TestHTTPFlagsApply(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := parseHTTPFlags(t)
	o := api.Options{Metrics: api.NewMetrics(newRegistry("test"))}
	if err := h.apply(&o, log); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if o.HostAllowlist == nil || !o.HostAllowlist.Allows("localhost:9000") || o.HostAllowlist.Allows("attacker.example") {
		t.Errorf("default host allowlist %v", o.HostAllowlist)
	}
	if o.BodyBudget == nil || o.BodyBudget.Max() != api.DefaultMaxBufferedBytes {
		t.Errorf("body budget %v, want %d", o.BodyBudget, api.DefaultMaxBufferedBytes)
	}
	if o.AccessLog != nil {
		t.Errorf("access log on by default")
	}
	if h.connCap < 1 || h.connCap > defaultMaxConnections {
		t.Errorf("connection cap %d", h.connCap)
	}
	// The listener metrics pass the linter (names, units, help).
	mfs, err := o.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "vigil_http_") {
			t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
		}
	}

	h = parseHTTPFlags(t, "--http-access-log", "--http-host-allowlist", "*")
	o = api.Options{}
	if err := h.apply(&o, log); err != nil {
		t.Fatal(err)
	}
	if o.AccessLog == nil || !o.HostAllowlist.Any() {
		t.Errorf("--http-access-log --http-host-allowlist *: access log %v, any host %v", o.AccessLog, o.HostAllowlist.Any())
	}

	for _, bad := range [][]string{
		{"--http-host-allowlist", ""},
		{"--http-host-allowlist", "localhost:9000"},
		{"--metrics-host-allowlist", "bad host"},
		{"--http-max-connections", "0"},
		{"--http-read-timeout", "0s"},
		{"--http-max-buffered-bytes", "1000"}, // below the body limit: no large body could ever fit
	} {
		h := parseHTTPFlags(t, bad...)
		err := h.apply(&api.Options{}, log)
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("%v: error %v, want one naming the flag", bad, err)
		}
	}
}

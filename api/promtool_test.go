package api_test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/internal/testenv"
	"github.com/vigil-signer/vigil/keystore/keyset/keysetmetrics"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/signer/signermetrics"
)

// TestMetricsPassPromtool scrapes the metrics handler after some traffic and runs the real
// `promtool check metrics` linter over the exposition (names, help, types, units).
func TestMetricsPassPromtool(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool", "apt-get install prometheus")
	// The registry as cmd assembles it: HTTP metrics, sign requests, key loading.
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	sm := signermetrics.New(reg)
	km := keysetmetrics.New(reg, func() int { return 3 })
	sm.ObserveRequest(signer.Event{Type: signer.TypeAttestation, Outcome: signer.OutcomeSigned, Duration: 2 * time.Millisecond})
	sm.ObserveRequest(signer.Event{Type: signer.TypeBlockV2, Outcome: signer.OutcomeRefused, Duration: time.Millisecond})
	km.ObserveKeySource(signer.SourceReport{Name: "vault", Loaded: 5, Took: 1500 * time.Millisecond})
	km.ObserveKeyLoad(signer.ReloadDegraded)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`vigil_sign_requests_total{outcome="signed",type="ATTESTATION"} 1`,
		`vigil_sign_requests_total{outcome="refused",type="BLOCK_V2"} 1`,
		`vigil_keys_loaded 3`,
		`vigil_key_load_errors{source="vault"} 0`,
		`vigil_key_source_keys{source="vault"} 5`,
		`vigil_key_source_up{source="vault"} 1`,
		`vigil_key_source_load_seconds{source="vault"} 1.5`,
		`vigil_key_loads_total{outcome="degraded"} 1`,
		`vigil_key_loads_total{outcome="failed"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

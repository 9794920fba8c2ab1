package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/signer"
)

// standbyErr is what an HA standby's Leadership answers (as failover.NotLeaderError does).
var standbyErr = fmt.Errorf("%w: standby: the active instance is a at http://a:9000", signer.ErrNotLeader)

func standbyHealth() signer.Health {
	return signer.Health{Leader: &signer.LeaderStatus{Role: "standby", Instance: "b", Leader: "a", LeaderURL: "http://a:9000", Term: 7, LeaseValid: true}}
}

// An HA standby: /readyz 503 naming the leader (load balancers route to the leader only),
// /livez 200, /healthcheck 200 with role, leader and term; keymanager writes 503 with the
// standby message and never reach the keymanager; reads work.
func TestStandbyEndpoints(t *testing.T) {
	t.Parallel()
	km := &fakeKeyManager{}
	f := &fakeSigner{health: standbyHealth(), leader: standbyErr}
	h := newHandler(t, f, func(o *Options) { o.KeyManager, o.KeyManagerToken = km, kmToken })

	ready := do(h, http.MethodGet, "/readyz", "")
	wantEqual(t, "standby /readyz", ready.Code, http.StatusServiceUnavailable)
	if !strings.Contains(ready.Body.String(), "the active instance is a at http://a:9000") {
		t.Errorf("standby /readyz body %q does not name the leader", ready.Body)
	}
	wantEqual(t, "standby /livez", do(h, http.MethodGet, "/livez", "").Code, http.StatusOK)

	hc := do(h, http.MethodGet, "/healthcheck", "")
	wantEqual(t, "standby /healthcheck", hc.Code, http.StatusOK)
	var body struct {
		Checks []struct {
			ID   string         `json:"id"`
			Data map[string]any `json:"data"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(hc.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	var ha map[string]any
	for _, c := range body.Checks {
		if c.ID == "ha-check" {
			ha = c.Data
		}
	}
	if ha == nil || ha["role"] != "standby" || ha["leader"] != "a" || ha["term"] != float64(7) {
		t.Errorf("ha-check = %v, want role standby, leader a, term 7", ha)
	}

	for _, m := range []string{http.MethodPost, http.MethodDelete} {
		rec := do(h, m, "/eth/v1/keystores", `{"keystores":[],"passwords":[]}`, kmAuth...)
		wantEqual(t, m+" keystores on a standby", rec.Code, http.StatusServiceUnavailable)
		if !strings.Contains(rec.Body.String(), "standby: the active instance is a") {
			t.Errorf("%s body %q lacks the standby message", m, rec.Body)
		}
	}
	if km.calls != 0 {
		t.Errorf("a standby's keymanager writes reached the keymanager (%d calls)", km.calls)
	}
	wantEqual(t, "GET keystores on a standby", do(h, http.MethodGet, "/eth/v1/keystores", "", kmAuth...).Code, http.StatusOK)

	// A sign request on the standby: 503 with the message, and the connection is closed so a
	// client behind a VIP reconnects to the leader.
	f.sign = func(string, *signer.Request) (signer.Signature, error) { return signer.Signature{}, standbyErr }
	rec := do(h, http.MethodPost, "/api/v1/eth2/sign/0x"+strings.Repeat("ab", 48), `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},"genesis_validators_root":"0x`+strings.Repeat("00", 32)+`"},"randao_reveal":{"epoch":"1"}}`)
	wantEqual(t, "sign on a standby", rec.Code, http.StatusServiceUnavailable)
	wantEqual(t, "Connection header", rec.Header().Get("Connection"), "close")
	if !strings.Contains(rec.Body.String(), "standby: the active instance is a at http://a:9000") {
		t.Errorf("sign body %q", rec.Body)
	}

	// The leader of a pair is ready.
	f2 := &fakeSigner{health: signer.Health{Leader: &signer.LeaderStatus{Role: "leader", Instance: "a", Leader: "a", Term: 8}}}
	wantEqual(t, "leader /readyz", do(newHandler(t, f2, nil), http.MethodGet, "/readyz", "").Code, http.StatusOK)
}

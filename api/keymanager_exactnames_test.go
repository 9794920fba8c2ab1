package api

import (
	"net/http"
	"strings"
	"testing"
)

// Keymanager bodies: a repeated member or a case variant of a known member is a 400 naming it,
// and nothing reaches the keymanager (before, "Passwords" was taken for "passwords" and the last
// of two "keystores" arrays was imported).
func TestKeyManagerExactFieldNames(t *testing.T) {
	km := &fakeKeyManager{}
	h := kmHandler(t, km, nil)
	for _, c := range []struct {
		name, method, path, body, substr string
	}{
		{"import: case variant", http.MethodPost, "/eth/v1/keystores", `{"keystores":[],"Passwords":[]}`, `Passwords: field names are case-sensitive, want "passwords"`},
		{"import: duplicate", http.MethodPost, "/eth/v1/keystores", `{"keystores":["a"],"passwords":["p"],"keystores":[]}`, "keystores: duplicate field name"},
		{"import: duplicate inside a keystore object", http.MethodPost, "/eth/v1/keystores", `{"keystores":[{"crypto":{},"crypto":{}}],"passwords":["p"]}`, "keystores[0].crypto: duplicate field name"},
		{"import: case variant of slashing_protection", http.MethodPost, "/eth/v1/keystores", `{"keystores":[],"passwords":[],"SLASHING_PROTECTION":"{}"}`, "SLASHING_PROTECTION: field names are case-sensitive"},
		{"delete: case variant", http.MethodDelete, "/eth/v1/keystores", `{"PUBKEYS":[]}`, `PUBKEYS: field names are case-sensitive, want "pubkeys"`},
		{"delete: duplicate", http.MethodDelete, "/eth/v1/keystores", `{"pubkeys":[],"pubkeys":[]}`, "pubkeys: duplicate field name"},
	} {
		msg := wantError(t, do(h, c.method, c.path, c.body, append([]string{"Content-Type", "application/json"}, kmAuth...)...), http.StatusBadRequest)
		if !strings.Contains(msg, c.substr) {
			t.Errorf("%s: message %q does not contain %q", c.name, msg, c.substr)
		}
	}
	if km.calls != 0 {
		t.Errorf("bad requests reached the keymanager %d times", km.calls)
	}
}

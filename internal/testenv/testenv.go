// Package testenv holds the test convention for components outside Go (Postgres, SoftHSM, Vault,
// Node, Chromium, promtool): on a bare clone a test that needs one skips with a clear message;
// when VIGIL_REQUIRE_EXTERNAL=1 (set by .ci/run) the same test fails instead, so CI can never
// pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv is the variable that turns skips for missing components into failures.
const RequireEnv = "VIGIL_REQUIRE_EXTERNAL"

// Required reports whether missing external components must fail tests.
func Required() bool {
	v := os.Getenv(RequireEnv)
	return v == "1" || v == "true"
}

// Missing skips the test (or fails it when Required) because component is unavailable; how says
// how to get it.
func Missing(t testing.TB, component, how string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (%s=1) but unavailable: %s", component, RequireEnv, how)
	}
	t.Skipf("%s unavailable, skipping (%s; set %s=1 to make this a failure)", component, how, RequireEnv)
}

// LookPath returns the path of an executable, or skips/fails the test via Missing.
func LookPath(t testing.TB, name, how string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, how)
	}
	return p
}

package main

import (
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's first screen works as written: `make run` is `vigil serve --dev` (which creates
// its slashing database by itself, no --init-slashing-protection), prints the interop public
// keys, and the README's sample sign request is signed; the same request again gets the same
// signature, a changed beacon_block_root is a double vote (412), and a restart opens (never
// re-creates) the database and still refuses the double vote.
func TestREADMEWalk(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	first := string(readme)
	if i := strings.Index(first, "\n---\n"); i > 0 {
		first = first[:i]
	}
	for _, want := range []string{"make run ", "make test "} {
		if !strings.Contains(first, want) {
			t.Errorf("the README's first screen lacks %q", want)
		}
	}
	recipe := regexp.MustCompile(`(?m)^run:.*\n\t(.*)$`).FindStringSubmatch(string(makefile))
	if recipe == nil || !strings.Contains(recipe[1], "serve --dev --data-dir") || strings.Contains(recipe[1], "init-slashing") {
		t.Fatalf("the Makefile's run recipe is not `vigil serve --dev --data-dir …` (this test runs that): %q", recipe)
	}
	m := regexp.MustCompile(`http://127\.0\.0\.1:9000(/api/v1/eth2/sign/(0x[0-9a-f]{96}))\s*\\\s*-d '([^']*)'`).FindStringSubmatch(first)
	if m == nil {
		t.Fatal("no sample sign request (curl … /api/v1/eth2/sign/0x… -d '…') on the README's first screen")
	}
	path, pub, body := m[1], m[2], m[3]

	data := t.TempDir()
	v := startProc(t, procOptions{}, "--dev", "--data-dir", data) // as make run: no --init flag
	if log := v.Stderr.waitFor(t, "slashing protection database", 10*time.Second); !strings.Contains(log, "CREATED") {
		t.Errorf("--dev did not say it created the database:\n%s", log)
	}
	if !strings.Contains(v.Stdout.String(), pub) {
		t.Errorf("the sample's key %s is not among the public keys printed at start:\n%s", pub, v.Stdout)
	}
	if r := do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), pub) {
		t.Fatalf("publicKeys: %s", r)
	}
	if r := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil); r.status != http.StatusOK {
		t.Fatalf("healthcheck: %s", r)
	}
	sig := signature(t, do(t, http.MethodPost, v.URL+path, "application/json", body))
	if again := signature(t, do(t, http.MethodPost, v.URL+path, "application/json", body)); again != sig {
		t.Fatalf("the same request signed twice gave two signatures")
	}
	double := strings.Replace(body, `"beacon_block_root":"0x0000000000000000000000000000000000000000000000000000000000000001"`,
		`"beacon_block_root":"0x0000000000000000000000000000000000000000000000000000000000000002"`, 1)
	if double == body {
		t.Fatal("the sample request's beacon_block_root is not the one this test changes")
	}
	wantError(t, do(t, http.MethodPost, v.URL+path, "application/json", double), http.StatusPreconditionFailed, "double")
	v.stop(t)

	v = startProc(t, procOptions{}, "--dev", "--data-dir", data)
	if log := v.Stderr.waitFor(t, "slashing protection database", 10*time.Second); !strings.Contains(log, "database opened") || !strings.Contains(log, `attestations=1`) && !strings.Contains(log, `"attestations":1`) {
		t.Errorf("the restart did not open the recorded database:\n%s", log)
	}
	if again := signature(t, do(t, http.MethodPost, v.URL+path, "application/json", body)); again != sig {
		t.Fatalf("after a restart the same request gave another signature")
	}
	wantError(t, do(t, http.MethodPost, v.URL+path, "application/json", double), http.StatusPreconditionFailed, "double")
}

// Many connections need many file descriptors: started with a soft limit of 256, vigil serve
// runs with its soft limit raised to the hard limit (#10 item 7).
func TestServeRaisesTheFileLimit(t *testing.T) {
	v := startProc(t, procOptions{init: true, wrap: []string{"sh", "-c", `ulimit -Sn 256 && exec "$0" "$@"`}}, "--dev")
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(v.pid()) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^Max open files\s+(\d+)\s+(\d+)`).FindStringSubmatch(string(limits))
	if line == nil {
		t.Fatalf("no open-files limit in:\n%s", limits)
	}
	if line[1] != line[2] || line[1] == "256" {
		t.Fatalf("soft open-files limit %s, hard %s: want the soft limit raised to the hard one", line[1], line[2])
	}
	if log := v.Stderr.String(); !strings.Contains(log, "file-descriptor limit") {
		t.Errorf("the limit is not logged:\n%s", log)
	}
}

// On one CPU (a pinned process, a one-CPU container) serve runs with 2 Ps: its cgo calls
// (BLS, SQLite) would otherwise leave the core idle while one blocks (see procs.go).
func TestServeRaisesGOMAXPROCSOnOneCPU(t *testing.T) {
	v := startProc(t, procOptions{init: true, wrap: []string{"taskset", "-c", "0"}}, "--dev")
	log := v.Stderr.waitFor(t, "GOMAXPROCS raised", 10*time.Second)
	if !strings.Contains(log, "before=1") || !strings.Contains(log, "now=2") {
		t.Fatalf("GOMAXPROCS not raised from 1 to 2:\n%s", log)
	}
}

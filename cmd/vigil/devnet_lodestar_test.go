package main

// The Lodestar v1.5.1 devnet of the failover end-to-end test (devnet_e2e_test.go): installing the
// CLI once into a cache directory, and running its beacon node and validator clients as
// subprocesses. See /work/shared/reference/lodestar-devnet.md for the commands and the quirks of
// that version (only 1.5.1 installs from the reachable registry; Capella is its last fork).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/internal/testenv"
)

// devnetTestdata is the shared testdata directory: VIGIL_TESTDATA_DIR (CI sets it), else
// ../../../shared/testdata relative to this package. Set but wrong fails.
func devnetTestdata(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VIGIL_TESTDATA_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "lodestar-devnet-install", "install.sh")); err != nil {
			t.Fatalf("VIGIL_TESTDATA_DIR=%s has no lodestar-devnet-install/install.sh: %v", d, err)
		}
		return d
	}
	d, _ := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata"))
	if _, err := os.Stat(filepath.Join(d, "lodestar-devnet-install", "install.sh")); err != nil {
		testenv.Missing(t, "the Lodestar devnet testdata", "set VIGIL_TESTDATA_DIR to the shared testdata directory (lodestar-devnet-install/)")
	}
	return d
}

// lodestarCLI returns node and the Lodestar v1.5.1 CLI script, installing it with install.sh into
// $XDG_CACHE_HOME/vigil/lodestar-1.5.1-<hash of package.json + yarn.lock.tmpl> on first use
// (60-90 s; reused by later runs). The install goes to a temporary directory renamed into place,
// so an interrupted install is never mistaken for a complete one.
func lodestarCLI(t *testing.T) (node, cli string) {
	t.Helper()
	node = testenv.LookPath(t, "node", "install Node.js 20 (the Lodestar devnet runs on it)")
	testenv.LookPath(t, "npm", "install npm (install.sh fetches yarn and Lodestar with it)")
	for _, tool := range []string{"python3", "make", "g++"} {
		testenv.LookPath(t, tool, "install python3, make and g++ (three Lodestar native modules compile)")
	}
	src := filepath.Join(devnetTestdata(t), "lodestar-devnet-install")
	h := sha256.New()
	for _, f := range []string{"package.json", "yarn.lock.tmpl"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatalf("lodestar install files: %v", err)
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "vigil", "lodestar-1.5.1-"+hex.EncodeToString(h.Sum(nil))[:12])
	cli = filepath.Join(dir, "node_modules", "@chainsafe", "lodestar", "lib", "index.js")
	if _, err := os.Stat(cli); err == nil {
		return node, cli
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	_ = os.RemoveAll(tmp)
	started := time.Now()
	cmd := exec.Command(filepath.Join(src, "install.sh"), tmp)
	cmd.Env = testEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(tmp)
		t.Fatalf("install Lodestar 1.5.1 (%s %s): %v\n%s", cmd.Path, tmp, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(cli); serr != nil { // not another run winning the race
			t.Fatalf("move the Lodestar install into place: %v", err)
		}
		_ = os.RemoveAll(tmp)
	}
	t.Logf("installed Lodestar 1.5.1 into %s in %.0fs", dir, time.Since(started).Seconds())
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("Lodestar installed but %s is missing: %v", cli, err)
	}
	return node, cli
}

// lodestarProc is one running `lodestar` subprocess (in its own process group, so that kill -9
// takes all of it).
type lodestarProc struct {
	name   string
	args   []string
	dir    string
	out    *outBuf
	cmd    *exec.Cmd
	exited chan struct{}
}

// startLodestar runs `node cli args...` in dir; it is killed when the test ends and the tail of
// its output is logged if the test failed.
func startLodestar(t *testing.T, name, node, cli, dir string, args ...string) *lodestarProc {
	t.Helper()
	p := &lodestarProc{name: name, args: args, dir: dir, out: newOutBuf(), exited: make(chan struct{})}
	p.cmd = exec.Command(node, append([]string{cli}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(testEnv(), "NO_COLOR=1", "FORCE_COLOR=0")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			s := p.out.String()
			if len(s) > 12000 {
				s = "...\n" + s[len(s)-12000:]
			}
			t.Logf("--- %s (lodestar %s) output tail ---\n%s", name, strings.Join(args, " "), s)
		}
	})
	return p
}

// kill sends SIGKILL to the process group and waits for the process to be gone.
func (p *lodestarProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// running fails the test if the process has exited.
func (p *lodestarProc) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		s := p.out.String()
		if len(s) > 8000 {
			s = s[len(s)-8000:]
		}
		t.Fatalf("%s exited (%v):\n%s", p.name, p.cmd.ProcessState, s)
	default:
	}
}

// ---------------------------------------------------------------------------------------------
// The beacon node's REST API: another process's state, read by bounded polls.

var devnetHTTP = &http.Client{Timeout: 5 * time.Second}

func beaconGet(url string, out any) error {
	resp, err := devnetHTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, truncateBody(b))
	}
	return json.Unmarshal(b, out)
}

// finalizedEpoch is the beacon node's head-state finalized checkpoint epoch.
func finalizedEpoch(bn string) (uint64, error) {
	var r struct {
		Data struct {
			Finalized struct {
				Epoch string `json:"epoch"`
			} `json:"finalized"`
		} `json:"data"`
	}
	if err := beaconGet(bn+"/eth/v1/beacon/states/head/finality_checkpoints", &r); err != nil {
		return 0, err
	}
	return strconv.ParseUint(r.Data.Finalized.Epoch, 10, 64)
}

// headSlot is the slot of the beacon node's head block.
func headSlot(bn string) (uint64, error) {
	var r struct {
		Data struct {
			Header struct {
				Message struct {
					Slot string `json:"slot"`
				} `json:"message"`
			} `json:"header"`
		} `json:"data"`
	}
	if err := beaconGet(bn+"/eth/v1/beacon/headers/head", &r); err != nil {
		return 0, err
	}
	return strconv.ParseUint(r.Data.Header.Message.Slot, 10, 64)
}

// waitFinalized polls the beacon node until its finalized epoch reaches atLeast. Finality is
// another process's state that it announces to nobody we can listen to, so a bounded ticker
// poll is the only way to wait for it; procs are checked to be still running on every tick.
func waitFinalized(t *testing.T, bn string, atLeast uint64, within time.Duration, procs ...*lodestarProc) uint64 {
	t.Helper()
	var got uint64
	var lastErr error
	ok := pollUntil(within, time.Second, func() bool {
		for _, p := range procs {
			p.running(t)
		}
		got, lastErr = finalizedEpoch(bn)
		return lastErr == nil && got >= atLeast
	})
	if !ok {
		t.Fatalf("the chain did not finalize epoch %d within %v (finalized %d, last error %v)", atLeast, within, got, lastErr)
	}
	return got
}

// poolCount is the number of entries of a beacon node operation pool (attester_slashings,
// proposer_slashings).
func poolCount(t *testing.T, bn, pool string) int {
	t.Helper()
	var r struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := beaconGet(bn+"/eth/v1/beacon/pool/"+pool, &r); err != nil {
		t.Fatalf("beacon pool %s: %v", pool, err)
	}
	return len(r.Data)
}

// ---------------------------------------------------------------------------------------------
// Vigil's metrics, summed over the series of a name whose labels contain every one of labels.

func metricSum(t *testing.T, v *vigil, name string, labels ...string) float64 {
	t.Helper()
	r := do(t, http.MethodGet, v.MetricsURL+"/metrics", "", nil)
	sum := 0.0
	for _, line := range strings.Split(string(r.body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		f, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += f
	}
	return sum
}

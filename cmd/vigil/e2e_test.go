package main

// End-to-end acceptance test of the signing core: the real vigil binary, started as a subprocess,
// driven over HTTP. Expected signatures come from outside the product: the Lodestar v1.5.1 golden
// samples, and signing roots computed here from go-eth2-client's generated (static, mainnet-sized)
// HashTreeRoot methods plus the spec's compute_domain / compute_signing_root, signed with the
// interop secret keys. Nothing here calls the signer package.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/attestantio/go-eth2-client/api/v1"
	"github.com/attestantio/go-eth2-client/spec/altair"
	"github.com/attestantio/go-eth2-client/spec/bellatrix"
	"github.com/attestantio/go-eth2-client/spec/electra"
	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// ---------------------------------------------------------------------------------------------
// The binary and its processes.

// vigilBin is the binary built once by TestMain.
var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	vigilBin = filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-o", vigilBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build -o %s .: %v\n%s", vigilBin, err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.Cleanup() // the throwaway Postgres cluster of the tests that use one
	os.RemoveAll(dir)
	os.Exit(code)
}

// outBuf collects a subprocess's output and wakes waiters on every write.
type outBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newOutBuf() *outBuf { return &outBuf{changed: make(chan struct{})} }

func (o *outBuf) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns the output so far and a channel closed at the next write.
func (o *outBuf) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String(), o.changed
}

func (o *outBuf) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor blocks until the output contains substr (or fails the test after timeout).
func (o *outBuf) waitFor(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		s, ch := o.b.String(), o.changed
		o.mu.Unlock()
		if strings.Contains(s, substr) {
			return s
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("output never contained %q; got:\n%s", substr, s)
		}
	}
}

// vigil is one running `vigil serve`.
type vigil struct {
	URL        string // http://127.0.0.1:N
	MetricsURL string
	DataDir    string
	Stdout     *outBuf
	Stderr     *outBuf
	cmd        *exec.Cmd
	exited     chan struct{}
}

// testEnv is the environment without VIGIL_* settings of whoever runs the tests.
func testEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			env = append(env, kv)
		}
	}
	return env
}

// start runs `vigil serve --http-listen-port 0 --metrics-listen-port 0 args...` (with a fresh
// --data-dir unless args has one), waits until vigil.ports appears and /upcheck answers, and
// kills the process when the test ends. Its stderr is logged if the test failed.
func start(t *testing.T, args ...string) *vigil {
	t.Helper()
	dataDir := ""
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
		}
	}
	if dataDir == "" {
		dataDir = t.TempDir()
		args = append(args, "--data-dir", dataDir)
	}
	portsFile := filepath.Join(dataDir, "vigil.ports")
	_ = os.Remove(portsFile)

	v := &vigil{DataDir: dataDir, Stdout: newOutBuf(), Stderr: newOutBuf(), exited: make(chan struct{})}
	// --init-slashing-protection: create the database on a first start (a no-op on a restart).
	v.cmd = exec.Command(vigilBin, append([]string{"serve", "--http-listen-port", "0", "--metrics-listen-port", "0", "--init-slashing-protection"}, args...)...)
	v.cmd.Stdout, v.cmd.Stderr, v.cmd.Env = v.Stdout, v.Stderr, testEnv()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start vigil: %v", err)
	}
	go func() {
		_ = v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			t.Logf("vigil serve %s\n--- stdout ---\n%s--- stderr ---\n%s", strings.Join(args, " "), v.Stdout, v.Stderr)
		}
	})

	// The banner on stdout comes after vigil.ports is written and the listeners serve: wait for
	// it (an event: the process writes), or for the process to exit.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		s, changed := v.Stdout.snapshot()
		if strings.Contains(s, "serving the signing API at") {
			break
		}
		select {
		case <-changed:
		case <-v.exited:
			t.Fatalf("vigil exited before listening (%v); stderr:\n%s", v.cmd.ProcessState, v.Stderr)
		case <-deadline.C:
			t.Fatalf("vigil did not start serving within 30s; stderr:\n%s", v.Stderr)
		}
	}
	ports, err := os.ReadFile(portsFile)
	if err != nil {
		t.Fatalf("vigil serves but wrote no %s: %v", portsFile, err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(ports)), "\n") {
		k, val, _ := strings.Cut(line, "=")
		kv[k] = val
	}
	if kv["http-port"] == "" || kv["http-port"] == "0" {
		t.Fatalf("bad vigil.ports %q", ports)
	}
	v.URL = "http://127.0.0.1:" + kv["http-port"]
	v.MetricsURL = "http://127.0.0.1:" + kv["metrics-port"]
	if r := do(t, http.MethodGet, v.URL+"/upcheck", "", nil); r.status != http.StatusOK {
		t.Fatalf("/upcheck: %s; stderr:\n%s", r, v.Stderr)
	}
	return v
}

func (v *vigil) kill() {
	select {
	case <-v.exited:
	default:
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
}

// stop shuts the server down gracefully (SIGINT) and expects exit status 0.
func (v *vigil) stop(t *testing.T) {
	t.Helper()
	if err := v.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("interrupt vigil: %v", err)
	}
	select {
	case <-v.exited:
	case <-time.After(15 * time.Second):
		v.kill()
		t.Fatalf("vigil did not stop within 15s of SIGINT")
	}
	if code := v.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("vigil exited with status %d after SIGINT; stderr:\n%s", code, v.Stderr)
	}
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers.

var client = &http.Client{Timeout: 30 * time.Second}

type reply struct {
	status int
	ctype  string
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s %s", r.status, r.ctype, truncateBody(r.body))
}

func truncateBody(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "..."
	}
	return string(b)
}

// do sends one request; accept "" sends no Accept header; body may be nil, []byte, string or a
// value to marshal as JSON.
func do(t *testing.T, method, url, accept string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
}

// dayAgo is a genesis time for minimal-network servers: a day of 48 s epochs before now.
func dayAgo() string { return strconv.FormatInt(time.Now().Add(-24*time.Hour).Unix(), 10) }

func signPath(pub string) string { return "/api/v1/eth2/sign/" + pub }

// signJSON posts a sign request with Accept: application/json and returns the reply.
func (v *vigil) signJSON(t *testing.T, pub string, body any) reply {
	t.Helper()
	return do(t, http.MethodPost, v.URL+signPath(pub), "application/json", body)
}

const (
	ctJSON = "application/json; charset=utf-8"
	ctText = "text/plain; charset=utf-8"
)

// signature extracts the signature of a 200 JSON reply.
func signature(t *testing.T, r reply) keystore.Signature {
	t.Helper()
	if r.status != http.StatusOK || r.ctype != ctJSON {
		t.Fatalf("want 200 %s, got %s", ctJSON, r)
	}
	var v struct {
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("reply is not {\"signature\":...}: %v: %s", err, r.body)
	}
	return parseSig(t, v.Signature)
}

func parseSig(t *testing.T, s string) keystore.Signature {
	t.Helper()
	if !strings.HasPrefix(s, "0x") || strings.ToLower(s) != s {
		t.Fatalf("signature %q is not lowercase 0x hex", s)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil || len(b) != 96 {
		t.Fatalf("signature %q is not 96 bytes of hex", s)
	}
	var sig keystore.Signature
	copy(sig[:], b)
	return sig
}

// wantError checks an error reply: status, a JSON body with a non-empty message containing
// substr, and the JSON content type.
func wantError(t *testing.T, r reply, status int, substr string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("want status %d, got %s", status, r)
	}
	if r.ctype != ctJSON {
		t.Errorf("error reply Content-Type %q, want %q", r.ctype, ctJSON)
	}
	var e struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, r.body)
	}
	if e.Message == "" {
		t.Fatalf("error body has no message: %s", r.body)
	}
	if !strings.Contains(e.Message, substr) {
		t.Errorf("error message %q does not mention %q", e.Message, substr)
	}
	return e.Message
}

// ---------------------------------------------------------------------------------------------
// Keys.

func interopKey(t *testing.T, i uint64) *keystore.SecretKey {
	t.Helper()
	sk, err := keystore.InteropSecretKey(i)
	if err != nil {
		t.Fatalf("interop key %d: %v", i, err)
	}
	return sk
}

func interopPub(t *testing.T, i uint64) string { return interopKey(t, i).PublicKey().String() }

// writeKeystores writes interop keystores for indices and returns the serve flags that load them.
func writeKeystores(t *testing.T, indices ...uint64) []string {
	t.Helper()
	dir := t.TempDir()
	keys, pw := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	if _, err := keystore.WriteInteropKeystores(keys, pw, indices, keystore.DevKDF()); err != nil {
		t.Fatalf("write keystores: %v", err)
	}
	return []string{"--keystores-path", keys, "--keystores-password-file", pw}
}

// wantSignature checks that sig is exactly interop key i's signature of root (BLS is
// deterministic) and that it verifies.
func wantSignature(t *testing.T, i uint64, root phase0.Root, sig keystore.Signature) {
	t.Helper()
	sk := interopKey(t, i)
	if want := sk.SignRoot(root); sig != want {
		t.Errorf("signature for signing root %#x:\n got %s\nwant %s", root[:], sig, want)
	}
	if !keystore.Verify(sk.PublicKey(), root[:], sig) {
		t.Errorf("signature does not verify against signing root %#x", root[:])
	}
}

// ---------------------------------------------------------------------------------------------
// The spec, written here: domains, signing roots, the mainnet fork schedule.

var (
	domainBeaconProposer              = phase0.DomainType{0x00, 0, 0, 0}
	domainBeaconAttester              = phase0.DomainType{0x01, 0, 0, 0}
	domainRandao                      = phase0.DomainType{0x02, 0, 0, 0}
	domainDeposit                     = phase0.DomainType{0x03, 0, 0, 0}
	domainVoluntaryExit               = phase0.DomainType{0x04, 0, 0, 0}
	domainSelectionProof              = phase0.DomainType{0x05, 0, 0, 0}
	domainAggregateAndProof           = phase0.DomainType{0x06, 0, 0, 0}
	domainSyncCommittee               = phase0.DomainType{0x07, 0, 0, 0}
	domainSyncCommitteeSelectionProof = phase0.DomainType{0x08, 0, 0, 0}
	domainContributionAndProof        = phase0.DomainType{0x09, 0, 0, 0}
	domainApplicationBuilder          = phase0.DomainType{0x00, 0, 0, 0x01}
)

const (
	mainnetGenesisTime    = 1606824023
	mainnetSecondsPerSlot = 12
	mainnetSlotsPerEpoch  = 32
)

var mainnetGVR = mustRoot("0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")

type forkDef struct {
	name    string
	version phase0.Version
	epoch   phase0.Epoch
}

// mainnetForks is mainnet's schedule (consensus-specs configs/mainnet.yaml).
var mainnetForks = []forkDef{
	{"PHASE0", phase0.Version{0x00, 0, 0, 0}, 0},
	{"ALTAIR", phase0.Version{0x01, 0, 0, 0}, 74240},
	{"BELLATRIX", phase0.Version{0x02, 0, 0, 0}, 144896},
	{"CAPELLA", phase0.Version{0x03, 0, 0, 0}, 194048},
	{"DENEB", phase0.Version{0x04, 0, 0, 0}, 269568},
	{"ELECTRA", phase0.Version{0x05, 0, 0, 0}, 364032},
	{"FULU", phase0.Version{0x06, 0, 0, 0}, 411392},
}

func mustRoot(s string) phase0.Root {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil || len(b) != 32 {
		panic("bad root " + s)
	}
	return phase0.Root(b)
}

// mainnetFork is the Fork of fork_info when the named fork is current.
func mainnetFork(name string) phase0.Fork {
	for i, f := range mainnetForks {
		if f.name == name {
			prev := mainnetForks[max(i-1, 0)].version
			return phase0.Fork{PreviousVersion: prev, CurrentVersion: f.version, Epoch: f.epoch}
		}
	}
	panic("unknown fork " + name)
}

// versionAt applies fork_info: the previous version before fork.epoch, the current one from it.
func versionAt(f phase0.Fork, epoch phase0.Epoch) phase0.Version {
	if epoch < f.Epoch {
		return f.PreviousVersion
	}
	return f.CurrentVersion
}

type hashable interface {
	HashTreeRoot() ([32]byte, error)
}

func htr(t *testing.T, obj hashable) phase0.Root {
	t.Helper()
	r, err := obj.HashTreeRoot()
	if err != nil {
		t.Fatalf("hash tree root of %T: %v", obj, err)
	}
	return r
}

// computeDomain is the spec's compute_domain.
func computeDomain(t *testing.T, dt phase0.DomainType, version phase0.Version, gvr phase0.Root) phase0.Domain {
	fdr := htr(t, &phase0.ForkData{CurrentVersion: version, GenesisValidatorsRoot: gvr})
	var d phase0.Domain
	copy(d[:4], dt[:])
	copy(d[4:], fdr[:28])
	return d
}

// computeSigningRoot is the spec's compute_signing_root for an object root.
func computeSigningRoot(t *testing.T, objectRoot phase0.Root, d phase0.Domain) phase0.Root {
	return htr(t, &phase0.SigningData{ObjectRoot: objectRoot, Domain: d})
}

// forkedRoot is the signing root of an object signed with fork_info f at epoch.
func forkedRoot(t *testing.T, dt phase0.DomainType, f phase0.Fork, epoch phase0.Epoch, objectRoot phase0.Root) phase0.Root {
	return computeSigningRoot(t, objectRoot, computeDomain(t, dt, versionAt(f, epoch), mainnetGVR))
}

// uint64Root is hash_tree_root(uint64).
func uint64Root(v uint64) phase0.Root {
	var r phase0.Root
	binary.LittleEndian.PutUint64(r[:8], v)
	return r
}

func epochOf(slot phase0.Slot) phase0.Epoch { return phase0.Epoch(slot / mainnetSlotsPerEpoch) }

// nowSlot is mainnet's wall-clock slot.
func nowSlot() phase0.Slot {
	return phase0.Slot((time.Now().Unix() - mainnetGenesisTime) / mainnetSecondsPerSlot)
}

// forkSlot is slot off of the fork's first epoch, but never past the wall clock (the far-future
// guard); versionAt keeps the expected root right either way.
func forkSlot(name string, off uint64) phase0.Slot {
	f := mainnetFork(name)
	return min(phase0.Slot(uint64(f.Epoch)*mainnetSlotsPerEpoch+off), nowSlot())
}

// ---------------------------------------------------------------------------------------------
// JSON and payload builders.

func hx(b []byte) string { return "0x" + hex.EncodeToString(b) }

func dec[T ~uint64](v T) string { return strconv.FormatUint(uint64(v), 10) }

func forkInfoJSON(f phase0.Fork) map[string]any {
	return map[string]any{
		"fork": map[string]any{
			"previous_version": hx(f.PreviousVersion[:]),
			"current_version":  hx(f.CurrentVersion[:]),
			"epoch":            dec(f.Epoch),
		},
		"genesis_validators_root": hx(mainnetGVR[:]),
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func root32(seed byte) phase0.Root        { return phase0.Root(pattern(32, seed)) }
func sig96(seed byte) phase0.BLSSignature { return phase0.BLSSignature(pattern(96, seed)) }

func attData(slot phase0.Slot, source, target phase0.Epoch, seed byte) *phase0.AttestationData {
	return &phase0.AttestationData{
		Slot: slot, Index: 3, BeaconBlockRoot: root32(seed),
		Source: &phase0.Checkpoint{Epoch: source, Root: root32(seed + 1)},
		Target: &phase0.Checkpoint{Epoch: target, Root: root32(seed + 2)},
	}
}

func header(slot phase0.Slot, seed byte) *phase0.BeaconBlockHeader {
	return &phase0.BeaconBlockHeader{
		Slot: slot, ProposerIndex: 17, ParentRoot: root32(seed), StateRoot: root32(seed + 1), BodyRoot: root32(seed + 2),
	}
}

// phase0Body is a body with one element in every list, so every list hashes non-trivially.
func phase0Body(seed byte) *phase0.BeaconBlockBody {
	proof := make([][]byte, 33)
	for i := range proof {
		proof[i] = pattern(32, seed+byte(i))
	}
	var graffiti [32]byte
	copy(graffiti[:], "vigil e2e")
	return &phase0.BeaconBlockBody{
		RANDAOReveal: sig96(seed),
		ETH1Data:     &phase0.ETH1Data{DepositRoot: root32(seed + 1), DepositCount: 4242, BlockHash: pattern(32, seed+2)},
		Graffiti:     graffiti,
		ProposerSlashings: []*phase0.ProposerSlashing{{
			SignedHeader1: &phase0.SignedBeaconBlockHeader{Message: header(9, seed), Signature: sig96(seed + 3)},
			SignedHeader2: &phase0.SignedBeaconBlockHeader{Message: header(9, seed+1), Signature: sig96(seed + 4)},
		}},
		AttesterSlashings: []*phase0.AttesterSlashing{{
			Attestation1: &phase0.IndexedAttestation{AttestingIndices: []uint64{1, 5, 9}, Data: attData(40, 0, 1, seed), Signature: sig96(seed + 5)},
			Attestation2: &phase0.IndexedAttestation{AttestingIndices: []uint64{5}, Data: attData(40, 0, 1, seed+9), Signature: sig96(seed + 6)},
		}},
		Attestations: []*phase0.Attestation{{AggregationBits: []byte{0x0d, 0x01}, Data: attData(41, 0, 1, seed+3), Signature: sig96(seed + 7)}},
		Deposits: []*phase0.Deposit{{Proof: proof, Data: &phase0.DepositData{
			PublicKey: phase0.BLSPubKey(pattern(48, seed)), WithdrawalCredentials: pattern(32, seed+4), Amount: 32_000_000_000, Signature: sig96(seed + 8),
		}}},
		VoluntaryExits: []*phase0.SignedVoluntaryExit{{Message: &phase0.VoluntaryExit{Epoch: 7, ValidatorIndex: 99}, Signature: sig96(seed + 9)}},
	}
}

func phase0Block(slot phase0.Slot, seed byte) *phase0.BeaconBlock {
	return &phase0.BeaconBlock{Slot: slot, ProposerIndex: 21, ParentRoot: root32(seed), StateRoot: root32(seed + 1), Body: phase0Body(seed)}
}

func altairBlock(slot phase0.Slot, seed byte) *altair.BeaconBlock {
	b := phase0Body(seed)
	return &altair.BeaconBlock{Slot: slot, ProposerIndex: 22, ParentRoot: root32(seed), StateRoot: root32(seed + 1), Body: &altair.BeaconBlockBody{
		RANDAOReveal: b.RANDAOReveal, ETH1Data: b.ETH1Data, Graffiti: b.Graffiti,
		ProposerSlashings: b.ProposerSlashings, AttesterSlashings: b.AttesterSlashings, Attestations: b.Attestations,
		Deposits: b.Deposits, VoluntaryExits: b.VoluntaryExits,
		SyncAggregate: &altair.SyncAggregate{SyncCommitteeBits: pattern(64, seed), SyncCommitteeSignature: sig96(seed + 10)},
	}}
}

func phase0Aggregate(slot phase0.Slot, seed byte) *phase0.AggregateAndProof {
	return &phase0.AggregateAndProof{
		AggregatorIndex: 12,
		Aggregate:       &phase0.Attestation{AggregationBits: []byte{0xff, 0x03}, Data: attData(slot, epochOf(slot)-1, epochOf(slot), seed), Signature: sig96(seed)},
		SelectionProof:  sig96(seed + 1),
	}
}

func electraAggregate(slot phase0.Slot, seed byte) *electra.AggregateAndProof {
	data := attData(slot, epochOf(slot)-1, epochOf(slot), seed)
	data.Index = 0 // EIP-7549: the committees are in committee_bits
	return &electra.AggregateAndProof{
		AggregatorIndex: 13,
		Aggregate: &electra.Attestation{
			AggregationBits: []byte{0xb5, 0x6e, 0x01}, Data: data, Signature: sig96(seed),
			CommitteeBits: []byte{0x05, 0, 0, 0x80, 0, 0, 0, 0},
		},
		SelectionProof: sig96(seed + 1),
	}
}

// ---------------------------------------------------------------------------------------------
// 2a. The Lodestar golden samples.

const lodestarDir = "/work/shared/testdata/lodestar-v1.5.1-requests"

type lodestarSample struct {
	name    string
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
	} `json:"request"`
	Index    *uint64         `json:"interop_validator_index"`
	Body     json.RawMessage `json:"body"`
	Response struct {
		Status int `json:"status"`
		Body   struct {
			Signature string `json:"signature"`
		} `json:"body"`
	} `json:"response"`
}

func TestE2ELodestarSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(lodestarDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Lodestar samples in %s (%v)", lodestarDir, err)
	}
	var samples []lodestarSample
	var indices []uint64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s lodestarSample
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if s.Index == nil || len(s.Body) == 0 {
			continue // keymanager-remotekeys.json: not a sign request
		}
		s.name = strings.TrimSuffix(filepath.Base(f), ".json")
		samples = append(samples, s)
		if !slices.Contains(indices, *s.Index) {
			indices = append(indices, *s.Index)
		}
	}
	if len(samples) != 25 {
		t.Fatalf("found %d sign samples, want 25", len(samples))
	}

	// One server for all samples: every key signs at most one block and one attestation, so
	// nothing conflicts; the second pass re-signs everything (identical repeats are allowed).
	// The samples come from a devnet whose genesis lies in the past: a genesis time a day ago
	// keeps the far-future guard on and every sample well inside it.
	v := start(t, append([]string{"--network", "minimal", "--genesis-time", dayAgo()}, writeKeystores(t, indices...)...)...)
	for pass, accept := range []string{"sample", ""} {
		for _, s := range samples {
			t.Run(fmt.Sprintf("%s/pass%d", s.name, pass+1), func(t *testing.T) {
				pub := strings.TrimPrefix(s.Request.Path, signPath(""))
				if pub != interopPub(t, *s.Index) {
					t.Fatalf("sample path key %s is not interop key %d", pub, *s.Index)
				}
				if s.Request.Method != http.MethodPost || s.Response.Status != http.StatusOK {
					t.Fatalf("unexpected sample shape %s / %d", s.Request.Method, s.Response.Status)
				}
				hdr := accept
				if accept == "sample" {
					hdr = s.Request.Headers["accept"]
				}
				r := do(t, http.MethodPost, v.URL+s.Request.Path, hdr, []byte(s.Body))
				var got keystore.Signature
				if hdr == "" {
					if r.status != http.StatusOK || r.ctype != ctText {
						t.Fatalf("want 200 %s, got %s", ctText, r)
					}
					got = parseSig(t, string(r.body))
				} else {
					got = signature(t, r)
				}
				if want := s.Response.Body.Signature; got.String() != want {
					t.Fatalf("signature\n got %s\nwant %s", got, want)
				}
				// The sample's signingRoot was checked by the server against its own computation;
				// check the signature really signs it.
				var b struct {
					SigningRoot string `json:"signingRoot"`
				}
				_ = json.Unmarshal(s.Body, &b)
				wantSignature(t, *s.Index, mustRoot(b.SigningRoot), got)
			})
		}
	}
}

// ---------------------------------------------------------------------------------------------
// 2b–2d. Mainnet: every type and fork shape, negotiation, status codes, health, keys, metrics.

type signCase struct {
	name string
	key  uint64
	body map[string]any
	root phase0.Root // the expected signing root, computed here
}

func mainnetCases(t *testing.T) []signCase {
	var cs []signCase
	add := func(name string, key uint64, body map[string]any, root phase0.Root) {
		cs = append(cs, signCase{name, key, body, root})
	}

	// Blocks. Each key's slots increase, so nothing conflicts in the slashing database.
	{
		f := mainnetFork("PHASE0")
		blk := phase0Block(1000, 1)
		add("BLOCK/phase0", 0, map[string]any{"type": "BLOCK", "fork_info": forkInfoJSON(f), "block": blk},
			forkedRoot(t, domainBeaconProposer, f, epochOf(blk.Slot), htr(t, blk)))

		blk = phase0Block(2000, 2)
		add("BLOCK_V2/PHASE0", 1, map[string]any{"type": "BLOCK_V2", "fork_info": forkInfoJSON(f),
			"beacon_block": map[string]any{"version": "PHASE0", "block": blk}},
			forkedRoot(t, domainBeaconProposer, f, epochOf(blk.Slot), htr(t, blk)))
	}
	{
		f := mainnetFork("ALTAIR")
		blk := altairBlock(forkSlot("ALTAIR", 5), 3)
		add("BLOCK_V2/ALTAIR (mainnet sync aggregate)", 8, map[string]any{"type": "BLOCK_V2", "fork_info": forkInfoJSON(f),
			"beacon_block": map[string]any{"version": "ALTAIR", "block": blk}},
			forkedRoot(t, domainBeaconProposer, f, epochOf(blk.Slot), htr(t, blk)))
	}
	for i, name := range []string{"BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU"} {
		f := mainnetFork(name)
		h := header(forkSlot(name, 3), byte(10+i))
		add("BLOCK_V2/"+name+" block_header", 2, map[string]any{"type": "BLOCK_V2", "fork_info": forkInfoJSON(f),
			"beacon_block": map[string]any{"version": name, "block_header": h}},
			forkedRoot(t, domainBeaconProposer, f, epochOf(h.Slot), htr(t, h)))
	}

	// Attestations (one key, increasing non-surrounding votes).
	{
		f := mainnetFork("PHASE0")
		a := attData(320, 9, 10, 20)
		add("ATTESTATION/phase0", 3, map[string]any{"type": "ATTESTATION", "fork_info": forkInfoJSON(f), "attestation": a},
			forkedRoot(t, domainBeaconAttester, f, a.Target.Epoch, htr(t, a)))
		f = mainnetFork("FULU")
		slot := nowSlot() - 2*mainnetSlotsPerEpoch
		a = attData(slot, epochOf(slot)-1, epochOf(slot), 21)
		add("ATTESTATION/FULU", 3, map[string]any{"type": "ATTESTATION", "fork_info": forkInfoJSON(f), "attestation": a},
			forkedRoot(t, domainBeaconAttester, f, a.Target.Epoch, htr(t, a)))
	}

	// Selection proofs and RANDAO: hash_tree_root(uint64).
	{
		f := mainnetFork("ELECTRA")
		slot := forkSlot("ELECTRA", 77)
		add("AGGREGATION_SLOT/ELECTRA", 4, map[string]any{"type": "AGGREGATION_SLOT", "fork_info": forkInfoJSON(f),
			"aggregation_slot": map[string]any{"slot": dec(slot)}},
			forkedRoot(t, domainSelectionProof, f, epochOf(slot), uint64Root(uint64(slot))))
		e := epochOf(slot)
		add("RANDAO_REVEAL/ELECTRA", 4, map[string]any{"type": "RANDAO_REVEAL", "fork_info": forkInfoJSON(f),
			"randao_reveal": map[string]any{"epoch": dec(e)}},
			forkedRoot(t, domainRandao, f, e, uint64Root(uint64(e))))
		// An epoch before fork_info.epoch signs with the previous version (DENEB here).
		e = f.Epoch - 1
		add("RANDAO_REVEAL/previous_version", 4, map[string]any{"type": "randao_reveal", "fork_info": forkInfoJSON(f),
			"randao_reveal": map[string]any{"epoch": dec(e)}},
			computeSigningRoot(t, uint64Root(uint64(e)), computeDomain(t, domainRandao, mainnetFork("DENEB").CurrentVersion, mainnetGVR)))
	}

	// Aggregates, every shape.
	{
		f := mainnetFork("ALTAIR")
		agg := phase0Aggregate(forkSlot("ALTAIR", 40), 30)
		root := forkedRoot(t, domainAggregateAndProof, f, epochOf(agg.Aggregate.Data.Slot), htr(t, agg))
		add("AGGREGATE_AND_PROOF/phase0 unwrapped", 5, map[string]any{"type": "AGGREGATE_AND_PROOF", "fork_info": forkInfoJSON(f),
			"aggregate_and_proof": agg}, root)
		add("AGGREGATE_AND_PROOF_V2/phase0 unwrapped", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": forkInfoJSON(f),
			"aggregate_and_proof": agg}, root)

		f = mainnetFork("DENEB")
		agg = phase0Aggregate(forkSlot("DENEB", 40), 31)
		add("AGGREGATE_AND_PROOF_V2/DENEB {version,data}", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": forkInfoJSON(f),
			"aggregate_and_proof": map[string]any{"version": "DENEB", "data": agg}},
			forkedRoot(t, domainAggregateAndProof, f, epochOf(agg.Aggregate.Data.Slot), htr(t, agg)))

		f = mainnetFork("ELECTRA")
		eagg := electraAggregate(forkSlot("ELECTRA", 40), 32)
		root = forkedRoot(t, domainAggregateAndProof, f, epochOf(eagg.Aggregate.Data.Slot), htr(t, eagg))
		add("AGGREGATE_AND_PROOF/ELECTRA unwrapped committee_bits", 5, map[string]any{"type": "AGGREGATE_AND_PROOF", "fork_info": forkInfoJSON(f),
			"aggregate_and_proof": eagg}, root)
		add("AGGREGATE_AND_PROOF_V2/ELECTRA {version,data}", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": forkInfoJSON(f),
			"aggregate_and_proof": map[string]any{"version": "ELECTRA", "data": eagg}}, root)

		f = mainnetFork("FULU")
		eagg = electraAggregate(forkSlot("FULU", 40), 33)
		add("AGGREGATE_AND_PROOF_V2/FULU {version,data}", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": forkInfoJSON(f),
			"aggregate_and_proof": map[string]any{"version": "FULU", "data": eagg}},
			forkedRoot(t, domainAggregateAndProof, f, epochOf(eagg.Aggregate.Data.Slot), htr(t, eagg)))
	}

	// Voluntary exits: the caller's fork_info decides (EIP-7044 pins Capella for later exits).
	{
		f := mainnetFork("CAPELLA")
		for _, e := range []phase0.Epoch{f.Epoch + 52, mainnetFork("DENEB").Epoch + 1000} {
			ve := &phase0.VoluntaryExit{Epoch: e, ValidatorIndex: 123456}
			add(fmt.Sprintf("VOLUNTARY_EXIT/CAPELLA fork, epoch %d", e), 6, map[string]any{"type": "VOLUNTARY_EXIT", "fork_info": forkInfoJSON(f),
				"voluntary_exit": ve},
				forkedRoot(t, domainVoluntaryExit, f, e, htr(t, ve)))
		}
	}

	// Deposit: genesis fork version, zero genesis validators root, no fork_info.
	{
		pub := interopKey(t, 6).PublicKey()
		wc := pattern(32, 40)
		wc[0] = 0x01
		msg := &phase0.DepositMessage{PublicKey: phase0.BLSPubKey(pub), WithdrawalCredentials: wc, Amount: 32_000_000_000}
		add("DEPOSIT", 6, map[string]any{"type": "DEPOSIT", "deposit": map[string]any{
			"pubkey": hx(pub[:]), "withdrawal_credentials": hx(wc), "amount": dec(msg.Amount), "genesis_fork_version": "0x00000000",
		}}, computeSigningRoot(t, htr(t, msg), computeDomain(t, domainDeposit, phase0.Version{}, phase0.Root{})))
		// A deposit for another network (hoodi's genesis fork version) is signed for that
		// network, as Web3Signer does: deposits are not slashable.
		hoodi := phase0.Version{0x10, 0x00, 0x09, 0x10}
		add("DEPOSIT for another network", 6, map[string]any{"type": "DEPOSIT", "deposit": map[string]any{
			"pubkey": hx(pub[:]), "withdrawal_credentials": hx(wc), "amount": dec(msg.Amount), "genesis_fork_version": hx(hoodi[:]),
		}}, computeSigningRoot(t, htr(t, msg), computeDomain(t, domainDeposit, hoodi, phase0.Root{})))
	}

	// Sync committee types under later forks than the samples' (and mainnet sizes).
	for i, name := range []string{"DENEB", "FULU"} {
		f := mainnetFork(name)
		slot := forkSlot(name, 100+uint64(i))
		bbr := root32(byte(50 + i))
		add("SYNC_COMMITTEE_MESSAGE/"+name, 7, map[string]any{"type": "SYNC_COMMITTEE_MESSAGE", "fork_info": forkInfoJSON(f),
			"sync_committee_message": map[string]any{"beacon_block_root": hx(bbr[:]), "slot": dec(slot)}},
			forkedRoot(t, domainSyncCommittee, f, epochOf(slot), bbr))

		sel := &altair.SyncAggregatorSelectionData{Slot: slot, SubcommitteeIndex: 3}
		add("SYNC_COMMITTEE_SELECTION_PROOF/"+name, 7, map[string]any{"type": "SYNC_COMMITTEE_SELECTION_PROOF", "fork_info": forkInfoJSON(f),
			"sync_aggregator_selection_data": map[string]any{"slot": dec(slot), "subcommittee_index": "3"}},
			forkedRoot(t, domainSyncCommitteeSelectionProof, f, epochOf(slot), htr(t, sel)))

		cp := &altair.ContributionAndProof{AggregatorIndex: 77, SelectionProof: sig96(byte(60 + i)), Contribution: &altair.SyncCommitteeContribution{
			Slot: slot, BeaconBlockRoot: bbr, SubcommitteeIndex: 2, AggregationBits: pattern(16, byte(70+i)), Signature: sig96(byte(80 + i)),
		}}
		add("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF/"+name, 7, map[string]any{"type": "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "fork_info": forkInfoJSON(f),
			"contribution_and_proof": cp},
			forkedRoot(t, domainContributionAndProof, f, epochOf(slot), htr(t, cp)))
	}

	// Builder registration: mainnet's genesis fork version, zero root.
	{
		reg := &apiv1.ValidatorRegistration{
			FeeRecipient: bellatrix.ExecutionAddress(pattern(20, 90)), GasLimit: 36_000_000,
			Timestamp: time.Unix(1_760_000_000, 0), Pubkey: phase0.BLSPubKey(interopKey(t, 9).PublicKey()),
		}
		add("VALIDATOR_REGISTRATION", 9, map[string]any{"type": "VALIDATOR_REGISTRATION", "validator_registration": reg},
			computeSigningRoot(t, htr(t, reg), computeDomain(t, domainApplicationBuilder, phase0.Version{}, phase0.Root{})))
	}
	return cs
}

func TestE2EMainnet(t *testing.T) {
	const nKeys = 12
	indices := make([]uint64, nKeys)
	for i := range indices {
		indices[i] = uint64(i)
	}
	v := start(t, append([]string{"--network", "mainnet"}, writeKeystores(t, indices...)...)...)

	t.Run("shapes", func(t *testing.T) {
		for _, c := range mainnetCases(t) {
			t.Run(c.name, func(t *testing.T) {
				sig := signature(t, v.signJSON(t, interopPub(t, c.key), c.body))
				wantSignature(t, c.key, c.root, sig)
			})
		}
	})

	// A repeatable request (RANDAO is not slashing-protected) and its expected signature.
	f := mainnetFork("ELECTRA")
	epoch := f.Epoch + 3
	randao := map[string]any{"type": "RANDAO_REVEAL", "fork_info": forkInfoJSON(f), "randao_reveal": map[string]any{"epoch": dec(epoch)}}
	randaoRoot := forkedRoot(t, domainRandao, f, epoch, uint64Root(uint64(epoch)))
	pub4 := interopPub(t, 4)
	wantSig := interopKey(t, 4).SignRoot(randaoRoot)

	t.Run("content negotiation", func(t *testing.T) {
		for _, accept := range []string{"application/json", "*/*", "APPLICATION/JSON", "text/html, application/json;q=0.9", "text/plain;q=0.1, */*;q=0.2"} {
			r := do(t, http.MethodPost, v.URL+signPath(pub4), accept, randao)
			if r.ctype != ctJSON {
				t.Errorf("Accept %q: Content-Type %q, want %q", accept, r.ctype, ctJSON)
			}
			var body map[string]string
			if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 || body["signature"] != wantSig.String() {
				t.Errorf("Accept %q: body %s, want {\"signature\":%q}", accept, r.body, wantSig)
			}
		}
		for _, accept := range []string{"", "text/plain", "application/xml"} {
			r := do(t, http.MethodPost, v.URL+signPath(pub4), accept, randao)
			if r.status != http.StatusOK || r.ctype != ctText || string(r.body) != wantSig.String() {
				t.Errorf("Accept %q: got %s, want 200 %s %s", accept, r, ctText, wantSig)
			}
		}
		// The identifier is accepted without 0x and in upper case (normalised like Web3Signer).
		r := v.signJSON(t, strings.ToUpper(strings.TrimPrefix(pub4, "0x")), randao)
		if got := signature(t, r); got != wantSig {
			t.Errorf("upper-case identifier: got %s", got)
		}
		// Errors carry a Content-Type too, whatever was accepted.
		r = do(t, http.MethodPost, v.URL+signPath(pub4), "text/plain", `{"type":"RANDAO_REVEAL"}`)
		wantError(t, r, http.StatusBadRequest, "fork_info")
	})

	t.Run("status codes", func(t *testing.T) {
		// Unknown key.
		wantError(t, v.signJSON(t, interopPub(t, 99), randao), http.StatusNotFound, "")

		// Supplied signing root: the right one is accepted (both spellings), a different one is 400.
		for _, field := range []string{"signing_root", "signingRoot"} {
			body := map[string]any{field: hx(randaoRoot[:])}
			for k, val := range randao {
				body[k] = val
			}
			if got := signature(t, v.signJSON(t, pub4, body)); got != wantSig {
				t.Errorf("%s supplied: signature %s", field, got)
			}
			bad := randaoRoot
			bad[31] ^= 1
			body[field] = hx(bad[:])
			wantError(t, v.signJSON(t, pub4, body), http.StatusBadRequest, "signing root")
		}

		// Blocks: a proposal, an identical repeat (same signature), a double proposal (412).
		fd := mainnetFork("DENEB")
		slot := forkSlot("DENEB", 500)
		h := header(slot, 100)
		blockBody := func(h *phase0.BeaconBlockHeader) map[string]any {
			return map[string]any{"type": "BLOCK_V2", "fork_info": forkInfoJSON(fd), "beacon_block": map[string]any{"version": "DENEB", "block_header": h}}
		}
		pub10 := interopPub(t, 10)
		first := signature(t, v.signJSON(t, pub10, blockBody(h)))
		wantSignature(t, 10, forkedRoot(t, domainBeaconProposer, fd, epochOf(slot), htr(t, h)), first)
		if again := signature(t, v.signJSON(t, pub10, blockBody(h))); again != first {
			t.Errorf("identical re-sign gave another signature")
		}
		other := header(slot, 101)
		wantError(t, v.signJSON(t, pub10, blockBody(other)), http.StatusPreconditionFailed, "")
		// The far-future guard: more than 2 epochs past the wall clock.
		far := header(phase0.Slot((uint64(epochOf(nowSlot()))+4)*mainnetSlotsPerEpoch), 102)
		ff := mainnetFork("FULU")
		wantError(t, v.signJSON(t, pub10, map[string]any{"type": "BLOCK_V2", "fork_info": forkInfoJSON(ff),
			"beacon_block": map[string]any{"version": "FULU", "block_header": far}}), http.StatusPreconditionFailed, "epoch")

		// Attestations: a vote, its identical repeat, a double vote, a surrounding and a
		// surrounded vote.
		fa := mainnetFork("FULU")
		att := func(source, target phase0.Epoch, seed byte) map[string]any {
			return map[string]any{"type": "ATTESTATION", "fork_info": forkInfoJSON(fa),
				"attestation": attData(phase0.Slot(uint64(target)*mainnetSlotsPerEpoch), source, target, seed)}
		}
		base := epochOf(nowSlot()) - 20
		pub11 := interopPub(t, 11)
		vote := signature(t, v.signJSON(t, pub11, att(base, base+5, 1)))
		a := attData(phase0.Slot(uint64(base+5)*mainnetSlotsPerEpoch), base, base+5, 1)
		wantSignature(t, 11, forkedRoot(t, domainBeaconAttester, fa, a.Target.Epoch, htr(t, a)), vote)
		if again := signature(t, v.signJSON(t, pub11, att(base, base+5, 1))); again != vote {
			t.Errorf("identical attestation re-sign gave another signature")
		}
		wantError(t, v.signJSON(t, pub11, att(base, base+5, 2)), http.StatusPreconditionFailed, "")   // double vote
		wantError(t, v.signJSON(t, pub11, att(base-1, base+6, 1)), http.StatusPreconditionFailed, "") // surrounds
		wantError(t, v.signJSON(t, pub11, att(base+1, base+4, 1)), http.StatusPreconditionFailed, "") // surrounded
		// A later, non-conflicting vote still signs.
		signature(t, v.signJSON(t, pub11, att(base+5, base+6, 3)))
	})

	t.Run("upcheck", func(t *testing.T) {
		r := do(t, http.MethodGet, v.URL+"/upcheck", "", nil)
		if r.status != http.StatusOK || r.ctype != ctText || string(r.body) != "OK" {
			t.Errorf("/upcheck: %s", r)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		r := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
		if r.status != http.StatusOK || r.ctype != ctJSON {
			t.Fatalf("/healthcheck: %s", r)
		}
		h := decodeHealth(t, r.body)
		wantHealth(t, h, "UP", nKeys, 0)
	})

	t.Run("publicKeys", func(t *testing.T) {
		r := do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
		if r.status != http.StatusOK || r.ctype != ctJSON {
			t.Fatalf("publicKeys: %s", r)
		}
		var got []string
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("publicKeys body: %v: %s", err, r.body)
		}
		var want []string
		for _, i := range indices {
			want = append(want, interopPub(t, i))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("publicKeys:\n got %v\nwant %v", got, want)
		}
		for _, k := range got {
			if k != strings.ToLower(k) || !strings.HasPrefix(k, "0x") {
				t.Errorf("key %q is not lowercase 0x hex", k)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := do(t, http.MethodGet, v.MetricsURL+"/metrics", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("/metrics: %s", r)
		}
		m := string(r.body)
		for _, want := range []string{
			"vigil_sign_requests_total",
			`vigil_sign_requests_total{outcome="signed",type="RANDAO_REVEAL"}`,
			`vigil_sign_requests_total{outcome="refused",type="BLOCK_V2"}`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(m, `vigil_sign_requests_total{outcome="signed",type="RANDAO_REVEAL"} 0`+"\n") {
			t.Errorf("/metrics counted no signed RANDAO_REVEAL")
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Health.

type healthCheck struct {
	ID     string         `json:"id"`
	Status string         `json:"status"`
	Data   map[string]any `json:"data"`
	Checks []healthCheck  `json:"checks"`
}

type health struct {
	Status  string        `json:"status"`
	Checks  []healthCheck `json:"checks"`
	Outcome string        `json:"outcome"`
}

func decodeHealth(t *testing.T, b []byte) health {
	t.Helper()
	var h health
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("/healthcheck body: %v: %s", err, b)
	}
	return h
}

// wantHealth checks Web3Signer's /healthcheck shape and returns the keystores sub-check.
func wantHealth(t *testing.T, h health, status string, loaded, errs int) healthCheck {
	t.Helper()
	if h.Status != status || h.Outcome != status {
		t.Errorf("status/outcome %s/%s, want %s", h.Status, h.Outcome, status)
	}
	var ids []string
	for _, c := range h.Checks {
		ids = append(ids, c.ID)
	}
	if want := []string{"default-check", "slashing-protection-db-health-check", "keys-check"}; !slices.Equal(ids, want) {
		t.Fatalf("check ids %v, want %v", ids, want)
	}
	if h.Checks[0].Status != "UP" || h.Checks[1].Status != "UP" {
		t.Errorf("default/db checks: %+v %+v", h.Checks[0], h.Checks[1])
	}
	keys := h.Checks[2]
	if len(keys.Checks) != 1 || keys.Checks[0].ID != "keystores-bulk-loading" {
		t.Fatalf("keys-check sub-checks: %+v", keys.Checks)
	}
	sub := keys.Checks[0]
	wantStatus := "UP"
	if errs > 0 {
		wantStatus = "DOWN"
	}
	if keys.Status != wantStatus || sub.Status != wantStatus {
		t.Errorf("keys-check %s, keystores-bulk-loading %s, want %s", keys.Status, sub.Status, wantStatus)
	}
	if sub.Data["keys-loaded"] != float64(loaded) || sub.Data["error-count"] != float64(errs) {
		t.Errorf("keystores-bulk-loading data %v, want keys-loaded %d error-count %d", sub.Data, loaded, errs)
	}
	return sub
}

// ---------------------------------------------------------------------------------------------
// 3. Bad input.

func TestE2EBadInput(t *testing.T) {
	v := start(t, append([]string{"--network", "mainnet"}, writeKeystores(t, 0, 1)...)...)
	pub0, pub1 := interopPub(t, 0), interopPub(t, 1)

	fe := mainnetFork("ELECTRA")
	fiJSON, _ := json.Marshal(forkInfoJSON(fe))
	fi := string(fiJSON)
	gvr := hx(mainnetGVR[:])
	epoch := fe.Epoch + 1
	randaoRoot := forkedRoot(t, domainRandao, fe, epoch, uint64Root(uint64(epoch)))
	randao := func(extra string) string {
		return `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":{"epoch":"` + dec(epoch) + `"}` + extra + `}`
	}
	withFork := func(fork string) string {
		return `{"type":"RANDAO_REVEAL","fork_info":{"fork":` + fork + `,"genesis_validators_root":"` + gvr + `"},"randao_reveal":{"epoch":"1"}}`
	}
	randaoEpoch := func(e string) string {
		return `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":{"epoch":` + e + `}}`
	}
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Slashable payloads for keys 0 and 1: none of them may leave a trace in the database.
	slot := forkSlot("ELECTRA", 9)
	goodHeader := header(slot, 7)
	blockV2 := func(version string, payload string) string {
		return `{"type":"BLOCK_V2","fork_info":` + fi + `,"beacon_block":{"version":"` + version + `",` + payload + `}}`
	}
	goodBlock := blockV2("ELECTRA", `"block_header":`+js(goodHeader))
	attestation := func(a string) string {
		return `{"type":"ATTESTATION","fork_info":` + fi + `,"attestation":` + a + `}`
	}
	src, tgt := dec(epochOf(slot)-1), dec(epochOf(slot))
	cp := func(e string) string { return `{"epoch":"` + e + `","root":"` + hx(pattern(32, 1)) + `"}` }
	attFields := `"slot":"` + dec(slot) + `","index":"0","beacon_block_root":"` + hx(pattern(32, 2)) + `"`
	farHeader := header(phase0.Slot((uint64(epochOf(nowSlot()))+10)*mainnetSlotsPerEpoch), 8)
	// Bitfields of the wrong size (go-eth2-client does not check them; the signer must).
	shortCommitteeBits := electraAggregate(slot, 1)
	shortCommitteeBits.Aggregate.CommitteeBits = shortCommitteeBits.Aggregate.CommitteeBits[:7]
	longCommitteeBits := electraAggregate(slot, 1)
	longCommitteeBits.Aggregate.CommitteeBits = append(longCommitteeBits.Aggregate.CommitteeBits, 0)
	emptyAggregationBits := electraAggregate(slot, 1)
	emptyAggregationBits.Aggregate.AggregationBits = []byte{}
	shortContribution := &altair.ContributionAndProof{AggregatorIndex: 1, SelectionProof: sig96(1), Contribution: &altair.SyncCommitteeContribution{
		Slot: slot, BeaconBlockRoot: root32(1), SubcommitteeIndex: 1, AggregationBits: pattern(15, 1), Signature: sig96(2),
	}}
	shortSyncBits := altairBlock(forkSlot("ALTAIR", 1), 1)
	shortSyncBits.Body.SyncAggregate.SyncCommitteeBits = pattern(63, 1)
	huge := randao(`,"padding":"` + strings.Repeat("a", 4<<20) + `"`)
	wrongRoot := randaoRoot
	wrongRoot[0] ^= 0xff

	rows := []struct {
		name   string
		method string // default POST
		path   string // default the sign path of key 0
		body   string
		status int
		substr string
	}{
		{name: "malformed JSON", body: `{"type":"RANDAO_REVEAL",`, status: 400, substr: "malformed JSON"},
		{name: "trailing garbage", body: randao("") + ` x`, status: 400, substr: "malformed JSON"},
		{name: "empty body", body: ``, status: 400, substr: "empty body"},
		{name: "body is an array", body: `[` + randao("") + `]`, status: 400, substr: "not a JSON object"},
		{name: "body is a string", body: `"RANDAO_REVEAL"`, status: 400, substr: "not a JSON object"},
		{name: "body is null", body: `null`, status: 400, substr: "not a JSON object"},
		{name: "type missing", body: `{"fork_info":` + fi + `,"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "type"},
		{name: "type is a number", body: `{"type":7,"fork_info":` + fi + `,"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "type"},
		{name: "unknown type", body: `{"type":"SIGN_ANYTHING","fork_info":` + fi + `}`, status: 400, substr: "SIGN_ANYTHING"},
		{name: "fork_info missing", body: `{"type":"RANDAO_REVEAL","randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info"},
		{name: "fork_info null", body: `{"type":"RANDAO_REVEAL","fork_info":null,"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info"},
		{name: "fork_info is a string", body: `{"type":"RANDAO_REVEAL","fork_info":"mainnet","randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info"},
		{name: "fork_info.fork missing", body: `{"type":"RANDAO_REVEAL","fork_info":{"genesis_validators_root":"` + gvr + `"},"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info.fork"},
		{name: "genesis_validators_root missing", body: `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x04000000","current_version":"0x05000000","epoch":"1"}},"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "genesis_validators_root"},
		{name: "genesis_validators_root 31 bytes", body: `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x04000000","current_version":"0x05000000","epoch":"1"},"genesis_validators_root":"` + gvr[:len(gvr)-2] + `"},"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "genesis_validators_root"},
		{name: "version bad hex", body: withFork(`{"previous_version":"0x04000000","current_version":"0xzz000000","epoch":"1"}`), status: 400, substr: "fork_info.fork.current_version"},
		{name: "version without 0x", body: withFork(`{"previous_version":"04000000","current_version":"0x05000000","epoch":"1"}`), status: 400, substr: "fork_info.fork.previous_version"},
		{name: "version 3 bytes", body: withFork(`{"previous_version":"0x04000000","current_version":"0x050000","epoch":"1"}`), status: 400, substr: "fork_info.fork.current_version"},
		{name: "version is a number", body: withFork(`{"previous_version":"0x04000000","current_version":5,"epoch":"1"}`), status: 400, substr: "fork_info.fork.current_version"},
		{name: "fork epoch is a number", body: withFork(`{"previous_version":"0x04000000","current_version":"0x05000000","epoch":1}`), status: 400, substr: "fork_info.fork.epoch"},
		{name: "version not of this network", body: withFork(`{"previous_version":"0x04000001","current_version":"0x05000001","epoch":"0"}`), status: 400, substr: "not a fork of network"},
		{name: "payload missing", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `}`, status: 400, substr: "randao_reveal"},
		{name: "payload is a string", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":"5"}`, status: 400, substr: "randao_reveal"},
		{name: "payload is an array", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":[]}`, status: 400, substr: "randao_reveal"},
		{name: "other type's payload only", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"aggregation_slot":{"slot":"1"}}`, status: 400, substr: "randao_reveal"},
		{name: "epoch missing", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":{}}`, status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch is a number", body: randaoEpoch(`5`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch hex", body: randaoEpoch(`"0x10"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch negative", body: randaoEpoch(`"-1"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch exponent", body: randaoEpoch(`"1e3"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch empty", body: randaoEpoch(`""`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch overflows uint64", body: randaoEpoch(`"18446744073709551616"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "signing_root short", body: randao(`,"signing_root":"0x00"`), status: 400, substr: "signing_root"},
		{name: "signingRoot not hex", body: randao(`,"signingRoot":"0x` + strings.Repeat("g", 64) + `"`), status: 400, substr: "signingRoot"},
		{name: "signing roots disagree", body: randao(`,"signing_root":"` + hx(randaoRoot[:]) + `","signingRoot":"` + hx(wrongRoot[:]) + `"`), status: 400, substr: "disagree"},
		{name: "signing root differs", body: randao(`,"signing_root":"` + hx(wrongRoot[:]) + `"`), status: 400, substr: "does not match"},
		{name: "block signing root differs", body: strings.TrimSuffix(goodBlock, "}") + `,"signingRoot":"` + hx(wrongRoot[:]) + `"}`, status: 400, substr: "does not match"},
		{name: "block_v2 unknown version", body: blockV2("GLOAS", `"block_header":`+js(goodHeader)), status: 400, substr: "beacon_block.version"},
		{name: "block_v2 version missing", body: `{"type":"BLOCK_V2","fork_info":` + fi + `,"beacon_block":{"block_header":` + js(goodHeader) + `}}`, status: 400, substr: "beacon_block.version"},
		{name: "block_v2 ELECTRA full block", body: blockV2("ELECTRA", `"block":`+js(goodHeader)), status: 400, substr: "block_header"},
		{name: "block_v2 PHASE0 block missing", body: blockV2("PHASE0", `"body":{}`), status: 400, substr: "beacon_block.block"},
		{name: "block_v2 header is a string", body: blockV2("ELECTRA", `"block_header":"0x00"`), status: 400, substr: "beacon_block.block_header"},
		{name: "block_v2 header body_root missing", body: blockV2("ELECTRA", `"block_header":{"slot":"`+dec(slot)+`","proposer_index":"1","parent_root":"`+hx(pattern(32, 1))+`","state_root":"`+hx(pattern(32, 2))+`"}`), status: 400, substr: "body root"},
		{name: "block_v2 header slot is a number", body: blockV2("ELECTRA", `"block_header":{"slot":5,"proposer_index":"1","parent_root":"`+hx(pattern(32, 1))+`","state_root":"`+hx(pattern(32, 2))+`","body_root":"`+hx(pattern(32, 3))+`"}`), status: 400, substr: "slot"},
		{name: "block_v2 header slot not decimal", body: blockV2("ELECTRA", `"block_header":{"slot":"ten","proposer_index":"1","parent_root":"`+hx(pattern(32, 1))+`","state_root":"`+hx(pattern(32, 2))+`","body_root":"`+hx(pattern(32, 3))+`"}`), status: 400, substr: "slot"},
		{name: "block_v2 header parent_root short", body: blockV2("ELECTRA", `"block_header":{"slot":"5","proposer_index":"1","parent_root":"0x0102","state_root":"`+hx(pattern(32, 2))+`","body_root":"`+hx(pattern(32, 3))+`"}`), status: 400, substr: "parent root"},
		{name: "BLOCK block missing", body: `{"type":"BLOCK","fork_info":` + fi + `}`, status: 400, substr: "block"},
		{name: "attestation target missing", body: attestation(`{` + attFields + `,"source":` + cp(src) + `}`), status: 400, substr: "target"},
		{name: "attestation source is a string", body: attestation(`{` + attFields + `,"source":"` + src + `","target":` + cp(tgt) + `}`), status: 400, substr: "attestation"},
		{name: "attestation target epoch is a number", body: attestation(`{` + attFields + `,"source":` + cp(src) + `,"target":{"epoch":` + tgt + `,"root":"` + hx(pattern(32, 1)) + `"}}`), status: 400, substr: "epoch"},
		{name: "attestation beacon_block_root bad hex", body: attestation(`{"slot":"` + dec(slot) + `","index":"0","beacon_block_root":"0xnothex","source":` + cp(src) + `,"target":` + cp(tgt) + `}`), status: 400, substr: "beacon_block_root"},
		{name: "attestation is a string", body: attestation(`"vote"`), status: 400, substr: "attestation"},
		{name: "aggregate v2 version without data", body: `{"type":"AGGREGATE_AND_PROOF_V2","fork_info":` + fi + `,"aggregate_and_proof":{"version":"ELECTRA"}}`, status: 400, substr: "aggregate_and_proof.data"},
		{name: "aggregate v2 unknown version", body: `{"type":"AGGREGATE_AND_PROOF_V2","fork_info":` + fi + `,"aggregate_and_proof":{"version":"FOO","data":{}}}`, status: 400, substr: "aggregate_and_proof.version"},
		{name: "aggregate committee_bits 7 bytes", body: `{"type":"AGGREGATE_AND_PROOF","fork_info":` + fi + `,"aggregate_and_proof":` + js(shortCommitteeBits) + `}`, status: 400, substr: "committee_bits"},
		{name: "aggregate committee_bits 9 bytes", body: `{"type":"AGGREGATE_AND_PROOF_V2","fork_info":` + fi + `,"aggregate_and_proof":{"version":"ELECTRA","data":` + js(longCommitteeBits) + `}}`, status: 400, substr: "committee_bits"},
		{name: "aggregate aggregation_bits empty", body: `{"type":"AGGREGATE_AND_PROOF","fork_info":` + fi + `,"aggregate_and_proof":` + strings.Replace(js(emptyAggregationBits), `"aggregation_bits":""`, `"aggregation_bits":"0x"`, 1) + `}`, status: 400, substr: "aggregation_bits"},
		{name: "contribution aggregation_bits 15 bytes", body: `{"type":"SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF","fork_info":` + fi + `,"contribution_and_proof":` + js(shortContribution) + `}`, status: 400, substr: "aggregation_bits"},
		{name: "altair block sync_committee_bits 63 bytes", body: `{"type":"BLOCK_V2","fork_info":` + js(forkInfoJSON(mainnetFork("ALTAIR"))) + `,"beacon_block":{"version":"ALTAIR","block":` + js(shortSyncBits) + `}}`, status: 400, substr: "sync_committee_bits"},
		{name: "deposit pubkey 47 bytes", body: `{"type":"DEPOSIT","deposit":{"pubkey":"` + pub0[:len(pub0)-2] + `","withdrawal_credentials":"` + hx(pattern(32, 1)) + `","amount":"32000000000","genesis_fork_version":"0x00000000"}}`, status: 400, substr: "deposit.pubkey"},
		{name: "deposit amount missing", body: `{"type":"DEPOSIT","deposit":{"pubkey":"` + pub0 + `","withdrawal_credentials":"` + hx(pattern(32, 1)) + `","genesis_fork_version":"0x00000000"}}`, status: 400, substr: "deposit.amount"},
		{name: "sync message under PHASE0", body: `{"type":"SYNC_COMMITTEE_MESSAGE","fork_info":` + js(forkInfoJSON(mainnetFork("PHASE0"))) + `,"sync_committee_message":{"beacon_block_root":"` + hx(pattern(32, 1)) + `","slot":"5"}}`, status: 400, substr: "ALTAIR"},
		{name: "sync message root is an object", body: `{"type":"SYNC_COMMITTEE_MESSAGE","fork_info":` + fi + `,"sync_committee_message":{"beacon_block_root":{},"slot":"5"}}`, status: 400, substr: "sync_committee_message.beacon_block_root"},
		{name: "selection subcommittee_index missing", body: `{"type":"SYNC_COMMITTEE_SELECTION_PROOF","fork_info":` + fi + `,"sync_aggregator_selection_data":{"slot":"5"}}`, status: 400, substr: "subcommittee_index"},
		{name: "registration fee_recipient 2 bytes", body: `{"type":"VALIDATOR_REGISTRATION","validator_registration":{"fee_recipient":"0x0102","gas_limit":"30000000","timestamp":"1700000000","pubkey":"` + pub0 + `"}}`, status: 400, substr: "fee_recipient"},
		{name: "registration fee_recipient 32 bytes", body: `{"type":"VALIDATOR_REGISTRATION","validator_registration":{"fee_recipient":"` + hx(pattern(32, 1)) + `","gas_limit":"30000000","timestamp":"1700000000","pubkey":"` + pub0 + `"}}`, status: 400, substr: "fee_recipient"},
		{name: "registration gas_limit is a number", body: `{"type":"VALIDATOR_REGISTRATION","validator_registration":{"fee_recipient":"` + hx(pattern(20, 1)) + `","gas_limit":30000000,"timestamp":"1700000000","pubkey":"` + pub0 + `"}}`, status: 400, substr: "gas_limit"},
		{name: "identifier 47 bytes", path: signPath(pub0[:len(pub0)-2]), body: randao(""), status: 400, substr: "identifier"},
		{name: "identifier 49 bytes", path: signPath(pub0 + "00"), body: randao(""), status: 400, substr: "identifier"},
		{name: "identifier not hex", path: signPath("0x" + strings.Repeat("zz", 48)), body: randao(""), status: 400, substr: "identifier"},
		{name: "unknown key", path: signPath(interopPub(t, 77)), body: randao(""), status: 404, substr: "no key"},
		{name: "unknown key, slashable", path: signPath(interopPub(t, 77)), body: goodBlock, status: 404, substr: "no key"},
		{name: "far-future block", path: signPath(pub1), body: `{"type":"BLOCK_V2","fork_info":` + js(forkInfoJSON(mainnetFork("FULU"))) + `,"beacon_block":{"version":"FULU","block_header":` + js(farHeader) + `}}`, status: 412, substr: "epoch"},
		{name: "body over 4 MiB", body: huge, status: 413, substr: "exceeds"},
		{name: "GET on the sign route", method: http.MethodGet, status: 405, substr: "method"},
		{name: "PUT on publicKeys", method: http.MethodPut, path: "/api/v1/eth2/publicKeys", status: 405, substr: "method"},
		{name: "unknown route", path: "/api/v1/eth2/sign", status: 404, substr: "route"},
		{name: "unknown route, GET", method: http.MethodGet, path: "/api/v2/nothing", status: 404, substr: "route"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			method, path := row.method, row.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = signPath(pub0)
			}
			var body any
			if method != http.MethodGet {
				body = row.body
			}
			wantError(t, do(t, method, v.URL+path, "application/json", body), row.status, row.substr)
		})
	}

	// The server still serves, and signs a block afterwards.
	if got := signature(t, v.signJSON(t, pub0, randao(""))); got != interopKey(t, 0).SignRoot(randaoRoot) {
		t.Errorf("RANDAO after the bad rows: wrong signature")
	}
	blockRoot := forkedRoot(t, domainBeaconProposer, fe, epochOf(slot), htr(t, goodHeader))
	wantSignature(t, 0, blockRoot, signature(t, v.signJSON(t, pub0, goodBlock)))

	// Nothing of the bad rows was recorded: the database holds exactly that one block.
	v.stop(t)
	exp := exec.Command(vigilBin, "slashing", "export", "--data-dir", v.DataDir)
	exp.Env = testEnv()
	var stderr bytes.Buffer
	exp.Stderr = &stderr
	out, err := exp.Output()
	if err != nil {
		t.Fatalf("vigil slashing export: %v\n%s", err, stderr.String())
	}
	var doc struct {
		Metadata struct {
			GVR string `json:"genesis_validators_root"`
		} `json:"metadata"`
		Data []struct {
			Pubkey string `json:"pubkey"`
			Blocks []struct {
				Slot        string `json:"slot"`
				SigningRoot string `json:"signing_root"`
			} `json:"signed_blocks"`
			Attestations []json.RawMessage `json:"signed_attestations"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, out)
	}
	if doc.Metadata.GVR != gvr {
		t.Errorf("export genesis_validators_root %s, want %s", doc.Metadata.GVR, gvr)
	}
	if len(doc.Data) != 1 || doc.Data[0].Pubkey != pub0 || len(doc.Data[0].Attestations) != 0 ||
		len(doc.Data[0].Blocks) != 1 || doc.Data[0].Blocks[0].Slot != dec(slot) || doc.Data[0].Blocks[0].SigningRoot != hx(blockRoot[:]) {
		t.Errorf("slashing history is not exactly the one good block (key 0, slot %d, root %#x):\n%s", slot, blockRoot[:], out)
	}
}

// ---------------------------------------------------------------------------------------------
// 4. Bad key files.

func TestE2EBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	keys, pw := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	good, err := keystore.WriteInteropKeystores(keys, pw, []uint64{0}, keystore.DevKDF())
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := keystore.Encrypt(interopKey(t, 1), []byte("not the directory's password"), keystore.DevKDF(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "wrong-password.json"), wrong, 0o600); err != nil {
		t.Fatal(err)
	}
	password, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := keystore.Encrypt(interopKey(t, 2), bytes.TrimRight(password, "\r\n"), keystore.DevKDF(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "truncated.json"), whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}

	v := start(t, "--network", "minimal", "--genesis-time", dayAgo(), "--keystores-path", keys, "--keystores-password-file", pw)
	stderr := v.Stderr.waitFor(t, "truncated.json", 10*time.Second)
	if !strings.Contains(stderr, "wrong-password.json") {
		t.Errorf("stderr does not name wrong-password.json:\n%s", stderr)
	}

	f := phase0.Fork{PreviousVersion: phase0.Version{0, 0, 0, 1}, CurrentVersion: phase0.Version{1, 0, 0, 1}}
	randao := map[string]any{"type": "RANDAO_REVEAL", "fork_info": map[string]any{
		"fork":                    map[string]any{"previous_version": hx(f.PreviousVersion[:]), "current_version": hx(f.CurrentVersion[:]), "epoch": "0"},
		"genesis_validators_root": hx(mainnetGVR[:]),
	}, "randao_reveal": map[string]any{"epoch": "3"}}
	root := computeSigningRoot(t, uint64Root(3), computeDomain(t, domainRandao, f.CurrentVersion, mainnetGVR))
	wantSignature(t, 0, root, signature(t, v.signJSON(t, good[0].String(), randao)))
	for _, i := range []uint64{1, 2} {
		wantError(t, v.signJSON(t, interopPub(t, i), randao), http.StatusNotFound, "")
	}

	r := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
	if r.status != http.StatusServiceUnavailable || r.ctype != ctJSON {
		t.Fatalf("/healthcheck: want 503 JSON, got %s", r)
	}
	sub := wantHealth(t, decodeHealth(t, r.body), "DOWN", 1, 2)
	errs, _ := sub.Data["errors"].([]any)
	joined := fmt.Sprint(errs)
	if len(errs) != 2 || !strings.Contains(joined, "wrong-password.json") || !strings.Contains(joined, "truncated.json") {
		t.Errorf("keystores-bulk-loading errors %v do not name both bad files", sub.Data["errors"])
	}
	r = do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
	if want := `["` + good[0].String() + `"]`; strings.TrimSpace(string(r.body)) != want {
		t.Errorf("publicKeys %s, want %s", r.body, want)
	}
}

// ---------------------------------------------------------------------------------------------
// 5. Dev mode.

func TestE2EDevMode(t *testing.T) {
	v := start(t, "--dev")
	out := v.Stdout.waitFor(t, "try: curl", 10*time.Second)
	if !strings.Contains(out, "serving the signing API at "+v.URL+" ") {
		t.Errorf("stdout does not print the URL %s:\n%s", v.URL, out)
	}
	var want []string
	for i := range uint64(4) {
		pub := interopPub(t, i)
		want = append(want, pub)
		if !strings.Contains(out, "  "+pub+"\n") {
			t.Errorf("stdout does not list interop key %d (%s):\n%s", i, pub, out)
		}
	}
	r := do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
	var got []string
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("publicKeys: %v: %s", err, r.body)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("publicKeys %v, want %v", got, want)
	}
}

package slashingtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// vectorFile is one eth-clients/slashing-protection-interchange-tests case.
type vectorFile struct {
	Name                  string       `json:"name"`
	GenesisValidatorsRoot string       `json:"genesis_validators_root"`
	Steps                 []vectorStep `json:"steps"`
}

type vectorStep struct {
	ShouldSucceed         bool            `json:"should_succeed"`
	ContainsSlashableData bool            `json:"contains_slashable_data"`
	Interchange           json.RawMessage `json:"interchange"`
	Blocks                []vectorBlock   `json:"blocks"`
	Attestations          []vectorAtt     `json:"attestations"`
}

type vectorBlock struct {
	Pubkey                string `json:"pubkey"`
	Slot                  string `json:"slot"`
	SigningRoot           string `json:"signing_root"`
	ShouldSucceed         bool   `json:"should_succeed"`
	ShouldSucceedComplete *bool  `json:"should_succeed_complete"`
}

type vectorAtt struct {
	Pubkey                string `json:"pubkey"`
	SourceEpoch           string `json:"source_epoch"`
	TargetEpoch           string `json:"target_epoch"`
	SigningRoot           string `json:"signing_root"`
	ShouldSucceed         bool   `json:"should_succeed"`
	ShouldSucceedComplete *bool  `json:"should_succeed_complete"`
}

// RunInterchangeVectors runs every *.json test of the EIP-3076 interchange
// test suite (eth-clients/slashing-protection-interchange-tests,
// tests/generated) found in dir, each against a fresh store from open:
// every step's interchange is imported (with the test's top-level genesis
// validators root as the node's network root) and must succeed iff
// should_succeed; then every block and attestation is signed with that root
// and must be accepted iff should_succeed_complete (should_succeed when
// absent), since every Vigil store keeps complete history. A store may
// refuse an interchange marked contains_slashable_data; the rest of that
// test is then skipped, as the suite's README allows, and logged.
//
// It returns the number of test cases run and fails the test when there
// are none.
func RunInterchangeVectors(t *testing.T, dir string, open func(t *testing.T) slashing.Store) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("no interchange test vectors (*.json) in %s", dir)
		return 0
	}
	checks := 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			checks += runVector(t, f, fresh(t, open))
		})
	}
	t.Logf("%d interchange test cases, %d signing checks, from %s", len(files), checks, dir)
	return len(files)
}

func runVector(t *testing.T, path string, s slashing.Store) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing test file: %v", err)
	}
	var gvr phase0.Root
	if err := slashing.ParseHex(v.GenesisValidatorsRoot, gvr[:]); err != nil {
		t.Fatalf("test genesis_validators_root: %v", err)
	}
	ctx := context.Background()
	checks := 0
	for i, st := range v.Steps {
		_, err := slashing.Import(ctx, s, bytes.NewReader(st.Interchange), slashing.ImportOptions{GenesisValidatorsRoot: &gvr})
		switch {
		case st.ShouldSucceed && err != nil && st.ContainsSlashableData:
			t.Logf("step %d: interchange with slashable data refused (allowed; rest of the test skipped): %v", i, err)
			return checks
		case st.ShouldSucceed && err != nil:
			t.Fatalf("step %d: import failed: %v", i, err)
		case !st.ShouldSucceed && err == nil:
			t.Fatalf("step %d: import succeeded, the test wants it refused", i)
		case !st.ShouldSucceed && !errors.Is(err, slashing.ErrInterchange):
			t.Fatalf("step %d: import refused with %v, want an ErrInterchange", i, err)
		}
		for j, b := range st.Blocks {
			req := slashing.Block{GenesisValidatorsRoot: gvr}
			mustHex(t, b.Pubkey, req.Pubkey[:])
			req.Slot = phase0.Slot(mustU64(t, b.Slot))
			if b.SigningRoot != "" {
				mustHex(t, b.SigningRoot, req.SigningRoot[:])
			}
			want := b.ShouldSucceed
			if b.ShouldSucceedComplete != nil {
				want = *b.ShouldSucceedComplete
			}
			expectSign(t, i, "block", j, s.SignBlock(ctx, req), want)
			checks++
		}
		for j, a := range st.Attestations {
			req := slashing.Attestation{GenesisValidatorsRoot: gvr}
			mustHex(t, a.Pubkey, req.Pubkey[:])
			req.SourceEpoch = phase0.Epoch(mustU64(t, a.SourceEpoch))
			req.TargetEpoch = phase0.Epoch(mustU64(t, a.TargetEpoch))
			if a.SigningRoot != "" {
				mustHex(t, a.SigningRoot, req.SigningRoot[:])
			}
			want := a.ShouldSucceed
			if a.ShouldSucceedComplete != nil {
				want = *a.ShouldSucceedComplete
			}
			expectSign(t, i, "attestation", j, s.SignAttestation(ctx, req), want)
			checks++
		}
	}
	return checks
}

func expectSign(t *testing.T, step int, kind string, j int, err error, want bool) {
	t.Helper()
	switch {
	case want && err != nil:
		t.Errorf("step %d %s %d: refused, want accepted: %v", step, kind, j, err)
	case !want && err == nil:
		t.Errorf("step %d %s %d: accepted, want refused", step, kind, j)
	case !want && !errors.Is(err, slashing.ErrSlashable):
		t.Errorf("step %d %s %d: failed with %v, want a slashing refusal", step, kind, j, err)
	}
}

func mustHex(t *testing.T, s string, out []byte) {
	t.Helper()
	if err := slashing.ParseHex(s, out); err != nil {
		t.Fatalf("test data: %v", err)
	}
}

func mustU64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := slashing.ParseDecimalU64(s)
	if err != nil {
		t.Fatalf("test data: %v", err)
	}
	return v
}

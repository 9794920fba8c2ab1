package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// runCLI runs vigil in-process with an empty environment.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(string) string { return "" }, &out, &errb)
	return code, out.String(), errb.String()
}

// TestSlashingLifecycleCLI drives import → watermark → prune → export through the CLI on the
// embedded store and checks each effect in the exported interchange.
func TestSlashingLifecycleCLI(t *testing.T) {
	dir := t.TempDir()
	var blocks []slashing.SignedBlock
	var atts []slashing.SignedAttestation
	for e := uint64(0); e < 300; e++ {
		blocks = append(blocks, slashingtest.B(e*32, 1))
		atts = append(atts, slashingtest.A(e, e+1, 2))
	}
	doc := filepath.Join(dir, "in.json")
	if err := os.WriteFile(doc, slashingtest.Document(slashingtest.GVR, slashing.ValidatorHistory{
		Pubkey: slashingtest.Key(1), SignedBlocks: blocks, SignedAttestations: atts,
	}), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if code, out, errs := runCLI(t, "slashing", "import", "--data-dir", data, "--file", doc); code != 0 || !strings.Contains(out, "imported 1 validators (300 blocks, 300 attestations)") {
		t.Fatalf("import: %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, "slashing", "prune", "--data-dir", data, "--keep-epochs", "250"); code != 0 ||
		!strings.Contains(out, "pruned 1 validators: 50 blocks and 50 attestations") {
		t.Fatalf("prune: %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, "slashing", "watermark", "--data-dir", data, "--high-slot", "20000", "--high-epoch", "600"); code != 0 ||
		!strings.Contains(out, "high watermark: slot 20000, epoch 600") {
		t.Fatalf("watermark high: %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI(t, "slashing", "watermark", "--data-dir", data, "--slot", "9000", "--epoch", "280"); code != 0 ||
		!strings.Contains(out, "raised to slot 9000, epoch 280 on 1 keys") {
		t.Fatalf("watermark raise: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, "slashing", "watermark", "--data-dir", data, "--slot", "1"); code != 2 || !strings.Contains(errs, "go together") {
		t.Fatalf("--slot without --epoch: %d %q", code, errs)
	}
	out := filepath.Join(dir, "out.json")
	if code, _, errs := runCLI(t, "slashing", "export", "--data-dir", data, "--file", out); code != 0 {
		t.Fatalf("export: %d %q", code, errs)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := slashing.NewDecoder(f)
	if _, err := dec.Metadata(); err != nil {
		t.Fatal(err)
	}
	h, err := dec.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := h.SignedBlocks[0].Slot; got != 9000 {
		t.Errorf("export's first block slot %d, want the raised watermark 9000", got)
	}
	if got := h.SignedAttestations[0]; got.TargetEpoch != 280 || got.SourceEpoch != 280 {
		t.Errorf("export's first vote %d→%d, want the raised watermark 280→280", got.SourceEpoch, got.TargetEpoch)
	}
	if code, _, errs := runCLI(t, "slashing", "export", "--data-dir", filepath.Join(dir, "none")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Fatalf("export of a missing database: %d %q", code, errs)
	}
}

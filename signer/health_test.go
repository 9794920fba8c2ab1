package signer_test

import (
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// A key held by a chunked import is named in health, as running while its import's last chunk
// is recent and as interrupted after the idle timeout; a key that is not loaded is not named.
func TestHealthListsKeysHeldByAnImport(t *testing.T) {
	t.Parallel()
	mem := slashingtest.NewMemory()
	f := setup(t, func(c *signer.Config) { c.Store = mem })
	ctx := t.Context()
	if h := f.s.Health(ctx, time.Second); len(h.Importing) != 0 {
		t.Fatalf("before any import: %+v", h.Importing)
	}
	held := phase0.BLSPubKey(f.keys[1].PublicKey())
	for _, pk := range []phase0.BLSPubKey{held, {0xee}} { // the second is not loaded here
		if err := mem.ImportChunk(ctx, phase0.Root(testGVR), slashing.ImportChunk{Pubkey: pk, ImportID: 5, First: true,
			SignedBlocks: []slashing.SignedBlock{{Slot: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	h := f.s.Health(ctx, time.Second)
	if len(h.Importing) != 1 || h.Importing[0].Key != f.keys[1].PublicKey() || h.Importing[0].Interrupted {
		t.Fatalf("while the import runs: %+v, want key 1 running", h.Importing)
	}
	mem.SetImportIdleTimeout(0)
	h = f.s.Health(ctx, time.Second)
	if len(h.Importing) != 1 || !h.Importing[0].Interrupted {
		t.Fatalf("after the idle timeout: %+v, want key 1 interrupted", h.Importing)
	}
	if !h.OK() {
		t.Fatalf("a held key must not take the instance out of service: %+v", h)
	}
}

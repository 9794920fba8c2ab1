package keystore

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const interopKey0Pubkey = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c"

func TestInteropKey0(t *testing.T) {
	sk := interopKey(t, 0)
	if got := sk.PublicKey().String(); got != interopKey0Pubkey {
		t.Fatalf("interop key 0 pubkey = %s, want %s", got, interopKey0Pubkey)
	}
	// Deterministic, and distinct per index.
	if interopKey(t, 0).PublicKey() != sk.PublicKey() || interopKey(t, 1).PublicKey() == sk.PublicKey() {
		t.Fatal("interop keys are not deterministic/distinct")
	}
}

// TestInteropKeysAgainstLodestar checks every interop index used by the
// captured Lodestar requests against the pubkey in the request path.
func TestInteropKeysAgainstLodestar(t *testing.T) {
	dir := sharedTestdata(t, "lodestar-v1.5.1-requests")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]string{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var r struct {
			Index   *uint64 `json:"interop_validator_index"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if err := json.Unmarshal(readFile(t, filepath.Join(dir, e.Name())), &r); err != nil || r.Index == nil {
			continue
		}
		pub := r.Request.Path[strings.LastIndex(r.Request.Path, "/")+1:]
		if prev, ok := seen[*r.Index]; ok && prev != pub {
			t.Fatalf("vectors disagree on index %d", *r.Index)
		}
		seen[*r.Index] = pub
	}
	for _, must := range []uint64{0, 2, 9, 15} {
		if _, ok := seen[must]; !ok {
			t.Fatalf("index %d not found in %s", must, dir)
		}
	}
	for i, want := range seen {
		if got := interopKey(t, i).PublicKey().String(); got != want {
			t.Errorf("interop key %d: pubkey %s, want %s", i, got, want)
		}
	}
	t.Logf("checked %d interop indices", len(seen))
}

package keystore

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	blst "github.com/supranational/blst/bindings/go"
)

// TestSignRootCachedEqualsUncached attacks the hash cache's safety argument: for many keys and
// roots, first use (miss) and reuse (hit) of a root's point, SignRoot gives exactly what blst's
// own Sign gives, and the signature verifies.
func TestSignRootCachedEqualsUncached(t *testing.T) {
	var keys []*SecretKey
	for i := range 8 {
		seed := sha256.Sum256([]byte{byte(i), 'k'})
		k, err := NewSecretKey(new(blst.SecretKey).Deserialize(mustKeyGen(t, seed[:])).Serialize())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	h0, m0 := hashedRoots.stats()
	const roots = 16
	for r := range roots {
		root := testRoot(r)
		for _, k := range keys {
			got := k.SignRoot(root)
			var want Signature
			copy(want[:], new(blst.P2Affine).Sign(k.sk, root[:], dst).Compress())
			if got != want {
				t.Fatalf("root %d: cached-point signature %x differs from blst's %x", r, got[:8], want[:8])
			}
			if !Verify(k.PublicKey(), root[:], got) {
				t.Fatalf("root %d: signature does not verify", r)
			}
		}
	}
	h1, m1 := hashedRoots.stats()
	if hits, misses := h1-h0, m1-m0; misses != roots || hits != roots*7 {
		t.Errorf("cache saw %d hits and %d misses, want each root missed once (%d) and hit by the other 7 keys (%d)", hits, misses, roots, roots*7)
	}
}

// TestRootPointsEviction: the cache holds at most hashCacheSize roots, oldest out first, and
// an evicted root is hashed again, to the same point.
func TestRootPointsEviction(t *testing.T) {
	c := &rootPoints{m: make(map[[32]byte]*blst.P2)}
	first := *c.point(testRoot(0))
	for r := 1; r <= hashCacheSize; r++ {
		c.point(testRoot(r))
	}
	if len(c.m) != hashCacheSize {
		t.Fatalf("cache holds %d roots, want %d", len(c.m), hashCacheSize)
	}
	if _, ok := c.m[testRoot(0)]; ok {
		t.Fatal("the oldest root was not evicted")
	}
	if _, ok := c.m[testRoot(1)]; !ok {
		t.Fatal("the second-oldest root was evicted too")
	}
	_, m0 := c.stats()
	again := c.point(testRoot(0))
	if _, m1 := c.stats(); m1 != m0+1 {
		t.Errorf("evicted root: misses %d -> %d, want one more", m0, m1)
	}
	if !again.Equals(&first) {
		t.Error("an evicted root hashed again to a different point")
	}
}

func testRoot(r int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(r)^0x5eed)
	return sha256.Sum256(b[:])
}

func mustKeyGen(t *testing.T, seed []byte) []byte {
	t.Helper()
	sk := blst.KeyGen(seed)
	if sk == nil {
		t.Fatal("KeyGen failed")
	}
	return sk.Serialize()
}

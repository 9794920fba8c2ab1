package keystore

import (
	"sync"

	blst "github.com/supranational/blst/bindings/go"
)

// Hashing a signing root to a G2 point (hash-to-curve) is a third of the cost of a BLS
// signature, and it depends on the root only, not on the key. Many keys sign the same root: in a
// slot, every validator that attests signs the same AttestationData (since Electra the
// committee index is 0 in it), every aggregator candidate the same slot, every sync committee
// member the same block root. So the points of recent roots are kept, and a signature of a
// cached root costs the scalar multiplication only.
//
// Safety: the point is a public, deterministic function of the root (and the ciphersuite's
// DST), so a cached point is the point; a signature made with it is bit-for-bit the signature
// P2Affine.Sign makes (TestSignRootCachedEqualsUncached). The multiplication by the secret is
// blst's constant-time GLS multiplication and the conversion to affine its constant-time
// inversion, as in P2Affine.Sign. Nothing secret is cached.

// hashCacheSize is how many recent roots keep their point (288 bytes each).
const hashCacheSize = 512

// rootPoints is a small, fixed-size cache of H(root), oldest evicted first.
type rootPoints struct {
	mu   sync.Mutex
	m    map[[32]byte]*blst.P2
	ring [hashCacheSize][32]byte
	next int

	hits, misses uint64 // under mu; for tests and figures
}

var hashedRoots = &rootPoints{m: make(map[[32]byte]*blst.P2, hashCacheSize)}

// point returns H(root), computing and caching it on a miss. The point is shared: read-only.
func (c *rootPoints) point(root [32]byte) *blst.P2 {
	c.mu.Lock()
	p, ok := c.m[root]
	if ok {
		c.hits++
		c.mu.Unlock()
		return p
	}
	c.misses++
	c.mu.Unlock()
	p = blst.HashToG2(root[:], dst)
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.m[root]; ok { // computed meanwhile by another signer
		return q
	}
	if len(c.m) >= hashCacheSize {
		delete(c.m, c.ring[c.next])
	}
	c.ring[c.next] = root
	c.next = (c.next + 1) % hashCacheSize
	c.m[root] = p
	return p
}

// stats reports the cache's hits and misses so far.
func (c *rootPoints) stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

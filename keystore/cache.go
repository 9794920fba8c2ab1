package keystore

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// decryptCache lets a file-based source skip the slow KDF on a reload for keystores it decrypted
// before: an entry is keyed by the keystore's path and valid only for the same file bytes and
// password (a SHA-256 over both). The cache keeps a private copy of each secret and hands out a
// fresh copy every time, so zeroing a key that was handed out never affects it. Entries of
// keystores that disappeared or changed are zeroed at the end of the Load that noticed.
//
// Usage: one Load at a time (the source serialises them) calls begin, then decrypt from its
// parallel jobs, then end.
type decryptCache struct {
	mu   sync.Mutex // guards next during a Load
	prev map[string]cacheEntry
	next map[string]cacheEntry
}

type cacheEntry struct {
	digest [32]byte
	sk     *SecretKey
}

// keystoreDecrypts counts the KDF runs of cached sources (tests check the cache with it).
var keystoreDecrypts atomic.Int64

func (c *decryptCache) begin() { c.next = map[string]cacheEntry{} }

// decrypt returns the secret of ks (whose file holds data) under password, from the cache when
// this exact version was decrypted by the previous Load.
func (c *decryptCache) decrypt(path string, data, password []byte, ks *Keystore) (*SecretKey, error) {
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(password)
	var digest [32]byte
	h.Sum(digest[:0])
	if e, ok := c.prev[path]; ok && e.digest == digest {
		c.mu.Lock()
		c.next[path] = e
		c.mu.Unlock()
		return copySecretKey(e.sk)
	}
	keystoreDecrypts.Add(1)
	sk, err := ks.Decrypt(password)
	if err != nil {
		return nil, err
	}
	keep, err := copySecretKey(sk)
	if err != nil {
		sk.Zero()
		return nil, err
	}
	c.mu.Lock()
	if _, dup := c.next[path]; dup {
		keep.Zero() // the same file named twice (key configs): one entry is enough
	} else {
		c.next[path] = cacheEntry{digest: digest, sk: keep}
	}
	c.mu.Unlock()
	return sk, nil
}

// end makes this Load's entries the cache and zeroes the ones it did not carry over.
func (c *decryptCache) end() {
	for path, e := range c.prev {
		if n, ok := c.next[path]; !ok || n.sk != e.sk {
			e.sk.Zero()
		}
	}
	c.prev, c.next = c.next, nil
}

// copySecretKey returns an independent copy of sk (zeroing one never affects the other).
func copySecretKey(sk *SecretKey) (*SecretKey, error) {
	b := sk.Bytes()
	defer zero(b)
	return NewSecretKey(b)
}

package signer

import (
	"bytes"
	"slices"
	"sync/atomic"

	"github.com/vigil-signer/vigil/keystore"
)

// KeySet is the set of loaded keys, swapped atomically as a whole (reload never exposes a half-
// built set). Lookups are lock-free.
type KeySet struct {
	m atomic.Pointer[map[keystore.PublicKey]keystore.Key]
}

// NewKeySet returns a set holding keys (later duplicates of a public key are ignored).
func NewKeySet(keys []keystore.Key) *KeySet {
	s := &KeySet{}
	s.Replace(keys)
	return s
}

// Replace swaps in a new set of keys.
func (s *KeySet) Replace(keys []keystore.Key) {
	m := make(map[keystore.PublicKey]keystore.Key, len(keys))
	for _, k := range keys {
		if _, dup := m[k.PublicKey()]; !dup {
			m[k.PublicKey()] = k
		}
	}
	s.m.Store(&m)
}

// Get returns the key for pub.
func (s *KeySet) Get(pub keystore.PublicKey) (keystore.Key, bool) {
	k, ok := (*s.m.Load())[pub]
	return k, ok
}

// Len is the number of keys.
func (s *KeySet) Len() int { return len(*s.m.Load()) }

// PublicKeys lists the public keys in byte order.
func (s *KeySet) PublicKeys() []keystore.PublicKey {
	m := *s.m.Load()
	out := make([]keystore.PublicKey, 0, len(m))
	for pk := range m {
		out = append(out, pk)
	}
	slices.SortFunc(out, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return out
}

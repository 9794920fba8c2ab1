// Package keyset holds the keys a signer serves: the Set of loaded keys (swapped atomically as a
// whole), the Loader that fills it from the operator's key sources at start and on every hot
// reload, and the Managed directory of keys imported through the keymanager API.
//
// It depends only on the keystore contract and the standard library: no metrics library, no
// slashing protection. The loader reports through the Observer interface declared here (its
// Prometheus implementation is keysetmetrics); the keymanager service that imports and deletes
// keys with their slashing history is signer/keymanager.
package keyset

import (
	"bytes"
	"slices"
	"sync/atomic"

	"github.com/vigil-signer/vigil/keystore"
)

// Set is the set of loaded keys, swapped atomically as a whole (reload never exposes a half-
// built set). Lookups are lock-free.
type Set struct {
	m atomic.Pointer[map[keystore.PublicKey]keystore.Key]
}

// New returns a set holding keys (later duplicates of a public key are ignored).
func New(keys []keystore.Key) *Set {
	s := &Set{}
	s.Replace(keys)
	return s
}

// Replace swaps in a new set of keys.
func (s *Set) Replace(keys []keystore.Key) {
	m := make(map[keystore.PublicKey]keystore.Key, len(keys))
	for _, k := range keys {
		if _, dup := m[k.PublicKey()]; !dup {
			m[k.PublicKey()] = k
		}
	}
	s.m.Store(&m)
}

// Get returns the key for pub.
func (s *Set) Get(pub keystore.PublicKey) (keystore.Key, bool) {
	k, ok := (*s.m.Load())[pub]
	return k, ok
}

// Len is the number of keys.
func (s *Set) Len() int { return len(*s.m.Load()) }

// PublicKeys lists the public keys in byte order.
func (s *Set) PublicKeys() []keystore.PublicKey {
	m := *s.m.Load()
	out := make([]keystore.PublicKey, 0, len(m))
	for pk := range m {
		out = append(out, pk)
	}
	slices.SortFunc(out, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// update swaps the set for fn(current) atomically: a concurrent Replace is never overwritten
// (fn is run again on the new set). fn must not modify its argument.
func (s *Set) update(fn func(old map[keystore.PublicKey]keystore.Key) map[keystore.PublicKey]keystore.Key) {
	for {
		old := s.m.Load()
		next := fn(*old)
		if s.m.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Add adds keys whose public key is not in the set yet, in one atomic swap (a concurrent swap is
// never lost).
func (s *Set) Add(keys []keystore.Key) {
	if len(keys) == 0 {
		return
	}
	s.update(func(old map[keystore.PublicKey]keystore.Key) map[keystore.PublicKey]keystore.Key {
		m := make(map[keystore.PublicKey]keystore.Key, len(old)+len(keys))
		for pk, k := range old {
			m[pk] = k
		}
		for _, k := range keys {
			if _, dup := m[k.PublicKey()]; !dup {
				m[k.PublicKey()] = k
			}
		}
		return m
	})
}

// RemoveIf removes, in one atomic swap, the keys of keys that are still exactly the given key
// objects, and returns the ones it removed.
func (s *Set) RemoveIf(keys map[keystore.PublicKey]keystore.Key) map[keystore.PublicKey]keystore.Key {
	var removed map[keystore.PublicKey]keystore.Key
	s.update(func(old map[keystore.PublicKey]keystore.Key) map[keystore.PublicKey]keystore.Key {
		removed = map[keystore.PublicKey]keystore.Key{}
		m := make(map[keystore.PublicKey]keystore.Key, len(old))
		for pk, k := range old {
			if want, ok := keys[pk]; ok && want == k {
				removed[pk] = k
				continue
			}
			m[pk] = k
		}
		return m
	})
	return removed
}

// Package keystoretest is the conformance suite every keystore.Store (the local keyring, Vault,
// an HSM) runs against its real backend.
package keystoretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
)

// Backend opens handles on one backend that is empty when RunStore starts. Each call of Open
// returns a new handle (a new client, session pool or file reader) on the same stored keys, so the
// suite can check that what one handle wrote, another one reads. The subtests share the backend
// and use disjoint keys. The suite closes nothing: register cleanups with t.
type Backend struct {
	Open func(t *testing.T) keystore.Store
}

// Key returns the deterministic test secret key number i (not an interop key, so that tests of
// different packages never collide with dev keys).
func Key(t testing.TB, i int) *keystore.SecretKey {
	t.Helper()
	seed := sha256.Sum256(fmt.Appendf(nil, "vigil keystoretest key %d", i))
	seed[0] &= 0x3f // below the curve order
	sk, err := keystore.NewSecretKey(seed[:])
	if err != nil {
		t.Fatalf("test key %d: %v", i, err)
	}
	return sk
}

// RunStore runs the conformance suite.
func RunStore(t *testing.T, b Backend) {
	t.Run("Empty", func(t *testing.T) {
		s := b.Open(t)
		ctx := context.Background()
		pubs, err := s.List(ctx)
		if err != nil || len(pubs) != 0 {
			t.Fatalf("List on an empty store = %v, %v; want none", pubs, err)
		}
		res, err := s.Load(ctx)
		if err != nil || len(res.Keys) != 0 || len(res.Errors) != 0 {
			t.Fatalf("Load on an empty store = %d keys, %v, %v; want nothing", len(res.Keys), res.Errors, err)
		}
		if s.Name() == "" {
			t.Fatal("Name is empty")
		}
	})
	t.Run("PutLoadSign", func(t *testing.T) {
		ctx := context.Background()
		s := b.Open(t)
		var want []keystore.PublicKey
		sks := map[keystore.PublicKey]*keystore.SecretKey{}
		for i := range 3 {
			sk := Key(t, i)
			if err := s.Put(ctx, sk); err != nil {
				t.Fatalf("Put key %d: %v", i, err)
			}
			want = append(want, sk.PublicKey())
			sks[sk.PublicKey()] = sk
		}
		for _, h := range []keystore.Store{s, b.Open(t)} { // the writer and a new handle
			pubs, err := h.List(ctx)
			if err != nil || !slices.IsSortedFunc(pubs, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) }) {
				t.Fatalf("List = %v, %v; want sorted public keys", pubs, err)
			}
			for _, pk := range want {
				if !slices.Contains(pubs, pk) {
					t.Fatalf("List lacks stored key %s", pk)
				}
			}
			checkLoad(t, h, sks, nil)
		}
	})
	t.Run("DuplicateLeavesKey", func(t *testing.T) {
		ctx := context.Background()
		s := b.Open(t)
		sk := Key(t, 10)
		if err := s.Put(ctx, sk); err != nil {
			t.Fatal(err)
		}
		err := s.Put(ctx, Key(t, 10))
		if !errors.Is(err, keystore.ErrDuplicate) {
			t.Fatalf("second Put = %v; want ErrDuplicate", err)
		}
		checkLoad(t, s, map[keystore.PublicKey]*keystore.SecretKey{sk.PublicKey(): sk}, nil)
	})
	t.Run("Delete", func(t *testing.T) {
		ctx := context.Background()
		s := b.Open(t)
		a, c := Key(t, 20), Key(t, 21)
		for _, sk := range []*keystore.SecretKey{a, c} {
			if err := s.Put(ctx, sk); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, a.PublicKey()); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Delete(ctx, a.PublicKey()); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("second Delete = %v; want ErrNotFound", err)
		}
		if err := s.Delete(ctx, Key(t, 22).PublicKey()); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("Delete of a never-stored key = %v; want ErrNotFound", err)
		}
		pubs, err := b.Open(t).List(ctx)
		if err != nil || slices.Contains(pubs, a.PublicKey()) || !slices.Contains(pubs, c.PublicKey()) {
			t.Fatalf("List after Delete = %v, %v; want %s gone and %s kept", pubs, err, a.PublicKey(), c.PublicKey())
		}
		checkLoad(t, b.Open(t), map[keystore.PublicKey]*keystore.SecretKey{c.PublicKey(): c}, []keystore.PublicKey{a.PublicKey()})
		// A deleted key can be stored again.
		if err := s.Put(ctx, a); err != nil {
			t.Fatalf("Put after Delete: %v", err)
		}
	})
	t.Run("ConcurrentPut", func(t *testing.T) {
		ctx := context.Background()
		s := b.Open(t)
		const n = 32
		sks := map[keystore.PublicKey]*keystore.SecretKey{}
		errs := make([]error, n)
		keys := make([]*keystore.SecretKey, n)
		for i := range n {
			keys[i] = Key(t, 100+i)
			sks[keys[i].PublicKey()] = keys[i]
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.Put(ctx, keys[i]) })
		}
		// The same key from many goroutines: exactly one Put wins.
		dup := Key(t, 99)
		var dupErrs [8]error
		for i := range dupErrs {
			wg.Go(func() { dupErrs[i] = s.Put(ctx, dup) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent Put %d: %v", i, err)
			}
		}
		won := 0
		for _, err := range dupErrs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, keystore.ErrDuplicate):
				t.Fatalf("racing Put of one key: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d racing Puts of one key succeeded; want exactly 1", won)
		}
		sks[dup.PublicKey()] = dup
		checkLoad(t, b.Open(t), sks, nil)
	})
}

// checkLoad loads s and checks that it loads without errors, holds every key of want, each signing
// like its secret, and none of absent.
func checkLoad(t *testing.T, s keystore.Store, want map[keystore.PublicKey]*keystore.SecretKey, absent []keystore.PublicKey) {
	t.Helper()
	res, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(res.Errors) != 0 {
		t.Fatalf("Load errors: %v", res.Errors)
	}
	root := sha256.Sum256([]byte("keystoretest root"))
	seen := map[keystore.PublicKey]bool{}
	for _, k := range res.Keys {
		if seen[k.PublicKey()] {
			t.Fatalf("Load gave key %s twice", k.PublicKey())
		}
		seen[k.PublicKey()] = true
		if slices.Contains(absent, k.PublicKey()) {
			t.Fatalf("Load gave deleted key %s", k.PublicKey())
		}
		sk, ok := want[k.PublicKey()]
		if !ok {
			continue // another subtest's key
		}
		sig, err := k.Sign(context.Background(), root)
		if err != nil {
			t.Fatalf("Sign with %s: %v", k.PublicKey(), err)
		}
		if sig != sk.SignRoot(root) || !keystore.Verify(k.PublicKey(), root[:], sig) {
			t.Fatalf("key %s signs differently from its secret", k.PublicKey())
		}
	}
	for pk := range want {
		if !seen[pk] {
			t.Fatalf("Load lacks stored key %s", pk)
		}
	}
}

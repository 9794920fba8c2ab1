package keyset

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/vigil-signer/vigil/keystore"
)

// SharedStore is the pair's shared keystore table as a keystore.Store: the target of `vigil keys
// import --to shared`. A key put here is written to the table the keymanager's keystores live in
// (the EIP-2335 JSON as imported, its password sealed under the pair's KEK), so every instance of
// the pair brings it into its managed directory and signs with it when it leads, exactly like a
// key imported through the keymanager API on the leader; a delete leaves a tombstone that every
// instance follows. Unlike a local keyring it is one store for the whole pair.
type SharedStore struct {
	tbl SharedKeystores
	kek *KEK
	by  string
}

var _ keystore.Store = (*SharedStore)(nil)

// NewSharedStore is the shared table tbl with the pair's kek; by names the writer in the rows.
func NewSharedStore(tbl SharedKeystores, kek *KEK, by string) *SharedStore {
	return &SharedStore{tbl: tbl, kek: kek, by: by}
}

// Name implements keystore.Source.
func (s *SharedStore) Name() string { return "shared" }

// sharedKDF protects keystores Put from a bare secret: their password is 32 random bytes, so the
// KDF adds nothing to their strength and is kept cheap (instances decrypt them at every load).
var sharedKDF = keystore.KDFParams{Function: keystore.KDFPBKDF2, C: 2}

// Put implements keystore.Store: sk goes into a new EIP-2335 keystore under a random password.
func (s *SharedStore) Put(ctx context.Context, sk *keystore.SecretKey) error {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	password := make([]byte, hex.EncodedLen(len(raw)))
	hex.Encode(password, raw)
	clear(raw)
	defer clear(password)
	js, err := keystore.Encrypt(sk, password, sharedKDF, "")
	if err != nil {
		return err
	}
	return s.PutKeystore(ctx, sk.PublicKey(), js, password)
}

// PutKeystore stores an EIP-2335 keystore as it is, with its password (which the caller has
// checked unlocks it for pk). An error wrapping keystore.ErrDuplicate when pk is stored.
func (s *SharedStore) PutKeystore(ctx context.Context, pk keystore.PublicKey, keystoreJSON, password []byte) error {
	sealed, err := s.kek.seal(pk, password)
	if err != nil {
		return err
	}
	added, err := s.tbl.AddManagedKeystore(ctx, SharedKeystore{PublicKey: pk, Keystore: keystoreJSON, Sealed: sealed, KEKID: s.kek.ID()}, s.by)
	switch {
	case err != nil:
		return fmt.Errorf("%w: shared keystore table: %w", keystore.ErrUnavailable, err)
	case !added:
		return fmt.Errorf("%w: %s is in the shared keystore table", keystore.ErrDuplicate, pk)
	}
	return nil
}

// Delete implements keystore.Store: the key's row becomes a tombstone.
func (s *SharedStore) Delete(ctx context.Context, pk keystore.PublicKey) error {
	have, err := s.List(ctx)
	if err != nil {
		return err
	}
	if _, found := slices.BinarySearchFunc(have, pk, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) }); !found {
		return fmt.Errorf("%w: %s", keystore.ErrNotFound, pk)
	}
	if err := s.tbl.DeleteManagedKeystore(ctx, pk, s.by); err != nil {
		return fmt.Errorf("%w: shared keystore table: %w", keystore.ErrUnavailable, err)
	}
	return nil
}

// List implements keystore.Store: the keys with a row that is not a tombstone, in byte order.
func (s *SharedStore) List(ctx context.Context) ([]keystore.PublicKey, error) {
	rows, err := s.tbl.ManagedKeystores(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: shared keystore table: %w", keystore.ErrUnavailable, err)
	}
	var out []keystore.PublicKey
	for _, r := range rows {
		if r.Keystore != nil {
			out = append(out, r.PublicKey)
		}
	}
	slices.SortFunc(out, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// Load implements keystore.Source: every row unsealed and decrypted as an instance would (a row
// sealed under another KEK, or one that does not decrypt, is a LoadError naming its key).
func (s *SharedStore) Load(ctx context.Context) (keystore.LoadResult, error) {
	rows, err := s.tbl.ManagedKeystores(ctx)
	if err != nil {
		return keystore.LoadResult{}, fmt.Errorf("%w: shared keystore table: %w", keystore.ErrUnavailable, err)
	}
	var res keystore.LoadResult
	for _, r := range rows {
		if r.Keystore == nil {
			continue
		}
		fail := func(err error) {
			res.Errors = append(res.Errors, keystore.LoadError{Item: r.PublicKey.String(), Pubkey: r.PublicKey, Err: err})
		}
		if r.KEKID != s.kek.ID() {
			fail(fmt.Errorf("its password is sealed under key-encryption key %s, not %s", r.KEKID, s.kek.ID()))
			continue
		}
		pw, err := s.kek.open(r.PublicKey, r.Sealed)
		if err != nil {
			fail(fmt.Errorf("cannot unseal its password (wrong key-encryption key or a damaged row): %w", err))
			continue
		}
		ks, err := keystore.ParseKeystore(r.Keystore)
		if err != nil {
			clear(pw)
			fail(err)
			continue
		}
		sk, err := ks.Decrypt(pw)
		clear(pw)
		if err != nil {
			fail(err)
			continue
		}
		if sk.PublicKey() != r.PublicKey {
			sk.Zero()
			fail(keystore.ErrPubkeyMismatch)
			continue
		}
		res.Keys = append(res.Keys, keystore.NewLocalKey(sk))
	}
	return res, nil
}

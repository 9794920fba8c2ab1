// Package keystore is the key-source contract and its built-in sources.
//
// A Source produces Keys; a Key signs 32-byte signing roots and nothing else
// (the contract is kept this narrow so that keys whose secret never leaves a
// device — an HSM with a vendor BLS mechanism — fit behind it unchanged).
//
// Invariants:
//   - A source that fails for one item reports that item in LoadResult.Errors
//     by name (file name, path) and still returns every other key.
//   - Secrets never appear in errors, logs or metrics; key bytes read from disk
//     are zeroed after the key object has been built.
//   - Keys returned by a source are safe for concurrent use.
package keystore

import (
	"context"
	"errors"
	"fmt"
)

// Key signs signing roots with one BLS secret key.
type Key interface {
	PublicKey() PublicKey
	// Sign signs the 32-byte signing root. It does no slashing checks.
	Sign(ctx context.Context, root [32]byte) (Signature, error)
}

// Source loads a set of keys (a keystore directory, raw key files, Vault, an HSM).
type Source interface {
	// Name identifies the source in health reports and metrics (bounded set, no secrets).
	Name() string
	// Load reads every key of the source. A returned error means the source as a
	// whole failed; per-item failures go into LoadResult.Errors.
	Load(ctx context.Context) (LoadResult, error)
}

// LoadResult is what one Load produced.
type LoadResult struct {
	Keys   []Key
	Errors []LoadError
}

// LoadError names one item (file, path) that could not be loaded.
type LoadError struct {
	Item string // file name or path, never secret material
	// Pubkey is the public key the item declares (keystore "pubkey" field, a Vault path or an HSM
	// label naming it), zero when the item could not be read far enough to know it. A reload keeps
	// the previously loaded key of a failing item it can name instead of dropping it.
	Pubkey PublicKey
	Err    error
}

func (e LoadError) Error() string { return fmt.Sprintf("%s: %v", e.Item, e.Err) }
func (e LoadError) Unwrap() error { return e.Err }

// Errors shared by the sources.
var (
	// ErrWrongPassword: the keystore checksum did not match (wrong password or corrupt ciphertext).
	ErrWrongPassword = errors.New("wrong password or corrupt keystore (checksum mismatch)")
	// ErrMalformed: the keystore or key file is not in a supported format.
	ErrMalformed = errors.New("malformed key file")
	// ErrPubkeyMismatch: the decrypted secret does not belong to the declared public key.
	ErrPubkeyMismatch = errors.New("secret key does not match declared public key")
	// ErrStrayItem: the item is not a key of the source at all (a file or secret whose name is not
	// a public key). It is reported, but it can never stand for a loaded key, so a reload does not
	// hold back removals because of it.
	ErrStrayItem = errors.New("not a key of this source")
	// ErrDuplicate: a Store already holds a key with this public key (it is left unchanged).
	ErrDuplicate = errors.New("key already stored")
	// ErrNotFound: a Store holds no key with this public key.
	ErrNotFound = errors.New("key not stored")
	// ErrUnavailable: the backend of a source (Vault, an HSM) cannot be reached or refused the
	// session (sealed, token missing, not logged in); retrying later may succeed.
	ErrUnavailable = errors.New("key source unavailable")
)

// Store is a Source that can also hold new keys: the targets of `vigil keys import`, `keys list`
// and `keys delete` (the local keyring, Vault, an HSM). Implementations are safe for concurrent
// use and pass keystoretest.RunStore.
type Store interface {
	Source
	// Put stores sk under its public key. When that public key is already stored it returns an
	// error wrapping ErrDuplicate and leaves the stored key unchanged.
	Put(ctx context.Context, sk *SecretKey) error
	// Delete removes the key of pub; an error wrapping ErrNotFound when none is stored.
	Delete(ctx context.Context, pub PublicKey) error
	// List returns the stored public keys in byte order, without decrypting anything where the
	// backend allows.
	List(ctx context.Context) ([]PublicKey, error)
}

// LocalKey is a Key whose secret is held in process memory.
type LocalKey struct{ sk *SecretKey }

// NewLocalKey wraps a secret key.
func NewLocalKey(sk *SecretKey) *LocalKey { return &LocalKey{sk: sk} }

// PublicKey returns the public key.
func (k *LocalKey) PublicKey() PublicKey { return k.sk.PublicKey() }

// Sign signs root; it never fails for an in-memory key.
func (k *LocalKey) Sign(_ context.Context, root [32]byte) (Signature, error) {
	return k.sk.SignRoot(root), nil
}

// Zero wipes the secret. Call only when no Sign can be in flight.
func (k *LocalKey) Zero() { k.sk.Zero() }

var _ Key = (*LocalKey)(nil)

package keyset

// Keys that follow the leader of an HA pair: keystores imported through the keymanager API are
// kept in the shared database as well as in the managed directory, so the other instance loads
// them when it takes over. The database row holds the EIP-2335 JSON as imported and its password
// sealed (AES-256-GCM) under a key-encryption key that both instances are given and the
// database never sees; the managed directory of each instance is a local copy that Sync brings
// in line with the rows (the database wins; a delete leaves a tombstone row).

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

// SharedKeystore is one row of the shared keystore table. Keystore and Sealed are nil for a
// tombstone (a deleted key).
type SharedKeystore struct {
	PublicKey keystore.PublicKey
	Keystore  []byte
	Sealed    []byte // nonce || AES-256-GCM ciphertext of the password, additional data the public key
	KEKID     string
}

// SharedKeystores is where the pair keeps its imported keystores (slashing/postgres.Store).
type SharedKeystores interface {
	PutManagedKeystore(ctx context.Context, k SharedKeystore, by string) error
	// AddManagedKeystore writes k only when its key has no row (or a tombstone); of racing adds
	// of one key exactly one reports added.
	AddManagedKeystore(ctx context.Context, k SharedKeystore, by string) (added bool, err error)
	DeleteManagedKeystore(ctx context.Context, pk keystore.PublicKey, by string) error
	ManagedKeystores(ctx context.Context) ([]SharedKeystore, error)
}

// KEK is the pair's key-encryption key for keystore passwords.
type KEK struct {
	aead cipher.AEAD
	id   string
}

// LoadKEK reads a key-encryption key file: 32 bytes written as 64 hex digits (surrounding white
// space ignored). Generate one with `openssl rand -hex 32`.
func LoadKEK(path string) (*KEK, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	clear(raw)
	if err != nil || len(key) != 32 {
		return nil, errors.New("key-encryption key: the file must hold 32 bytes as 64 hex digits (openssl rand -hex 32)")
	}
	defer clear(key)
	return NewKEK(key)
}

// NewKEK makes a KEK of a 32-byte key.
func NewKEK(key []byte) (*KEK, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("vigil key-encryption key id\x00"), key...))
	return &KEK{aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

// ID fingerprints the key (never the key): rows sealed under another key are named, not guessed.
func (k *KEK) ID() string { return k.id }

func (k *KEK) seal(pk keystore.PublicKey, password []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, password, pk[:]), nil
}

func (k *KEK) open(pk keystore.PublicKey, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed password too short")
	}
	return k.aead.Open(nil, sealed[:n], sealed[n:], pk[:])
}

// Share makes m keep its keystores in shared as well (the HA pair): Write and Remove change the
// shared row first (an import that cannot reach the database fails), and Sync brings the
// directory in line with the rows. by names this instance in the rows.
func (m *Managed) Share(shared SharedKeystores, kek *KEK, by string) {
	m.mu.Lock()
	m.shared, m.kek, m.by = shared, kek, by
	m.mu.Unlock()
}

// sharedTimeout bounds one shared-keystore write (Write and Remove take no context).
const sharedTimeout = 10 * time.Second

func (m *Managed) putShared(pk keystore.PublicKey, keystoreJSON, password []byte) error {
	m.mu.Lock()
	shared, kek, by := m.shared, m.kek, m.by
	m.mu.Unlock()
	if shared == nil {
		return nil
	}
	sealed, err := kek.seal(pk, password)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := shared.PutManagedKeystore(ctx, SharedKeystore{PublicKey: pk, Keystore: keystoreJSON, Sealed: sealed, KEKID: kek.ID()}, by); err != nil {
		return fmt.Errorf("shared keystore table: %w", err)
	}
	return nil
}

func (m *Managed) deleteShared(pk keystore.PublicKey) error {
	m.mu.Lock()
	shared, by := m.shared, m.by
	m.mu.Unlock()
	if shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := shared.DeleteManagedKeystore(ctx, pk, by); err != nil {
		return fmt.Errorf("shared keystore table: %w", err)
	}
	return nil
}

// SyncResult says what Sync changed in the directory.
type SyncResult struct {
	Written, Removed, Uploaded int
	Errors                     []error // per key; the other keys are synced
}

// Changed reports whether the directory changed (the keys need a reload).
func (r SyncResult) Changed() bool { return r.Written+r.Removed > 0 }

// Sync brings the managed directory in line with the shared rows: a row's keystore missing or
// different here is written (password unsealed), a tombstone's files are removed. With upload
// (the leader), a keystore here that has no row at all (imported before the pair shared its keys)
// is uploaded. It does not load keys: the caller reloads when Changed.
func (m *Managed) Sync(ctx context.Context, upload bool) (SyncResult, error) {
	m.mu.Lock()
	shared, kek := m.shared, m.kek
	m.mu.Unlock()
	var res SyncResult
	if shared == nil {
		return res, nil
	}
	rows, err := shared.ManagedKeystores(ctx)
	if err != nil {
		return res, fmt.Errorf("shared keystore table: %w", err)
	}
	seen := map[keystore.PublicKey]bool{}
	for _, r := range rows {
		seen[r.PublicKey] = true
		local, lerr := os.ReadFile(m.keystorePath(r.PublicKey))
		if r.Keystore == nil { // tombstone
			if lerr == nil {
				if err := m.removeFiles(r.PublicKey); err != nil {
					res.Errors = append(res.Errors, fmt.Errorf("%s: %w", r.PublicKey, err))
					continue
				}
				res.Removed++ // the entry goes with the next load (Loader.ReloadManaged)
			}
			continue
		}
		if lerr == nil && bytes.Equal(local, r.Keystore) {
			continue
		}
		if r.KEKID != kek.ID() {
			res.Errors = append(res.Errors, fmt.Errorf("%s: its password is sealed under key-encryption key %s, this instance has %s: give both instances the same --ha-key-encryption-key-file", r.PublicKey, r.KEKID, kek.ID()))
			continue
		}
		pw, err := kek.open(r.PublicKey, r.Sealed)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("%s: cannot unseal its password (wrong key-encryption key or a damaged row): %w", r.PublicKey, err))
			continue
		}
		err = m.writeFiles(r.PublicKey, r.Keystore, pw)
		clear(pw)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("%s: %w", r.PublicKey, err))
			continue
		}
		res.Written++
	}
	if upload {
		for pk := range m.current() {
			if seen[pk] {
				continue
			}
			ks, err1 := os.ReadFile(m.keystorePath(pk))
			pw, err2 := os.ReadFile(m.passwordPath(pk))
			if err := errors.Join(err1, err2); err != nil {
				continue // not a file of this directory's layout
			}
			err := m.putShared(pk, ks, bytes.TrimRight(pw, "\r\n"))
			clear(pw)
			if err != nil {
				res.Errors = append(res.Errors, fmt.Errorf("%s: upload: %w", pk, err))
				continue
			}
			res.Uploaded++
		}
	}
	return res, nil
}

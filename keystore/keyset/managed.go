package keyset

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/vigil-signer/vigil/keystore"
)

// Managed is the directory of keys imported through the keymanager API:
// <dir>/keystores/<0x-pubkey>.json (the EIP-2335 keystore as it was imported) and
// <dir>/passwords/<0x-pubkey>.txt (its password), both mode 0600, written atomically (temporary
// file, fsync, rename, directory fsync). The file names follow keystore.DirSource's rule
// (password of "<name>.json" in "<name>.txt"), so Managed loads the directory with a
// DirSource and is itself a keystore.Source, wired in at startup like any other source; it
// remembers which key objects it loaded so that the keymanager can tell its keys from readonly
// ones.
type Managed struct {
	dir     string
	workers int

	mu      sync.Mutex
	entries map[keystore.PublicKey]ManagedKey
	shared  SharedKeystores // nil: this directory only (Share, shared.go)
	kek     *KEK
	by      string
}

// ManagedKey is a key the keymanager holds, with the derivation path its keystore declares.
type ManagedKey struct {
	Key  keystore.Key
	Path string // EIP-2334 derivation path from the keystore ("" when unknown)
}

// NewManaged returns the managed key directory rooted at dir (created at the first Load or
// import). workers bounds parallel decryption at Load (0: GOMAXPROCS).
func NewManaged(dir string, workers int) *Managed {
	return &Managed{dir: dir, workers: workers, entries: map[keystore.PublicKey]ManagedKey{}}
}

// Dir is the root directory.
func (m *Managed) Dir() string { return m.dir }

// KeystoresDir holds the imported keystores.
func (m *Managed) KeystoresDir() string { return filepath.Join(m.dir, "keystores") }

// PasswordsDir holds their passwords.
func (m *Managed) PasswordsDir() string { return filepath.Join(m.dir, "passwords") }

func (m *Managed) keystorePath(pk keystore.PublicKey) string {
	return filepath.Join(m.KeystoresDir(), pk.String()+".json")
}

func (m *Managed) passwordPath(pk keystore.PublicKey) string {
	return filepath.Join(m.PasswordsDir(), pk.String()+".txt")
}

// Name implements keystore.Source.
func (m *Managed) Name() string { return "keymanager" }

// Load implements keystore.Source: it creates the directories if needed and loads every keystore
// in them with keystore.DirSource's rules (per-file failures are LoadErrors).
func (m *Managed) Load(ctx context.Context) (keystore.LoadResult, error) {
	if err := m.mkdirs(); err != nil {
		return keystore.LoadResult{}, err
	}
	src, err := keystore.NewDirSource(keystore.DirConfig{
		KeystoresPath: m.KeystoresDir(), PasswordsPath: m.PasswordsDir(), Workers: m.workers,
	})
	if err != nil {
		return keystore.LoadResult{}, err
	}
	res, err := src.Load(ctx)
	if err != nil {
		return res, err
	}
	entries := make(map[keystore.PublicKey]ManagedKey, len(res.Keys))
	for _, k := range res.Keys {
		e := ManagedKey{Key: k}
		// Files are named after their key; the derivation path is informational, so a keystore
		// under another name simply has none (parsing runs no KDF).
		if data, err := os.ReadFile(m.keystorePath(k.PublicKey())); err == nil {
			if ks, err := keystore.ParseKeystore(data); err == nil {
				e.Path = ks.Path
			}
		}
		entries[k.PublicKey()] = e
	}
	m.mu.Lock()
	m.entries = entries
	m.mu.Unlock()
	return res, nil
}

func (m *Managed) mkdirs() error {
	for _, d := range []string{m.dir, m.KeystoresDir(), m.PasswordsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("keymanager directory: %w", err)
		}
	}
	return nil
}

// Lookup returns the entry the keymanager holds for pk.
func (m *Managed) Lookup(pk keystore.PublicKey) (ManagedKey, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[pk]
	return e, ok
}

// Remember records a key the keymanager imported.
func (m *Managed) Remember(pk keystore.PublicKey, e ManagedKey) {
	m.mu.Lock()
	m.entries[pk] = e
	m.mu.Unlock()
}

// current returns the keys the keymanager holds now.
func (m *Managed) current() map[keystore.PublicKey]keystore.Key {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[keystore.PublicKey]keystore.Key, len(m.entries))
	for pk, e := range m.entries {
		out[pk] = e.Key
	}
	return out
}

// Forget drops the entry of pk (its files stay until Remove).
func (m *Managed) Forget(pk keystore.PublicKey) {
	m.mu.Lock()
	delete(m.entries, pk)
	m.mu.Unlock()
}

// Persisted reports whether a keystore file for pk exists.
func (m *Managed) Persisted(pk keystore.PublicKey) bool {
	_, err := os.Lstat(m.keystorePath(pk))
	return err == nil
}

// Write persists a keystore and its password: the password first, so that a keystore file is
// never visible without it. With a shared table (Share), the row is written first: an import
// the other instance of the pair would not see fails.
func (m *Managed) Write(pk keystore.PublicKey, keystoreJSON, password []byte) error {
	if err := m.putShared(pk, keystoreJSON, password); err != nil {
		return err
	}
	return m.writeFiles(pk, keystoreJSON, password)
}

func (m *Managed) writeFiles(pk keystore.PublicKey, keystoreJSON, password []byte) error {
	if err := m.mkdirs(); err != nil {
		return err
	}
	line := make([]byte, 0, len(password)+1)
	line = append(append(line, password...), '\n')
	err := keystore.WriteFileAtomic(m.passwordPath(pk), line)
	clear(line)
	if err != nil {
		return err
	}
	if err := keystore.WriteFileAtomic(m.keystorePath(pk), keystoreJSON); err != nil {
		_ = os.Remove(m.passwordPath(pk))
		return err
	}
	return nil
}

// Remove deletes a key's files: the keystore first (a password file alone loads nothing). With a
// shared table (Share), its row becomes a tombstone first.
func (m *Managed) Remove(pk keystore.PublicKey) error {
	if err := m.deleteShared(pk); err != nil {
		return err
	}
	return m.removeFiles(pk)
}

func (m *Managed) removeFiles(pk keystore.PublicKey) error {
	for _, p := range []string{m.keystorePath(pk), m.passwordPath(pk)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", filepath.Base(p), err)
		}
	}
	keystore.SyncDir(m.KeystoresDir())
	keystore.SyncDir(m.PasswordsDir())
	return nil
}

var _ keystore.Source = (*Managed)(nil)

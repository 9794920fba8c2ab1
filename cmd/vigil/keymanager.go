package main

// Wiring of the keymanager API (/eth/v1/keystores) into `vigil serve`: its flags, the bearer
// token file, the managed key directory as a key source, and the api options.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/signer/keymanager"
	"github.com/vigil-signer/vigil/slashing"
)

var _ api.KeyManager = (*keymanager.Manager)(nil)

// keyManagerFlags are the serve flags of the keymanager API.
type keyManagerFlags struct {
	enabled      bool
	tokenFile    string
	maxBodyBytes int64
}

func (f *keyManagerFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "key-manager-api-enabled", false, "serve the keymanager API (GET/POST/DELETE /eth/v1/keystores) on the signing listener, behind a bearer token")
	fs.StringVar(&f.tokenFile, "key-manager-api-token-file", "", "file holding the keymanager API bearer token; created with a random token (mode 0600) if missing (default <data-dir>/keymanager-token)")
	fs.Int64Var(&f.maxBodyBytes, "key-manager-api-max-body-bytes", api.DefaultKeyManagerMaxBodyBytes, "largest accepted keymanager request body (keystores plus slashing-protection interchange)")
}

// keyManagerDir is where keys imported through the API are persisted.
func keyManagerDir(dataDir string) string { return filepath.Join(dataDir, "keymanager") }

// managedKeys returns the key source of the keys imported through the keymanager API, or nil
// when the API is off and nothing was ever imported. Imported keys keep loading when the API is
// later switched off: they are part of the signer's keys until deleted.
func (f *keyManagerFlags) managedKeys(dataDir string) (*keyset.Managed, error) {
	if f.maxBodyBytes < 1024 {
		return nil, usagef("--key-manager-api-max-body-bytes must be at least 1024")
	}
	dir := keyManagerDir(dataDir)
	if !f.enabled {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return keyset.NewManaged(dir, 0), nil
}

// wire builds the KeyManager and fills the api options when the API is enabled. It returns the
// token file's path (never the token) and the KeyManager (nil when the API is off).
func (f *keyManagerFlags) wire(o *api.Options, dataDir string, managed *keyset.Managed, keys *keyset.Set, store slashing.Store, log *slog.Logger) (string, *keymanager.Manager, error) {
	if !f.enabled {
		return "", nil, nil
	}
	km, err := keymanager.New(keymanager.Config{Managed: managed, Keys: keys, Store: store, Logger: log})
	if err != nil {
		return "", nil, err
	}
	path := f.tokenFile
	if path == "" {
		path = filepath.Join(dataDir, "keymanager-token")
	}
	token, created, err := keyManagerToken(path)
	if err != nil {
		return "", nil, fmt.Errorf("--key-manager-api-token-file: %w", err)
	}
	if created {
		log.Info("keymanager API token created", "file", path)
	} else if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("keymanager API token file is readable by other users; chmod 600 it", "file", path, "mode", fi.Mode().Perm().String())
	}
	o.KeyManager = km
	o.KeyManagerToken = token
	o.KeyManagerMaxBodyBytes = f.maxBodyBytes
	return path, km, nil
}

// keyManagerToken reads the bearer token from path (surrounding whitespace trimmed), or, when the
// file does not exist, creates it with a random 32-byte hex token, mode 0600, atomically and
// without overwriting a file another process created meanwhile.
func keyManagerToken(path string) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		token = strings.TrimSpace(string(b))
		if token == "" {
			return "", false, fmt.Errorf("%s is empty", path)
		}
		if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", false, fmt.Errorf("%s: the token must be one line without spaces or control characters", path)
		}
		return token, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	var r [32]byte
	rand.Read(r[:])
	token = hex.EncodeToString(r[:])
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(token + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
			return keyManagerToken(path)
		}
		return "", false, err
	}
	return token, true, nil
}

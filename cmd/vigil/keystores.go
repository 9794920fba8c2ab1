package main

// The key stores a key can live in (the local keyring, Vault, an HSM): their flags, shared by
// `vigil serve` (as key sources) and `vigil keys` (as import targets), and how each is opened.
// Secrets (keyring password, Vault token and AppRole secret id, HSM PIN) come from files or the
// environment, never from argv.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

// Environment variables read directly (not flags: a secret never goes on the command line).
const (
	envKeyringPassword = "VIGIL_KEYRING_PASSWORD"
	envVaultToken      = "VAULT_TOKEN"
	envHSMPIN          = "VIGIL_HSM_PIN"
)

type keyStoreFlags struct {
	dataDir *string      // the command's --data-dir
	logger  *slog.Logger // Vault renewal and HSM reconnect notices; nil: none

	keyringPath         string
	keyringPasswordFile string

	vaultAddr         string
	vaultMount        string
	vaultPath         string
	vaultField        string
	vaultTokenFile    string
	vaultRoleIDFile   string
	vaultSecretIDFile string
	vaultAppRoleMount string
	vaultCAFile       string
	vaultNamespace    string
	vaultTimeout      time.Duration

	hsmModule   string
	hsmToken    string
	hsmPINFile  string
	hsmKEKLabel string
	hsmSessions int

	shared sharedStoreFlags // keystores_shared.go; registered by the keys commands only
}

func (f *keyStoreFlags) register(fs *flag.FlagSet, dataDir *string) {
	f.dataDir = dataDir
	fs.StringVar(&f.keyringPath, "keyring-path", "", "local keyring directory written by `vigil keys import --to local` (default <data-dir>/keyring; serve loads it when it exists)")
	fs.StringVar(&f.keyringPasswordFile, "keyring-password-file", "", "file holding the keyring password (or set "+envKeyringPassword+")")

	fs.StringVar(&f.vaultAddr, "vault-address", "", "HashiCorp Vault address (https://host:8200); enables the Vault key source")
	fs.StringVar(&f.vaultMount, "vault-mount", "secret", "Vault KV v2 mount holding the keys")
	fs.StringVar(&f.vaultPath, "vault-path", "vigil/validators", "path under the mount: one secret per key, named 0x<pubkey>")
	fs.StringVar(&f.vaultField, "vault-field", "value", "field of each secret holding the hex secret key")
	fs.StringVar(&f.vaultTokenFile, "vault-token-file", "", "file holding a Vault token (or set "+envVaultToken+")")
	fs.StringVar(&f.vaultRoleIDFile, "vault-approle-role-id-file", "", "file holding an AppRole role_id (AppRole auth instead of a token)")
	fs.StringVar(&f.vaultSecretIDFile, "vault-approle-secret-id-file", "", "file holding the AppRole secret_id")
	fs.StringVar(&f.vaultAppRoleMount, "vault-approle-mount", "approle", "mount of the AppRole auth method")
	fs.StringVar(&f.vaultCAFile, "vault-ca-file", "", "PEM CA bundle that signed Vault's TLS certificate (default: system roots)")
	fs.StringVar(&f.vaultNamespace, "vault-namespace", "", "Vault Enterprise namespace")
	fs.DurationVar(&f.vaultTimeout, "vault-timeout", 10*time.Second, "timeout of each Vault request")

	fs.StringVar(&f.hsmModule, "hsm-module", "", "PKCS#11 module (.so) of the HSM; enables the HSM key source")
	fs.StringVar(&f.hsmToken, "hsm-token-label", "", "label of the HSM token holding the keys")
	fs.StringVar(&f.hsmPINFile, "hsm-pin-file", "", "file holding the token's user PIN (or set "+envHSMPIN+")")
	fs.StringVar(&f.hsmKEKLabel, "hsm-kek-label", "vigil-kek", "label of the AES-256 key-encryption key inside the token")
	fs.IntVar(&f.hsmSessions, "hsm-sessions", 4, "PKCS#11 sessions kept open")
}

func (f *keyStoreFlags) keyringDir() string {
	if f.keyringPath != "" {
		return f.keyringPath
	}
	return filepath.Join(*f.dataDir, "keyring")
}

// secretFrom reads a secret from file (first choice) or the environment variable env; what names
// the secret in errors.
func secretFrom(file, env string, getenv func(string) string, what string) ([]byte, error) {
	if file != "" {
		b, err := keystore.ReadPasswordFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%s: %s is empty", what, file)
		}
		return b, nil
	}
	if v := getenv(env); v != "" {
		return []byte(v), nil
	}
	return nil, usagef("%s: give a file flag or set %s", what, env)
}

// storeKinds are the targets of `vigil keys`.
var storeKinds = []string{"local", "vault", "hsm", "shared"}

// openKeyStore opens one key store. create: make the keyring / HSM key-encryption key when
// missing (import); serve and the read-only commands never create.
func (f *keyStoreFlags) openKeyStore(ctx context.Context, kind string, create bool, getenv func(string) string) (keystore.Store, func(), error) {
	switch kind {
	case "local":
		pw, err := secretFrom(f.keyringPasswordFile, envKeyringPassword, getenv, "keyring password")
		if err != nil {
			return nil, nil, err
		}
		defer clear(pw)
		k, err := keystore.OpenKeyring(keystore.KeyringConfig{Dir: f.keyringDir(), Password: pw, Create: create})
		if err != nil {
			return nil, nil, err
		}
		return k, k.Close, nil
	case "vault":
		return f.openVault(ctx, getenv)
	case "hsm":
		return f.openHSM(ctx, create, getenv)
	case "shared":
		return f.shared.open(ctx)
	}
	return nil, nil, usagef("unknown key store %q (want %s)", kind, strings.Join(storeKinds, ", "))
}

// serveSources returns the configured key stores as key sources for `vigil serve`, each opened
// lazily (a store that cannot be opened at start is reported and retried at every reload, not
// fatal). The keyring is a source when --keyring-path or a keyring password is given, or when
// <data-dir>/keyring exists.
func (f *keyStoreFlags) serveSources(getenv func(string) string) []keystore.Source {
	var out []keystore.Source
	if f.keyringPath != "" || f.keyringPasswordFile != "" || getenv(envKeyringPassword) != "" ||
		exists(filepath.Join(f.keyringDir(), "keyring.json")) {
		out = append(out, f.lazy("local", getenv))
	}
	if f.vaultAddr != "" {
		out = append(out, f.lazy("vault", getenv))
	}
	if f.hsmModule != "" {
		out = append(out, f.lazy("hsm", getenv))
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

func (f *keyStoreFlags) lazy(kind string, getenv func(string) string) *lazySource {
	return &lazySource{name: kind, open: func(ctx context.Context) (keystore.Store, func(), error) {
		return f.openKeyStore(ctx, kind, false, getenv)
	}}
}

// lazySource opens its store at the first Load and again at every Load until opening succeeds.
// For the local keyring, "no keyring yet" is an empty, healthy source until keyring.json first
// appears (keys imported while serve runs are picked up by the next reload); once opened, the
// store stays open, so a keyring that disappears later is a failing source whose keys are kept.
type lazySource struct {
	name string
	open func(ctx context.Context) (keystore.Store, func(), error)

	mu     sync.Mutex
	store  keystore.Store
	close  func()
	closed bool
}

func (s *lazySource) Name() string { return s.name }

func (s *lazySource) Load(ctx context.Context) (keystore.LoadResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return keystore.LoadResult{}, errors.New("key source closed (shutting down)")
	}
	if s.store == nil {
		st, closeFn, err := s.open(ctx)
		if errors.Is(err, keystore.ErrNoKeyring) {
			return keystore.LoadResult{}, nil
		}
		if err != nil {
			return keystore.LoadResult{}, err
		}
		s.store, s.close = st, closeFn
	}
	return s.store.Load(ctx)
}

// Close closes the store if it was opened; later Loads fail.
func (s *lazySource) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.close != nil {
		s.close()
	}
	s.store, s.close, s.closed = nil, nil, true
}

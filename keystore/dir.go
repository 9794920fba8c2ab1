package keystore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// DirSource loads an EIP-2335 keystore directory with Web3Signer's bulk-loading
// semantics (--keystores-path with --keystores-password-file or
// --keystores-passwords-path).
//
// Rules:
//   - Every entry of KeystoresPath whose name ends in ".json" (any case) and
//     that is a regular file, or a symlink to one, is a keystore. Other files
//     are ignored; subdirectories are not entered.
//   - Password: either one password file for all keystores (PasswordFile), or a
//     directory (PasswordsPath) holding "<name>.txt" for keystore
//     "<name>.json". Exactly one of the two is set. A password file is read
//     whole and its trailing "\n"/"\r" characters are removed; nothing else is
//     trimmed (EIP-2335 processing then strips any remaining control codes).
//     Password files are read at every Load, so a reload sees edits.
//   - Reload cache: a keystore whose file bytes and password are exactly those
//     of the previous Load is not decrypted again (the slow KDF runs once per
//     keystore version, not at every reload); the source keeps a private copy
//     of each secret for this and hands out a fresh key object every Load.
//     Entries of files that disappeared or changed are zeroed.
//   - Keystores are decrypted in parallel on Workers goroutines (default
//     GOMAXPROCS). Note the memory: each standard scrypt keystore (n=2^18, r=8)
//     needs 256 MiB while it is being decrypted.
//   - A keystore that cannot be loaded (unreadable, corrupt or truncated JSON,
//     unsupported format, wrong password, missing password file, pubkey
//     mismatch) is one LoadError whose Item is the keystore's path; the others
//     still load. A missing or unreadable single PasswordFile, or an unreadable
//     KeystoresPath, fails the whole Load.
//   - Duplicate public keys: the file first in name order wins; the later ones
//     are LoadErrors.
//   - Keys are *LocalKey, in file-name order. Password buffers are zeroed after
//     the Load; decrypted secret bytes are zeroed inside Decrypt.
type DirSource struct {
	cfg DirConfig

	mu    sync.Mutex // one Load at a time (the cache is rebuilt by each)
	cache decryptCache
}

// DirConfig configures a DirSource.
type DirConfig struct {
	// KeystoresPath is the directory of *.json keystores (--keystores-path).
	KeystoresPath string
	// PasswordFile is one password for every keystore (--keystores-password-file).
	PasswordFile string
	// PasswordsPath is a directory of <name>.txt password files (--keystores-passwords-path).
	PasswordsPath string
	// Workers bounds parallel decryption; 0 means runtime.GOMAXPROCS(0).
	Workers int
}

// Validate checks the configuration without touching the file system.
func (c DirConfig) Validate() error {
	if c.KeystoresPath == "" {
		return errors.New("keystore directory: --keystores-path is required")
	}
	switch {
	case c.PasswordFile == "" && c.PasswordsPath == "":
		return errors.New("keystore directory: one of --keystores-password-file or --keystores-passwords-path is required")
	case c.PasswordFile != "" && c.PasswordsPath != "":
		return errors.New("keystore directory: --keystores-password-file and --keystores-passwords-path are mutually exclusive")
	}
	if c.Workers < 0 {
		return fmt.Errorf("keystore directory: workers must be ≥ 0, got %d", c.Workers)
	}
	return nil
}

// NewDirSource validates cfg and returns the source. Nothing is read until Load.
func NewDirSource(cfg DirConfig) (*DirSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &DirSource{cfg: cfg}, nil
}

// Name implements Source.
func (s *DirSource) Name() string { return "keystore-dir" }

// Load implements Source.
func (s *DirSource) Load(ctx context.Context) (LoadResult, error) {
	files, err := listFiles(s.cfg.KeystoresPath, ".json")
	if err != nil {
		return LoadResult{}, fmt.Errorf("keystore directory: %w", err)
	}
	var shared []byte
	if s.cfg.PasswordFile != "" {
		shared, err = readPasswordFile(s.cfg.PasswordFile)
		if err != nil {
			return LoadResult{}, fmt.Errorf("keystore password file: %w", err)
		}
		defer zero(shared)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.begin()
	defer s.cache.end()
	jobs := make([]loadJob, 0, len(files))
	for _, name := range files {
		path := filepath.Join(s.cfg.KeystoresPath, name)
		jobs = append(jobs, loadJob{item: path, load: func() (*SecretKey, error) {
			data, err := readLimited(path, maxKeystoreSize)
			if err != nil {
				return nil, err
			}
			ks, err := ParseKeystore(data)
			if err != nil {
				return nil, err
			}
			password := shared
			if shared == nil {
				pwPath := filepath.Join(s.cfg.PasswordsPath, strings.TrimSuffix(name, filepath.Ext(name))+".txt")
				if password, err = readPasswordFile(pwPath); err != nil {
					if errors.Is(err, os.ErrNotExist) {
						return nil, withPubkey(ks.PublicKey, fmt.Errorf("no password file %s", pwPath))
					}
					return nil, withPubkey(ks.PublicKey, fmt.Errorf("password file: %w", err))
				}
				defer zero(password)
			}
			sk, err := s.cache.decrypt(path, data, password, ks)
			return sk, withPubkey(ks.PublicKey, err)
		}})
	}
	return runJobs(ctx, s.cfg.Workers, jobs)
}

// readKeystoreFile reads and parses one keystore file (at most 1 MiB).
func readKeystoreFile(path string) (*Keystore, error) {
	data, err := readLimited(path, maxKeystoreSize)
	if err != nil {
		return nil, err
	}
	return ParseKeystore(data)
}

// listFiles returns the sorted names of the regular files and symlinks
// directly in dir whose extension is one of exts (compared
// case-insensitively). Symlinks to directories are left out; dangling ones are
// kept so that loading them reports the problem.
func listFiles(dir string, exts ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if !slices.ContainsFunc(exts, func(x string) bool { return strings.EqualFold(x, ext) }) {
			continue
		}
		switch mode := e.Type(); {
		case mode.IsRegular():
		case mode&os.ModeSymlink != 0:
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
				continue
			}
		default:
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names) // os.ReadDir sorts already; keep the rule explicit
	return names, nil
}

var _ Source = (*DirSource)(nil)

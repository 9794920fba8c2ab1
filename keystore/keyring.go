package keystore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Keyring is the local key store: a directory of keys that `vigil keys import --to local` fills
// once from slow EIP-2335 keystores and that `vigil serve` loads fast.
//
// The one slow step, the password KDF, runs once per Open instead of once per key: a 10,000-key
// keyring costs one scrypt plus 10,000 AES-GCM decryptions and public-key derivations at start.
//
// Layout of the directory (every file mode 0600, written atomically: temporary file, fsync,
// link or rename, directory fsync):
//
//	keyring.json            {"version":1,
//	                         "kdf":{"function":"scrypt","n":262144,"r":8,"p":1,"salt":"<hex>"},
//	                         "check":{"iv":"<hex 12 B>","tag":"<hex 16 B>"}}
//	0x<96 hex pubkey>.key   {"version":1,"pubkey":"0x…","iv":"<hex 12 B>","ciphertext":"<hex 48 B>"}
//
// Cryptography:
//   - master key = KDF(EIP-2335-normalised password, salt), 32 bytes; scrypt n=2^18 r=8 p=1 by
//     default, the EIP-2335 recommendation, so the keyring is as hard to brute-force as the
//     keystores it came from (pbkdf2 is accepted too).
//   - "check" is AES-256-GCM under the master key of an empty plaintext with associated data
//     "vigil-keyring-v1:check": a wrong password is reported as ErrWrongPassword at Open, before
//     any key is touched.
//   - each key file holds AES-256-GCM(master key, random 12-byte IV, the 32-byte secret) with
//     associated data "vigil-keyring-v1:" || the 48-byte public key, so a ciphertext moved to
//     another key's file fails authentication; after decryption the public key derived from the
//     secret must equal the file's (ErrPubkeyMismatch otherwise).
//
// Invariants:
//   - A key file exists completely or not at all; Put never overwrites one (ErrDuplicate), even
//     against a concurrent Put of the same key from another process (link(2) is exclusive).
//   - Load reports every bad file as a LoadError naming the file (and its public key when the
//     name gives it) and still returns every other key.
//   - The master key stays in memory until Close; decrypted secrets are zeroed once the key
//     object is built.
type Keyring struct {
	dir     string
	workers int
	master  []byte
	aead    cipher.AEAD // safe for concurrent use
}

// KeyringConfig configures OpenKeyring.
type KeyringConfig struct {
	Dir      string // the keyring directory
	Password []byte // the keyring password (the caller keeps and zeroes its copy)
	// Create makes a new keyring when Dir holds none (keys import); serve leaves it false so that
	// a wrong path is an error rather than an empty keyring.
	Create bool
	// KDF is used only when creating; zero value: StandardScrypt().
	KDF KDFParams
	// Workers bounds parallel decryption at Load; 0: GOMAXPROCS.
	Workers int
}

const (
	keyringFile    = "keyring.json"
	keyringExt     = ".key"
	keyringVersion = 1
	keyringAAD     = "vigil-keyring-v1:"
)

// ErrNoKeyring: the directory holds no keyring.json.
var ErrNoKeyring = errors.New("no keyring (create one with `vigil keys import --to local`)")

type keyringHeader struct {
	Version int `json:"version"`
	KDF     struct {
		Function string `json:"function"`
		N        uint64 `json:"n,omitempty"`
		R        uint64 `json:"r,omitempty"`
		P        uint64 `json:"p,omitempty"`
		C        uint64 `json:"c,omitempty"`
		Salt     string `json:"salt"`
	} `json:"kdf"`
	Check struct {
		IV  string `json:"iv"`
		Tag string `json:"tag"`
	} `json:"check"`
}

type keyringEntry struct {
	Version    int    `json:"version"`
	Pubkey     string `json:"pubkey"`
	IV         string `json:"iv"`
	Ciphertext string `json:"ciphertext"`
}

// OpenKeyring opens (or, with Create, creates) the keyring in cfg.Dir and derives its master key.
// Errors: ErrNoKeyring, ErrWrongPassword, ErrMalformed (a damaged keyring.json), I/O errors.
func OpenKeyring(cfg KeyringConfig) (*Keyring, error) {
	if cfg.Dir == "" {
		return nil, errors.New("keyring: directory is required")
	}
	if len(cfg.Password) == 0 {
		return nil, errors.New("keyring: password is empty")
	}
	pw, err := NormalizePassword(cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("keyring password: %w", err)
	}
	defer zero(pw)
	headerPath := filepath.Join(cfg.Dir, keyringFile)
	data, err := readLimited(headerPath, 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		if !cfg.Create {
			return nil, fmt.Errorf("keyring %s: %w", cfg.Dir, ErrNoKeyring)
		}
		return createKeyring(cfg, pw)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var h keyringHeader
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("keyring %s: %w: %v", headerPath, ErrMalformed, jsonError("", err))
	}
	if h.Version != keyringVersion {
		return nil, fmt.Errorf("keyring %s: %w: version %d (this build reads %d)", headerPath, ErrMalformed, h.Version, keyringVersion)
	}
	kdf := KDFParams{Function: h.KDF.Function, N: h.KDF.N, R: h.KDF.R, P: h.KDF.P, C: h.KDF.C}
	if kdf.Salt, err = hex.DecodeString(h.KDF.Salt); err != nil || len(kdf.Salt) < 16 {
		return nil, fmt.Errorf("keyring %s: %w: kdf salt is not hex of at least 16 bytes", headerPath, ErrMalformed)
	}
	if err := kdf.Validate(); err != nil {
		return nil, fmt.Errorf("keyring %s: %w: %v", headerPath, ErrMalformed, err)
	}
	iv, err1 := hex.DecodeString(h.Check.IV)
	tag, err2 := hex.DecodeString(h.Check.Tag)
	if err1 != nil || err2 != nil || len(iv) != 12 || len(tag) != 16 {
		return nil, fmt.Errorf("keyring %s: %w: check value is not a 12-byte IV and a 16-byte tag", headerPath, ErrMalformed)
	}
	k, err := newKeyring(cfg, kdf, pw)
	if err != nil {
		return nil, err
	}
	if _, err := k.aead.Open(nil, iv, tag, []byte(keyringAAD+"check")); err != nil {
		k.Close()
		return nil, fmt.Errorf("keyring %s: %w", cfg.Dir, ErrWrongPassword)
	}
	return k, nil
}

func newKeyring(cfg KeyringConfig, kdf KDFParams, pw []byte) (*Keyring, error) {
	master, err := kdf.derive(pw)
	if err != nil {
		return nil, fmt.Errorf("keyring kdf: %w", err)
	}
	block, err := aes.NewCipher(master)
	if err != nil {
		zero(master)
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		zero(master)
		return nil, err
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = defaultWorkers()
	}
	return &Keyring{dir: cfg.Dir, workers: workers, master: master, aead: aead}, nil
}

func createKeyring(cfg KeyringConfig, pw []byte) (*Keyring, error) {
	kdf := cfg.KDF
	if kdf.Function == "" {
		kdf = StandardScrypt()
	}
	kdf.Salt = make([]byte, 32)
	if _, err := rand.Read(kdf.Salt); err != nil {
		return nil, err
	}
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k, err := newKeyring(cfg, kdf, pw)
	if err != nil {
		return nil, err
	}
	var h keyringHeader
	h.Version = keyringVersion
	h.KDF.Function, h.KDF.N, h.KDF.R, h.KDF.P, h.KDF.C = kdf.Function, kdf.N, kdf.R, kdf.P, kdf.C
	h.KDF.Salt = hex.EncodeToString(kdf.Salt)
	iv := make([]byte, 12)
	if _, err := rand.Read(iv); err != nil {
		k.Close()
		return nil, err
	}
	h.Check.IV = hex.EncodeToString(iv)
	h.Check.Tag = hex.EncodeToString(k.aead.Seal(nil, iv, nil, []byte(keyringAAD+"check")))
	data, _ := json.MarshalIndent(h, "", "  ")
	// Exclusive: two importers creating the same keyring at once must not end up with keys under
	// two different master keys. The loser reopens the winner's keyring.
	if err := writeFileExclusive(filepath.Join(cfg.Dir, keyringFile), append(data, '\n')); err != nil {
		k.Close()
		if errors.Is(err, ErrDuplicate) {
			cfg.Create = false
			return OpenKeyring(cfg)
		}
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return k, nil
}

// Close wipes the master key and drops the cipher (whose expanded key schedule Go cannot wipe);
// the Keyring must not be used afterwards, and Close must not race with Load or Put.
func (k *Keyring) Close() {
	zero(k.master)
	k.aead = nil
}

// Dir is the keyring directory.
func (k *Keyring) Dir() string { return k.dir }

// Name implements Source.
func (k *Keyring) Name() string { return "local" }

func (k *Keyring) keyPath(pub PublicKey) string {
	return filepath.Join(k.dir, pub.String()+keyringExt)
}

func aadFor(pub PublicKey) []byte { return append([]byte(keyringAAD), pub[:]...) }

// Put implements Store.
func (k *Keyring) Put(_ context.Context, sk *SecretKey) error {
	pub := sk.PublicKey()
	iv := make([]byte, 12)
	if _, err := rand.Read(iv); err != nil {
		return err
	}
	secret := sk.Bytes()
	defer zero(secret)
	e := keyringEntry{Version: keyringVersion, Pubkey: pub.String(), IV: hex.EncodeToString(iv),
		Ciphertext: hex.EncodeToString(k.aead.Seal(nil, iv, secret, aadFor(pub)))}
	data, _ := json.Marshal(e)
	if err := writeFileExclusive(k.keyPath(pub), append(data, '\n')); err != nil {
		return fmt.Errorf("keyring: key %s: %w", pub, err)
	}
	return nil
}

// Delete implements Store.
func (k *Keyring) Delete(_ context.Context, pub PublicKey) error {
	err := os.Remove(k.keyPath(pub))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: key %s: %w", pub, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("keyring: key %s: %w", pub, err)
	}
	SyncDir(k.dir)
	return nil
}

// List implements Store: the public keys named by the key files (nothing is decrypted).
func (k *Keyring) List(_ context.Context) ([]PublicKey, error) {
	names, err := listFiles(k.dir, keyringExt)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	out := make([]PublicKey, 0, len(names))
	for _, n := range names {
		if pub, err := ParsePublicKey(strings.TrimSuffix(n, filepath.Ext(n))); err == nil {
			out = append(out, pub)
		}
	}
	slices.SortFunc(out, func(a, b PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// Load implements Source: every key file, decrypted in parallel.
func (k *Keyring) Load(ctx context.Context) (LoadResult, error) {
	names, err := listFiles(k.dir, keyringExt)
	if err != nil {
		return LoadResult{}, fmt.Errorf("keyring: %w", err)
	}
	jobs := make([]loadJob, 0, len(names))
	for _, n := range names {
		path := filepath.Join(k.dir, n)
		jobs = append(jobs, loadJob{item: path, load: func() (*SecretKey, error) {
			pub, err := ParsePublicKey(strings.TrimSuffix(n, filepath.Ext(n)))
			if err != nil {
				return nil, fmt.Errorf("%w (%w): file name is not 0x<public key>%s", ErrMalformed, ErrStrayItem, keyringExt)
			}
			sk, err := k.decryptFile(path, pub)
			return sk, withPubkey(&pub, err)
		}})
	}
	return runJobs(ctx, k.workers, jobs)
}

func (k *Keyring) decryptFile(path string, pub PublicKey) (*SecretKey, error) {
	data, err := readLimited(path, 4<<10)
	if err != nil {
		return nil, err
	}
	var e keyringEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, jsonError("", err))
	}
	if e.Version != keyringVersion {
		return nil, fmt.Errorf("%w: version %d (this build reads %d)", ErrMalformed, e.Version, keyringVersion)
	}
	if e.Pubkey != pub.String() {
		return nil, fmt.Errorf("%w: file declares pubkey %s", ErrPubkeyMismatch, truncate(e.Pubkey, 100))
	}
	iv, err1 := hex.DecodeString(e.IV)
	ct, err2 := hex.DecodeString(e.Ciphertext)
	if err1 != nil || err2 != nil || len(iv) != 12 || len(ct) != 48 {
		return nil, fmt.Errorf("%w: want a 12-byte iv and a 48-byte ciphertext in hex", ErrMalformed)
	}
	secret, err := k.aead.Open(nil, iv, ct, aadFor(pub))
	if err != nil {
		return nil, errors.New("ciphertext fails authentication (damaged file, or encrypted under another keyring or key)")
	}
	defer zero(secret)
	sk, err := NewSecretKey(secret)
	if err != nil {
		return nil, err
	}
	if got := sk.PublicKey(); subtle.ConstantTimeCompare(got[:], pub[:]) != 1 {
		sk.Zero()
		return nil, ErrPubkeyMismatch
	}
	return sk, nil
}

// writeFileExclusive writes path atomically and only if it does not exist yet (ErrDuplicate):
// temporary file, fsync, link(2) to the final name (fails if it exists), directory fsync.
func writeFileExclusive(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrDuplicate
		}
		return err
	}
	SyncDir(filepath.Dir(path))
	return nil
}

var _ Store = (*Keyring)(nil)

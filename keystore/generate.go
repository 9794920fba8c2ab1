package keystore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevKDF returns the deliberately cheap KDF used for dev-mode keystores:
// pbkdf2-hmac-sha256 with c = 1024 iterations (well under a millisecond per
// keystore). It protects nothing; it exists so that a devnet with hundreds of
// interop keys starts instantly while still exercising the real keystore path.
func DevKDF() KDFParams { return KDFParams{Function: KDFPBKDF2, C: 1024} }

// WriteInteropKeystores writes interop keys (see InteropSecretKey) for the
// given indices into dir as EIP-2335 keystores named "<0x-pubkey>.json"
// (mode 0600, each written to a temporary file and renamed), all encrypted
// with one password kept in passwordFile, so that
// DirConfig{KeystoresPath: dir, PasswordFile: passwordFile} loads them.
//
// If passwordFile exists its password is reused (read with the DirSource
// rule: trailing newlines trimmed); otherwise a random 32-hex-digit password
// is generated and written there (mode 0600). dir is created (0700) if needed;
// existing keystores for the same keys are overwritten and other files are
// left alone. It returns the public keys in the order of indices.
//
// Interop keys are public knowledge: dev and test networks only.
func WriteInteropKeystores(dir, passwordFile string, indices []uint64, kdf KDFParams) ([]PublicKey, error) {
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	password, err := devPassword(passwordFile)
	if err != nil {
		return nil, err
	}
	defer zero(password)

	pubs := make([]PublicKey, 0, len(indices))
	for _, i := range indices {
		sk, err := InteropSecretKey(i)
		if err != nil {
			return nil, fmt.Errorf("interop key %d: %w", i, err)
		}
		data, err := Encrypt(sk, password, kdf, "")
		pub := sk.PublicKey()
		sk.Zero()
		if err != nil {
			return nil, fmt.Errorf("interop key %d: %w", i, err)
		}
		if err := WriteFileAtomic(filepath.Join(dir, pub.String()+".json"), data); err != nil {
			return nil, err
		}
		pubs = append(pubs, pub)
	}
	return pubs, nil
}

// devPassword reads passwordFile, or creates it with a random password.
func devPassword(passwordFile string) ([]byte, error) {
	pw, err := readPasswordFile(passwordFile)
	if err == nil {
		return pw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var r [16]byte
	rand.Read(r[:])
	pw = []byte(hex.EncodeToString(r[:]))
	zero(r[:])
	if dir := filepath.Dir(passwordFile); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			zero(pw)
			return nil, err
		}
	}
	line := append(append(make([]byte, 0, len(pw)+1), pw...), '\n')
	err = WriteFileAtomic(passwordFile, line)
	zero(line)
	if err != nil {
		zero(pw)
		return nil, err
	}
	return pw, nil
}

// WriteFileAtomic writes data to path with mode 0600 through a hidden temporary file in the
// same directory (named so that no loader picks it up), fsync, rename and a directory fsync:
// after it returns the file is complete and durable, and a crash leaves either the old file or
// the new one, never a torn one.
func WriteFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// SyncDir makes a rename or removal in dir durable (best effort: not every platform supports it).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

package keystore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keystoretest"
)

// cheapKDF keeps the tests fast; production keyrings use StandardScrypt.
var cheapKDF = keystore.KDFParams{Function: keystore.KDFPBKDF2, C: 1024}

func openKeyring(t *testing.T, dir, password string, create bool) *keystore.Keyring {
	t.Helper()
	k, err := keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: []byte(password), Create: create, KDF: cheapKDF})
	if err != nil {
		t.Fatalf("OpenKeyring: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

func TestKeyringConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	openKeyring(t, dir, "correct horse", true)
	keystoretest.RunStore(t, keystoretest.Backend{Open: func(t *testing.T) keystore.Store {
		return openKeyring(t, dir, "correct horse", false)
	}})
}

func TestKeyringOpenErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	_, err := keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: []byte("pw")})
	if !errors.Is(err, keystore.ErrNoKeyring) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open of a missing keyring = %v; want ErrNoKeyring naming %s", err, dir)
	}
	k := openKeyring(t, dir, "right", true)
	if err := k.Put(context.Background(), keystoretest.Key(t, 1)); err != nil {
		t.Fatal(err)
	}
	_, err = keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: []byte("wrong")})
	if !errors.Is(err, keystore.ErrWrongPassword) {
		t.Fatalf("wrong password = %v; want ErrWrongPassword", err)
	}
	if _, err := keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir}); err == nil {
		t.Fatal("empty password accepted")
	}
	hdr := filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(hdr, []byte(`{"version":1,"kdf":{"fun`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: []byte("right")})
	if !errors.Is(err, keystore.ErrMalformed) || !strings.Contains(err.Error(), hdr) {
		t.Fatalf("truncated keyring.json = %v; want ErrMalformed naming the file", err)
	}
	// An impossible KDF cost is refused before running it.
	if err := os.WriteFile(hdr, []byte(`{"version":1,"kdf":{"function":"scrypt","n":4294967296,"r":8,"p":1,"salt":"00112233445566778899aabbccddeeff"},"check":{"iv":"000000000000000000000000","tag":"00000000000000000000000000000000"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = keystore.OpenKeyring(keystore.KeyringConfig{Dir: dir, Password: []byte("right")}); !errors.Is(err, keystore.ErrMalformed) {
		t.Fatalf("huge scrypt n = %v; want ErrMalformed", err)
	}
}

// Damaged key files are reported one by one, by file and public key; every other key loads.
func TestKeyringDamagedFiles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keyring")
	k := openKeyring(t, dir, "pw", true)
	var pubs []keystore.PublicKey
	for i := range 5 {
		sk := keystoretest.Key(t, i)
		if err := k.Put(ctx, sk); err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, sk.PublicKey())
	}
	file := func(i int) string { return filepath.Join(dir, pubs[i].String()+".key") }
	read := func(i int) []byte {
		b, err := os.ReadFile(file(i))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// 0: truncated; 1: one ciphertext digit flipped; 2: holds key 3's file (moved ciphertext);
	// 3: intact; 4: encrypted under another keyring.
	b0 := read(0)
	os.WriteFile(file(0), b0[:len(b0)/2], 0o600)
	b1 := read(1)
	i := strings.Index(string(b1), `"ciphertext":"`) + len(`"ciphertext":"`)
	if b1[i] == '0' {
		b1[i] = '1'
	} else {
		b1[i] = '0'
	}
	os.WriteFile(file(1), b1, 0o600)
	b3 := strings.Replace(string(read(3)), pubs[3].String(), pubs[2].String(), 1)
	os.WriteFile(file(2), []byte(b3), 0o600)
	other := openKeyring(t, filepath.Join(t.TempDir(), "other"), "pw", true)
	if err := other.Put(ctx, keystoretest.Key(t, 4)); err != nil {
		t.Fatal(err)
	}
	b4, _ := os.ReadFile(filepath.Join(other.Dir(), pubs[4].String()+".key"))
	os.WriteFile(file(4), b4, 0o600)

	res, err := openKeyring(t, dir, "pw", false).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keys) != 1 || res.Keys[0].PublicKey() != pubs[3] {
		t.Fatalf("loaded %d keys; want only the intact key 3", len(res.Keys))
	}
	if len(res.Errors) != 4 {
		t.Fatalf("errors = %v; want 4", res.Errors)
	}
	for _, e := range res.Errors {
		found := false
		for j, p := range pubs {
			if e.Pubkey == p && e.Item == file(j) {
				found = true
			}
		}
		if !found {
			t.Errorf("error %v does not name its file and public key", e)
		}
	}
	for _, e := range res.Errors {
		if e.Pubkey == pubs[0] && !errors.Is(e.Err, keystore.ErrMalformed) {
			t.Errorf("truncated file: %v; want ErrMalformed", e.Err)
		}
		if e.Pubkey == pubs[2] && !strings.Contains(e.Err.Error(), "authentication") {
			t.Errorf("another key's ciphertext: %v; want an authentication failure (the AAD binds the public key)", e.Err)
		}
	}
}

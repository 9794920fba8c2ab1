package keystore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteInteropKeystores(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "keys")
	pwFile := filepath.Join(root, "secrets", "password.txt")
	indices := []uint64{0, 1, 7}

	pubs, err := WriteInteropKeystores(dir, pwFile, indices, DevKDF())
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 3 || pubs[0].String() != interopKey0Pubkey {
		t.Fatalf("pubkeys %v", pubs)
	}
	for i, idx := range indices {
		if pubs[i] != interopKey(t, idx).PublicKey() {
			t.Fatalf("pubkey %d", i)
		}
		fi, err := os.Stat(filepath.Join(dir, pubs[i].String()+".json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("keystore file: %v %v", fi, err)
		}
	}
	pw1 := readFile(t, pwFile)
	if len(pw1) != 33 || pw1[32] != '\n' {
		t.Fatalf("password file %d bytes", len(pw1))
	}

	// Written again with more keys: the password is reused, so the directory
	// still loads as one set.
	if _, err := WriteInteropKeystores(dir, pwFile, []uint64{7, 8}, DevKDF()); err != nil {
		t.Fatal(err)
	}
	if string(readFile(t, pwFile)) != string(pw1) {
		t.Fatal("password file rewritten")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Fatalf("%d files in dir (temporary files left?)", len(entries))
	}

	src, err := NewDirSource(DirConfig{KeystoresPath: dir, PasswordFile: pwFile})
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Load(context.Background())
	if err != nil || len(res.Errors) != 0 || len(res.Keys) != 4 {
		t.Fatalf("load: %d keys, errors %v, err %v", len(res.Keys), res.Errors, err)
	}
	loaded := map[PublicKey]bool{}
	for _, k := range res.Keys {
		loaded[k.PublicKey()] = true
	}
	for _, i := range []uint64{0, 1, 7, 8} {
		if !loaded[interopKey(t, i).PublicKey()] {
			t.Fatalf("interop key %d not loaded", i)
		}
	}
	// The keystores carry the dev KDF.
	ks, err := ParseKeystore(readFile(t, filepath.Join(dir, pubs[0].String()+".json")))
	if err != nil || ks.KDF.Function != KDFPBKDF2 || ks.KDF.C != 1024 {
		t.Fatalf("kdf %+v %v", ks.KDF, err)
	}

	if _, err := WriteInteropKeystores(dir, pwFile, []uint64{0}, KDFParams{Function: "none"}); err == nil {
		t.Fatal("invalid KDF accepted")
	}
}

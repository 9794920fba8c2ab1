package keystore

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A reload decrypts only keystores whose bytes or password changed, and the keys it hands out are
// independent of the cache and of earlier loads.
func TestDirSourceReloadCache(t *testing.T) {
	dir := t.TempDir()
	ks, pw := filepath.Join(dir, "ks"), filepath.Join(dir, "pw.txt")
	if _, err := WriteInteropKeystores(ks, pw, []uint64{0, 1, 2}, DevKDF()); err != nil {
		t.Fatal(err)
	}
	src, err := NewDirSource(DirConfig{KeystoresPath: ks, PasswordFile: pw})
	if err != nil {
		t.Fatal(err)
	}
	load := func(wantKeys int, wantDecrypts int64) LoadResult {
		t.Helper()
		before := keystoreDecrypts.Load()
		res, err := src.Load(context.Background())
		if err != nil || len(res.Keys) != wantKeys {
			t.Fatalf("load: %d keys, %v, %v; want %d", len(res.Keys), res.Errors, err, wantKeys)
		}
		if got := keystoreDecrypts.Load() - before; got != wantDecrypts {
			t.Fatalf("load decrypted %d keystores; want %d", got, wantDecrypts)
		}
		return res
	}
	first := load(3, 3)
	second := load(3, 0)
	for i := range first.Keys {
		if first.Keys[i] == second.Keys[i] {
			t.Fatal("a reload handed out the same key object")
		}
		first.Keys[i].(*LocalKey).Zero() // must not affect the later load's keys
	}
	root := [32]byte{7}
	for _, k := range load(3, 0).Keys {
		sig, _ := k.Sign(context.Background(), root)
		if !Verify(k.PublicKey(), root[:], sig) {
			t.Fatalf("cached key %s signs wrongly after an earlier copy was zeroed", k.PublicKey())
		}
	}

	// Rewrite one keystore (new salt and IV: new bytes), remove another: one decryption.
	pub0, pub2 := interopKey(t, 0).PublicKey(), interopKey(t, 2).PublicKey()
	if _, err := WriteInteropKeystores(ks, pw, []uint64{0}, DevKDF()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(ks, pub2.String()+".json")); err != nil {
		t.Fatal(err)
	}
	res := load(2, 1)
	if got := pubkeysOf(t, res); !slices.Contains(got, pub0) || slices.Contains(got, pub2) {
		t.Fatalf("after rewrite and removal: %v", got)
	}
	// A changed password file is a new version too (here: wrong, so every key fails).
	writeFile(t, pw, []byte("another password"))
	bad, err := src.Load(context.Background())
	if err != nil || len(bad.Keys) != 0 || len(bad.Errors) != 2 {
		t.Fatalf("wrong password after reload: %d keys, %d errors, %v", len(bad.Keys), len(bad.Errors), err)
	}
}

// Key config file-keystore documents use the same reload cache.
func TestConfigSourceReloadCache(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteInteropKeystores(filepath.Join(dir, "ks"), filepath.Join(dir, "pw.txt"), []uint64{3, 4}, DevKDF()); err != nil {
		t.Fatal(err)
	}
	var yaml string
	for _, i := range []uint64{3, 4} {
		yaml += "---\ntype: file-keystore\nkeystoreFile: ks/" + interopKey(t, i).PublicKey().String() + ".json\nkeystorePasswordFile: pw.txt\n"
	}
	writeFile(t, filepath.Join(dir, "keys.yaml"), []byte(yaml))
	src, err := NewConfigSource(KeyConfig{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	for round, want := range []int64{2, 0} {
		before := keystoreDecrypts.Load()
		res, err := src.Load(context.Background())
		if err != nil || len(res.Keys) != 2 || len(res.Errors) != 0 {
			t.Fatalf("round %d: %d keys, %v, %v", round, len(res.Keys), res.Errors, err)
		}
		if got := keystoreDecrypts.Load() - before; got != want {
			t.Fatalf("round %d decrypted %d keystores; want %d", round, got, want)
		}
	}
}

package keystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pubkeysOf lists the public keys of a result, in order.
func pubkeysOf(t *testing.T, res LoadResult) []PublicKey {
	t.Helper()
	out := make([]PublicKey, len(res.Keys))
	for i, k := range res.Keys {
		if _, ok := k.(*LocalKey); !ok {
			t.Fatalf("key %d is %T, want *LocalKey", i, k)
		}
		out[i] = k.PublicKey()
	}
	return out
}

// errorFor returns the LoadError whose Item is item.
func errorFor(t *testing.T, res LoadResult, item string) LoadError {
	t.Helper()
	for _, e := range res.Errors {
		if e.Item == item {
			return e
		}
	}
	t.Fatalf("no LoadError for %s; errors: %v", item, res.Errors)
	return LoadError{}
}

func loadDir(t *testing.T, cfg DirConfig) LoadResult {
	t.Helper()
	src, err := NewDirSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestDirSourceMixed: 3 good keystores, 1 corrupt, 1 wrong password and 1
// without a password file give 3 keys and 3 LoadErrors naming their files.
func TestDirSourceMixed(t *testing.T) {
	ksDir, pwDir := t.TempDir(), t.TempDir()
	put := func(name string, data []byte, password *string) {
		writeFile(t, filepath.Join(ksDir, name+".json"), data)
		if password != nil {
			writeFile(t, filepath.Join(pwDir, name+".txt"), []byte(*password))
		}
	}
	p := func(s string) *string { return &s }
	put("a-good", encryptT(t, 0, "pw-a", cheapKDFs[1]), p("pw-a\n"))
	put("b-good", encryptT(t, 1, "pw-b", cheapKDFs[0]), p("pw-b"))
	put("c-corrupt", encryptT(t, 2, "pw-c", cheapKDFs[0])[:100], p("pw-c"))
	put("d-wrongpw", encryptT(t, 3, "pw-d", cheapKDFs[0]), p("not-pw-d"))
	put("e-nopw", encryptT(t, 4, "pw-e", cheapKDFs[0]), nil)
	put("f-good", encryptT(t, 5, vectorPassword, cheapKDFs[1]), p(vectorPassword+"\r\n"))
	// Ignored: other extensions, a subdirectory (even one named *.json) and
	// keystores inside subdirectories.
	writeFile(t, filepath.Join(ksDir, "notes.txt"), []byte("hello"))
	writeFile(t, filepath.Join(ksDir, "g.json.bak"), encryptT(t, 6, "x", cheapKDFs[0]))
	writeFile(t, filepath.Join(ksDir, "sub.json", "h.json"), encryptT(t, 7, "x", cheapKDFs[0]))
	writeFile(t, filepath.Join(ksDir, "sub", "i.json"), encryptT(t, 8, "x", cheapKDFs[0]))

	for _, workers := range []int{0, 1, 3} {
		res := loadDir(t, DirConfig{KeystoresPath: ksDir, PasswordsPath: pwDir, Workers: workers})
		got := pubkeysOf(t, res)
		want := []PublicKey{interopKey(t, 0).PublicKey(), interopKey(t, 1).PublicKey(), interopKey(t, 5).PublicKey()}
		if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Fatalf("workers=%d: keys %v, want %v (errors %v)", workers, got, want, res.Errors)
		}
		if len(res.Errors) != 3 {
			t.Fatalf("workers=%d: %d errors, want 3: %v", workers, len(res.Errors), res.Errors)
		}
		corrupt := errorFor(t, res, filepath.Join(ksDir, "c-corrupt.json"))
		if !errors.Is(corrupt, ErrMalformed) || !strings.Contains(corrupt.Error(), "truncated") {
			t.Errorf("corrupt: %v", corrupt)
		}
		if e := errorFor(t, res, filepath.Join(ksDir, "d-wrongpw.json")); !errors.Is(e, ErrWrongPassword) {
			t.Errorf("wrong password: %v", e)
		}
		nopw := errorFor(t, res, filepath.Join(ksDir, "e-nopw.json"))
		if !strings.Contains(nopw.Error(), filepath.Join(pwDir, "e-nopw.txt")) {
			t.Errorf("missing password: %v", nopw)
		}
		// LoadError.Error names the file.
		for _, e := range res.Errors {
			if !strings.HasPrefix(e.Error(), e.Item+": ") {
				t.Errorf("error %q does not start with its item", e)
			}
		}
	}
}

func TestDirSourceSharedPasswordFile(t *testing.T) {
	ksDir := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "password")
	// Trailing line terminators are trimmed; the leading space is kept.
	writeFile(t, pwFile, []byte(" shared pw\r\n\n"))
	for i := range 4 {
		writeFile(t, filepath.Join(ksDir, string(rune('a'+i))+".json"), encryptT(t, uint64(20+i), " shared pw", cheapKDFs[i%2]))
	}
	writeFile(t, filepath.Join(ksDir, "z.json"), encryptT(t, 30, "shared pw", cheapKDFs[0]))

	res := loadDir(t, DirConfig{KeystoresPath: ksDir, PasswordFile: pwFile})
	if len(res.Keys) != 4 || len(res.Errors) != 1 {
		t.Fatalf("keys %d errors %v", len(res.Keys), res.Errors)
	}
	if e := errorFor(t, res, filepath.Join(ksDir, "z.json")); !errors.Is(e, ErrWrongPassword) {
		t.Fatalf("z.json: %v", e)
	}
	for i, k := range res.Keys {
		if k.PublicKey() != interopKey(t, uint64(20+i)).PublicKey() {
			t.Fatalf("key %d out of order", i)
		}
		sig, err := k.Sign(context.Background(), [32]byte{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		root := [32]byte{1, 2, 3}
		if !Verify(k.PublicKey(), root[:], sig) {
			t.Fatalf("key %d: signature does not verify", i)
		}
	}

	// A missing shared password file fails the whole source.
	src, _ := NewDirSource(DirConfig{KeystoresPath: ksDir, PasswordFile: pwFile + ".missing"})
	if _, err := src.Load(context.Background()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing password file: err = %v", err)
	}
	// So does a missing keystore directory.
	src, _ = NewDirSource(DirConfig{KeystoresPath: filepath.Join(ksDir, "nope"), PasswordFile: pwFile})
	if _, err := src.Load(context.Background()); err == nil {
		t.Fatal("missing keystore directory accepted")
	}
	// An empty directory is no keys and no errors.
	res = loadDir(t, DirConfig{KeystoresPath: t.TempDir(), PasswordFile: pwFile})
	if len(res.Keys) != 0 || len(res.Errors) != 0 {
		t.Fatalf("empty dir: %+v", res)
	}
}

func TestDirSourceDuplicatesAndMismatch(t *testing.T) {
	ksDir, pwDir := t.TempDir(), t.TempDir()
	for _, name := range []string{"1", "2", "3"} {
		writeFile(t, filepath.Join(pwDir, name+".txt"), []byte("pw"))
	}
	// Same key twice: "1.json" (first in name order) wins over "2.json".
	writeFile(t, filepath.Join(ksDir, "2.json"), encryptT(t, 40, "pw", cheapKDFs[0]))
	writeFile(t, filepath.Join(ksDir, "1.json"), encryptT(t, 40, "pw", cheapKDFs[1]))
	// Declared pubkey of another key.
	other := interopKey(t, 42).PublicKey()
	bad := strings.Replace(string(encryptT(t, 41, "pw", cheapKDFs[0])), interopKey(t, 41).PublicKey().String()[2:], other.String()[2:], 1)
	writeFile(t, filepath.Join(ksDir, "3.json"), []byte(bad))

	res := loadDir(t, DirConfig{KeystoresPath: ksDir, PasswordsPath: pwDir})
	if len(res.Keys) != 1 || res.Keys[0].PublicKey() != interopKey(t, 40).PublicKey() {
		t.Fatalf("keys: %v", pubkeysOf(t, res))
	}
	dup := errorFor(t, res, filepath.Join(ksDir, "2.json"))
	if !strings.Contains(dup.Error(), "duplicate public key") || !strings.Contains(dup.Error(), filepath.Join(ksDir, "1.json")) {
		t.Fatalf("duplicate: %v", dup)
	}
	if e := errorFor(t, res, filepath.Join(ksDir, "3.json")); !errors.Is(e, ErrPubkeyMismatch) {
		t.Fatalf("mismatch: %v", e)
	}
}

func TestDirSourceCancelled(t *testing.T) {
	ksDir := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, []byte("pw"))
	for i := range 3 {
		writeFile(t, filepath.Join(ksDir, string(rune('a'+i))+".json"), encryptT(t, uint64(i), "pw", cheapKDFs[0]))
	}
	src, _ := NewDirSource(DirConfig{KeystoresPath: ksDir, PasswordFile: pwFile})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := src.Load(ctx)
	if !errors.Is(err, context.Canceled) || len(res.Keys) != 0 {
		t.Fatalf("cancelled load: %d keys, err %v", len(res.Keys), err)
	}
}

func TestDirConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  DirConfig
		want string
	}{
		{"ok file", DirConfig{KeystoresPath: "k", PasswordFile: "p"}, ""},
		{"ok dir", DirConfig{KeystoresPath: "k", PasswordsPath: "p", Workers: 4}, ""},
		{"no path", DirConfig{PasswordFile: "p"}, "--keystores-path is required"},
		{"no password", DirConfig{KeystoresPath: "k"}, "one of --keystores-password-file or --keystores-passwords-path is required"},
		{"both", DirConfig{KeystoresPath: "k", PasswordFile: "p", PasswordsPath: "q"}, "mutually exclusive"},
		{"workers", DirConfig{KeystoresPath: "k", PasswordFile: "p", Workers: -1}, "workers"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
		if _, nerr := NewDirSource(c.cfg); (nerr == nil) != (err == nil) {
			t.Errorf("%s: NewDirSource disagrees with Validate", c.name)
		}
	}
}

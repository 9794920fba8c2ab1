package keystore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func loadConfig(t *testing.T, dir string) LoadResult {
	t.Helper()
	src, err := NewConfigSource(KeyConfig{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestConfigSource(t *testing.T) {
	dir := t.TempDir()
	external := t.TempDir()
	hexKey := func(i uint64) string { return secretHex(interopKey(t, i)) }

	files := map[string]string{
		// Quoted 0x key, with keyType.
		"a.yaml": fmt.Sprintf("type: \"file-raw\"\nkeyType: \"BLS\"\nprivateKey: \"0x%s\"\n", hexKey(0)),
		// Several documents: an unquoted key, a keystore with relative paths,
		// an empty document and a keystore with absolute paths.
		"b.yml": fmt.Sprintf("# comment\ntype: file-raw\nprivateKey: 0x%s\n---\n"+
			"type: file-keystore\nkeystoreFile: keys/two.json\nkeystorePasswordFile: keys/two.txt\n---\n---\n"+
			"type: FILE-KEYSTORE\nkeyType: bls\nkeystoreFile: %s\nkeystorePasswordFile: %s\nextra: [1, 2]\n",
			hexKey(1), filepath.Join(external, "three.json"), filepath.Join(external, "three.txt")),
		"c.yaml":     "type: hashicorp\nkeyType: BLS\nkeyPath: /v1/secret/data/k\nkeyName: value\nserverHost: vault\n",
		"d.yaml":     fmt.Sprintf("type: file-raw\nprivateKey: \"0x%s\"\n", hexKey(5)[:60]),                      // short key
		"e.yaml":     fmt.Sprintf("type: file-raw\n  privateKey: \"0x%s\"\n", hexKey(4)),                         // broken YAML
		"f.yaml":     fmt.Sprintf("type: file-raw\nprivateKey: '%s'\n", hexKey(0)),                               // duplicate of a.yaml, no 0x
		"g.yaml":     fmt.Sprintf("type: file-raw\nkeyType: SECP256K1\nprivateKey: \"0x%s\"\n", hexKey(6)),       // wrong key type
		"h.yaml":     "type: file-keystore\nkeystoreFile: keys/two.json\nkeystorePasswordFile: keys/wrong.txt\n", // wrong password
		"i.yaml":     "type: file-keystore\nkeystoreFile: keys/two.json\n",                                       // no password file
		"j.yaml":     "# nothing here\n",
		"k.yaml":     fmt.Sprintf("privateKey: \"0x%s\"\n", hexKey(7)), // no type
		"l.yaml":     "- type: file-raw\n",
		"m.yaml":     fmt.Sprintf("type: file-raw\nprivateKey: \"0x%s\"\n", strings.Repeat("ff", 32)), // ≥ r
		"notes.txt":  "type: file-raw\n",
		"sub/x.yaml": fmt.Sprintf("type: file-raw\nprivateKey: \"0x%s\"\n", hexKey(8)),
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), []byte(content))
	}
	writeFile(t, filepath.Join(dir, "keys", "two.json"), encryptT(t, 2, "two pw", cheapKDFs[1]))
	writeFile(t, filepath.Join(dir, "keys", "two.txt"), []byte("two pw\r\nsecond line is ignored\n"))
	writeFile(t, filepath.Join(dir, "keys", "wrong.txt"), []byte("nope\n"))
	writeFile(t, filepath.Join(external, "three.json"), encryptT(t, 3, "three", cheapKDFs[0]))
	writeFile(t, filepath.Join(external, "three.txt"), []byte("three"))

	res := loadConfig(t, dir)
	got := pubkeysOf(t, res)
	want := []uint64{0, 1, 2, 3}
	if len(got) != len(want) {
		t.Fatalf("keys %v, errors %v", got, res.Errors)
	}
	for i, w := range want {
		if got[i] != interopKey(t, w).PublicKey() {
			t.Fatalf("key %d is not interop key %d", i, w)
		}
	}

	expect := []struct {
		file  string
		check func(error) bool
		text  string
	}{
		// hashicorp documents are read by a registered loader (keystore/vault, tested there).
		{"c.yaml", func(e error) bool { return errors.Is(e, ErrUnsupportedKeyConfig) }, `unsupported key config type "hashicorp" (supported: file-raw, file-keystore)`},
		{"d.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, "privateKey: has 60 hex digits, want 64"},
		{"e.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, "invalid YAML"},
		{"f.yaml", nil, "duplicate public key " + interopKey(t, 0).PublicKey().String() + " (already loaded from " + filepath.Join(dir, "a.yaml")},
		{"g.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, `unsupported key type "SECP256K1"`},
		{"h.yaml", func(e error) bool { return errors.Is(e, ErrWrongPassword) }, "keys/two.json"},
		{"i.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, "keystorePasswordFile: missing"},
		{"j.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, "no key definition"},
		{"k.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, "type: missing"},
		{"l.yaml", func(e error) bool { return errors.Is(e, ErrMalformed) }, "not a mapping"},
		{"m.yaml", func(e error) bool { return errors.Is(e, ErrInvalidKey) }, "not below the curve order"},
	}
	if len(res.Errors) != len(expect) {
		t.Errorf("%d errors, want %d:", len(res.Errors), len(expect))
		for _, e := range res.Errors {
			t.Log(e)
		}
	}
	for i, x := range expect {
		e := errorFor(t, res, filepath.Join(dir, x.file))
		if (x.check != nil && !x.check(e)) || !strings.Contains(e.Error(), x.text) {
			t.Errorf("%s: %v (want %q)", x.file, e, x.text)
		}
		if i < len(res.Errors) && res.Errors[i].Item != filepath.Join(dir, x.file) {
			t.Errorf("errors out of file order at %d: %s", i, res.Errors[i].Item)
		}
	}
	// No secret appears in any error.
	for _, e := range res.Errors {
		for i := range uint64(9) {
			if k := hexKey(i); strings.Contains(e.Error(), k[:40]) {
				t.Fatalf("error %q contains secret key %d", e, i)
			}
		}
		if strings.Contains(e.Error(), "two pw") || strings.Contains(e.Error(), "nope") {
			t.Fatalf("error %q contains a password", e)
		}
	}
}

func TestConfigSourceMultiDocumentErrors(t *testing.T) {
	dir := t.TempDir()
	content := fmt.Sprintf("type: file-raw\nprivateKey: \"0x%s\"\n---\ntype: aws-secret\n---\n[a, b]\n---\ntype: file-raw\nprivateKey: \"0x%s\"\n",
		secretHex(interopKey(t, 0)), secretHex(interopKey(t, 1)))
	writeFile(t, filepath.Join(dir, "multi.yaml"), []byte(content))
	res := loadConfig(t, dir)
	if len(res.Keys) != 2 || len(res.Errors) != 2 {
		t.Fatalf("keys %d errors %v", len(res.Keys), res.Errors)
	}
	if e := res.Errors[0]; e.Item != filepath.Join(dir, "multi.yaml") || !strings.Contains(e.Error(), `document 2: unsupported key config type "aws-secret"`) {
		t.Fatalf("error %v", e)
	}
	if e := res.Errors[1]; e.Item != filepath.Join(dir, "multi.yaml") || !strings.Contains(e.Error(), "document 3: malformed key file: document is not a mapping") {
		t.Fatalf("error %v", e)
	}
}

func TestKeyConfigValidate(t *testing.T) {
	if err := (KeyConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "--key-config-path") {
		t.Fatalf("empty config: %v", err)
	}
	if err := (KeyConfig{Path: "x", Workers: -2}).Validate(); err == nil {
		t.Fatal("negative workers accepted")
	}
	if _, err := NewConfigSource(KeyConfig{Path: "x"}); err != nil {
		t.Fatal(err)
	}
	src, _ := NewConfigSource(KeyConfig{Path: filepath.Join(t.TempDir(), "missing")})
	if _, err := src.Load(context.Background()); err == nil {
		t.Fatal("missing directory accepted")
	}
}

func TestParseKeyConfigNoPanic(t *testing.T) {
	inputs := []string{"", "---", "---\n---\n", "...", "a: [", "? a\n: b\n", "&a x: *a", "!!binary abc", "type: {a: b}", "\x00\x01", "k: |\n  x\n", "type: file-raw\ntype: file-raw\n"}
	for _, in := range inputs {
		docs, err := parseKeyConfig([]byte(in))
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: error %v is not ErrMalformed", in, err)
		}
		for _, d := range docs {
			if d.err != nil && !errors.Is(d.err, ErrMalformed) {
				t.Errorf("%q: document error %v is not ErrMalformed", in, d.err)
			}
		}
	}
	docs, err := parseKeyConfig([]byte("type: file-raw\ntype: file-raw\n"))
	if err != nil || len(docs) != 1 || docs[0].err == nil || !strings.Contains(docs[0].err.Error(), "type: given twice") {
		t.Errorf("duplicate field: %v %+v", err, docs)
	}
}

// fakeLoader is a KeyConfigLoader of a made-up type: privateKey under another field name.
type fakeLoader struct{ resolved []string }

func (l *fakeLoader) Fields() []string { return []string{"secretHex", "note"} }

func (l *fakeLoader) Loader(d KeyConfigDoc, resolve func(string) string) (func() (*SecretKey, error), error) {
	v, ok := d.Get("secretHex")
	if !ok {
		return nil, &MalformedError{Field: "secretHex", Reason: "missing"}
	}
	if _, ok := d.Get("privateKey"); !ok {
		return nil, &MalformedError{Field: "privateKey", Reason: "a built-in field was not handed over"}
	}
	if _, ok := d.Get("ignored"); ok {
		return nil, &MalformedError{Field: "ignored", Reason: "a field no one reads was handed over"}
	}
	note, _ := d.Get("note")
	l.resolved = append(l.resolved, resolve(note))
	return func() (*SecretKey, error) { return rawSecretKey(v) }, nil
}

// TestConfigSourceLoaders: a registered loader gets the documents of its type (matched without
// regard to case) with its fields, a resolver of relative paths, and its errors become the
// document's LoadErrors; the messages list the registered types.
func TestConfigSourceLoaders(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), fmt.Appendf(nil, "type: X-Test\nsecretHex: \"0x%s\"\nprivateKey: x\nignored: y\nnote: rel/path\n", secretHex(interopKey(t, 1))))
	writeFile(t, filepath.Join(dir, "b.yaml"), []byte("type: x-test\n"))
	writeFile(t, filepath.Join(dir, "c.yaml"), []byte("type: hashicorp\n"))
	writeFile(t, filepath.Join(dir, "d.yaml"), []byte("note: x\n"))
	writeFile(t, filepath.Join(dir, "e.yaml"), []byte("type: x-test\nnote: [1, 2]\n"))
	l := &fakeLoader{}
	src, err := NewConfigSource(KeyConfig{Path: dir, Loaders: map[string]KeyConfigLoader{"x-test": l}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := pubkeysOf(t, res); len(got) != 1 || got[0] != interopKey(t, 1).PublicKey() {
		t.Fatalf("keys %v, errors %v", got, res.Errors)
	}
	if len(l.resolved) != 1 || l.resolved[0] != filepath.Join(dir, "rel/path") {
		t.Fatalf("resolved %v", l.resolved)
	}
	expect := []struct {
		file string
		is   error
		text string
	}{
		{"b.yaml", ErrMalformed, "secretHex: missing"},
		{"c.yaml", ErrUnsupportedKeyConfig, `unsupported key config type "hashicorp" (supported: file-raw, file-keystore, x-test)`},
		{"d.yaml", ErrMalformed, "type: missing (want file-raw, file-keystore or x-test)"},
		{"e.yaml", ErrMalformed, "note: must be a single value"},
	}
	if len(res.Errors) != len(expect) {
		t.Fatalf("errors %v", res.Errors)
	}
	for i, x := range expect {
		if e := res.Errors[i]; e.Item != filepath.Join(dir, x.file) || !errors.Is(e, x.is) || !strings.Contains(e.Error(), x.text) {
			t.Errorf("%s: %v, want %q", x.file, e, x.text)
		}
	}

	for _, bad := range []map[string]KeyConfigLoader{
		{"X-Test": l}, {"": l}, {KeyConfigFileRaw: l}, {KeyConfigFileKeystore: l}, {"x-test": nil},
	} {
		if err := (KeyConfig{Path: dir, Loaders: bad}).Validate(); err == nil {
			t.Errorf("loaders %v accepted", bad)
		}
	}
}

package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
)

func interopKey(t testing.TB, i uint64) *keystore.SecretKey {
	t.Helper()
	sk, err := keystore.InteropSecretKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func secretHex(sk *keystore.SecretKey) string {
	b := sk.Bytes()
	defer clear(b)
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// loadConfig loads a key-config directory with this package's loader registered for hashicorp
// documents, as cmd/vigil does.
func loadConfig(t *testing.T, dir string) keystore.LoadResult {
	t.Helper()
	src, err := keystore.NewConfigSource(keystore.KeyConfig{
		Path:    dir,
		Loaders: map[string]keystore.KeyConfigLoader{keystore.KeyConfigHashicorp: NewKeyConfigLoader()},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// captureLoader records the documents keystore.ConfigSource hands to the hashicorp loader.
type captureLoader struct{ docs []keystore.KeyConfigDoc }

var errCaptured = errors.New("captured")

func (c *captureLoader) Fields() []string { return NewKeyConfigLoader().Fields() }

func (c *captureLoader) Loader(d keystore.KeyConfigDoc, _ func(string) string) (func() (*keystore.SecretKey, error), error) {
	c.docs = append(c.docs, d)
	return nil, errCaptured
}

// hashicorpDocT parses a one-document key-config file the way keystore.ConfigSource does and
// returns the document its hashicorp loader is given.
func hashicorpDocT(t *testing.T, yaml string) keystore.KeyConfigDoc {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "doc.yaml"), []byte(yaml))
	c := &captureLoader{}
	src, err := keystore.NewConfigSource(keystore.KeyConfig{
		Path:    dir,
		Loaders: map[string]keystore.KeyConfigLoader{keystore.KeyConfigHashicorp: c},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.Load(context.Background())
	if err != nil || len(c.docs) != 1 || len(res.Errors) != 1 || !errors.Is(res.Errors[0], errCaptured) {
		t.Fatalf("parse %q: %v %+v", yaml, err, res.Errors)
	}
	return c.docs[0]
}

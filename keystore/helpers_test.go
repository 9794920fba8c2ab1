package keystore

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// The ERC-2335 "Test Cases" key: every public keystore vector encrypts it.
const (
	vectorPassword = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑"
	vectorSecret   = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
	vectorPubkey   = "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07"
)

// sharedTestdata returns a path under the shared test-vector directory
// (VIGIL_TESTDATA_DIR, default ../../shared/testdata from this package) and
// fails the test when it is missing: these vectors are part of the checkout.
func sharedTestdata(t testing.TB, parts ...string) string {
	t.Helper()
	base := os.Getenv("VIGIL_TESTDATA_DIR")
	if base == "" {
		base = filepath.Join("..", "..", "shared", "testdata")
	}
	p := filepath.Join(append([]string{base}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test vectors not found at %s (set VIGIL_TESTDATA_DIR): %v", p, err)
	}
	return p
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
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

func interopKey(t testing.TB, i uint64) *SecretKey {
	t.Helper()
	sk, err := InteropSecretKey(i)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// cheapKDFs are fast parameter sets covering both KDFs, for tests.
var cheapKDFs = []KDFParams{
	{Function: KDFPBKDF2, C: 16},
	{Function: KDFScrypt, N: 16, R: 8, P: 1},
}

// encryptT encrypts interop key i under password with kdf.
func encryptT(t testing.TB, i uint64, password string, kdf KDFParams) []byte {
	t.Helper()
	data, err := Encrypt(interopKey(t, i), []byte(password), kdf, "m/12381/3600/0/0/0")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func secretHex(sk *SecretKey) string {
	b := sk.Bytes()
	defer zero(b)
	return hex.EncodeToString(b)
}

// Package bls runs the public BLS12-381 signature vectors (ethereum/bls12-381-tests
// JSON and consensus-spec-tests general/phase0/bls YAML) against package keystore.
//
// VIGIL_SPEC_BLS_DIR is walked recursively (default: shared/testdata/bls12-381-tests,
// resolved from the package directory). Every *.json, *.yaml or *.yml file is one case; its
// kind is the first path element (below the root) that names a bls12-381-tests handler, so
// both `json/sign/<case>.json` and `tests/general/phase0/bls/sign/bls/<case>/data.yaml`
// work. Only the handlers that apply to a signer run:
//
//   - sign: {input: {privkey, message}, output: signature | null}. A null output means
//     keystore.NewSecretKey must reject the key (e.g. the zero key); otherwise the signature
//     must equal output (and verify).
//   - verify: {input: {pubkey, message, signature}, output: bool}: keystore.Verify must
//     return output.
//
// The other handlers (aggregate, fast_aggregate_verify, aggregate_verify, batch_verify,
// deserialization_G1/G2, hash_to_G2, eth_*) are counted and logged as skipped. The test
// fails when the directory is missing or when no sign or no verify case was found.
package bls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	blst "github.com/supranational/blst/bindings/go"

	"github.com/vigil-signer/vigil/keystore"
)

// dst is the Ethereum consensus ciphersuite (minimal-pubkey-size, proof of possession),
// used only to sign messages that are not 32 bytes long (keystore signs 32-byte roots).
var dst = []byte("BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_")

// handlers are the bls12-381-tests / consensus-spec-tests BLS handler names; run tells
// whether the signer runner executes them.
var handlers = map[string]bool{
	"sign":                      true,
	"verify":                    true,
	"aggregate":                 false,
	"fast_aggregate_verify":     false,
	"aggregate_verify":          false,
	"batch_verify":              false,
	"deserialization_G1":        false,
	"deserialization_G2":        false,
	"hash_to_G2":                false,
	"eth_aggregate_pubkeys":     false,
	"eth_fast_aggregate_verify": false,
}

func vectorDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VIGIL_SPEC_BLS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "bls12-381-tests")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("BLS vector directory (VIGIL_SPEC_BLS_DIR): %v", err)
	}
	if !fi.IsDir() {
		t.Fatalf("BLS vector directory (VIGIL_SPEC_BLS_DIR) %s is not a directory", dir)
	}
	return dir
}

type testCase struct {
	path string // as found by the walk, for messages
	rel  string // relative to the root, the subtest name
	kind string
}

// findCases lists every vector file under dir, sorted by path.
func findCases(t *testing.T, dir string) []testCase {
	t.Helper()
	var cases []testCase
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".json", ".yaml", ".yml":
		default:
			return nil // READMEs, SHA256SUMS
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		kind := ""
		for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
			if _, ok := handlers[part]; ok {
				kind = part
				break
			}
		}
		if kind == "" {
			t.Errorf("%s: no BLS handler name (sign, verify, ...) in the path; unknown vector kind", p)
			return nil
		}
		cases = append(cases, testCase{path: p, rel: filepath.ToSlash(rel), kind: kind})
		return nil
	})
	if err != nil {
		t.Fatalf("walking BLS vector directory %s: %v", dir, err)
	}
	slices.SortFunc(cases, func(a, b testCase) int { return strings.Compare(a.rel, b.rel) })
	return cases
}

// decodeStrict decodes a JSON or YAML case file, rejecting unknown fields.
func decodeStrict(path string, data []byte, v any) error {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		d := json.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	return yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField())
}

// unhex decodes a 0x-prefixed hex field.
func unhex(field, s string) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") {
		return nil, fmt.Errorf("input %s %q is not 0x-prefixed hex", field, s)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, fmt.Errorf("input %s: %v", field, err)
	}
	return b, nil
}

type signVector struct {
	Input struct {
		Privkey string `json:"privkey" yaml:"privkey"`
		Message string `json:"message" yaml:"message"`
	} `json:"input" yaml:"input"`
	Output *string `json:"output" yaml:"output"`
}

func runSign(t *testing.T, path string, data []byte) {
	var v signVector
	if err := decodeStrict(path, data, &v); err != nil {
		t.Fatalf("%s: decoding sign case: %v", path, err)
	}
	priv, err := unhex("privkey", v.Input.Privkey)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	msg, err := unhex("message", v.Input.Message)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sk, err := keystore.NewSecretKey(priv)
	if v.Output == nil {
		if err == nil {
			t.Fatalf("%s: output is null (invalid key) but keystore.NewSecretKey accepted privkey %s", path, v.Input.Privkey)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: keystore.NewSecretKey rejected a valid privkey: %v", path, err)
	}
	defer sk.Zero()
	want, err := unhex("output", *v.Output)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var sig keystore.Signature
	if len(msg) == 32 {
		sig = sk.SignRoot([32]byte(msg))
	} else {
		// keystore only signs 32-byte roots; sign other lengths with blst directly.
		raw := sk.Bytes()
		bsk := new(blst.SecretKey).Deserialize(raw)
		clear(raw)
		if bsk == nil {
			t.Fatalf("%s: blst rejected a key keystore accepted", path)
		}
		copy(sig[:], new(blst.P2Affine).Sign(bsk, msg, dst).Compress())
		bsk.Zeroize()
	}
	if !bytes.Equal(sig[:], want) {
		t.Fatalf("%s: signature mismatch\n got  %s\n want %s", path, sig, *v.Output)
	}
	if !keystore.Verify(sk.PublicKey(), msg, sig) {
		t.Fatalf("%s: keystore.Verify rejects the signature just produced", path)
	}
}

type verifyVector struct {
	Input struct {
		Pubkey    string `json:"pubkey" yaml:"pubkey"`
		Message   string `json:"message" yaml:"message"`
		Signature string `json:"signature" yaml:"signature"`
	} `json:"input" yaml:"input"`
	Output *bool `json:"output" yaml:"output"`
}

func runVerify(t *testing.T, path string, data []byte) {
	var v verifyVector
	if err := decodeStrict(path, data, &v); err != nil {
		t.Fatalf("%s: decoding verify case: %v", path, err)
	}
	if v.Output == nil {
		t.Fatalf("%s: verify case has no boolean output", path)
	}
	pub, err := unhex("pubkey", v.Input.Pubkey)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	msg, err := unhex("message", v.Input.Message)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sig, err := unhex("signature", v.Input.Signature)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(pub) != len(keystore.PublicKey{}) || len(sig) != len(keystore.Signature{}) {
		// Not representable as keystore types: only an invalid expectation makes sense.
		if *v.Output {
			t.Fatalf("%s: output true but pubkey has %d bytes and signature %d (want 48 and 96)", path, len(pub), len(sig))
		}
		return
	}
	got := keystore.Verify(keystore.PublicKey(pub), msg, keystore.Signature(sig))
	if got != *v.Output {
		t.Fatalf("%s: keystore.Verify = %v, want %v\n pubkey    %s\n message   %s\n signature %s",
			path, got, *v.Output, v.Input.Pubkey, v.Input.Message, v.Input.Signature)
	}
}

func TestBLSVectors(t *testing.T) {
	dir := vectorDir(t)
	cases := findCases(t, dir)
	ran := map[string]int{}
	skipped := map[string]int{}
	for _, c := range cases {
		if !handlers[c.kind] {
			skipped[c.kind]++
			continue
		}
		ran[c.kind]++
		t.Run(c.rel, func(t *testing.T) {
			data, err := os.ReadFile(c.path)
			if err != nil {
				t.Fatalf("%s: %v", c.path, err)
			}
			switch c.kind {
			case "sign":
				runSign(t, c.path, data)
			case "verify":
				runVerify(t, c.path, data)
			}
		})
	}
	for _, k := range slices.Sorted(maps.Keys(handlers)) {
		switch {
		case ran[k] > 0:
			t.Logf("%-26s %3d cases run", k, ran[k])
		case skipped[k] > 0:
			t.Logf("%-26s %3d cases skipped (not used by a signer)", k, skipped[k])
		}
	}
	if ran["sign"] == 0 || ran["verify"] == 0 {
		t.Fatalf("found %d sign and %d verify cases in %s (set VIGIL_SPEC_BLS_DIR to the BLS vectors); want both > 0",
			ran["sign"], ran["verify"], dir)
	}
}

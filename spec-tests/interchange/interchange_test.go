// Package interchange runs the public EIP-3076 interchange vectors
// (eth-clients/slashing-protection-interchange-tests) against every
// slashing store, and decodes Web3Signer's interchange fixtures.
//
// VIGIL_SPEC_INTERCHANGE_DIR points at the vectors (the tests/generated
// directory); it defaults to the copy in shared/testdata. The Web3Signer
// fixtures are read from VIGIL_SPEC_WEB3SIGNER_DIR (default: shared/testdata/web3signer).
package interchange_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

func envDir(name string, def ...string) string {
	if d := os.Getenv(name); d != "" {
		return d
	}
	return filepath.Join(append([]string{"..", "..", "..", "shared", "testdata"}, def...)...)
}

// store is one slashing.Store implementation under test.
type store struct {
	name string
	open func(t *testing.T) slashing.Store
}

// TestMain stops the throwaway PostgreSQL cluster (if a test started one)
// after the run.
func TestMain(m *testing.M) { pgtest.Main(m) }

// stores lists every store the vectors run against. The Postgres store opens
// a fresh database per test on the throwaway cluster (pgtest), or on the
// server at VIGIL_TEST_POSTGRES_URL; without PostgreSQL it skips with a clear
// message, and fails instead under VIGIL_REQUIRE_EXTERNAL=1.
func stores() []store {
	return []store{
		{"postgres", func(t *testing.T) slashing.Store {
			s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"sqlite", func(t *testing.T) slashing.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "slashing.db"), sqlite.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"reference-model", func(t *testing.T) slashing.Store { return slashingtest.NewMemory() }},
	}
}

func TestInterchangeVectors(t *testing.T) {
	dir := envDir("VIGIL_SPEC_INTERCHANGE_DIR", "slashing-protection-interchange-tests", "tests", "generated")
	for _, s := range stores() {
		t.Run(s.name, func(t *testing.T) {
			n := slashingtest.RunInterchangeVectors(t, dir, s.open)
			if n == 0 {
				t.Fatalf("no interchange vectors in %s", dir)
			}
			t.Logf("%s: %d EIP-3076 interchange cases", s.name, n)
		})
	}
}

// Web3Signer's import fixtures. Vigil is stricter than Web3Signer in three
// ways, on purpose: a document without "data" is invalid (the EIP-3076 schema
// requires it; Web3Signer imports nothing), a signing_root must be a 32-byte
// root (Web3Signer accepts the 3-byte "0x123456" of some fixtures), and a
// malformed entry stops the import where Web3Signer skips it.
func TestWeb3SignerFixtures(t *testing.T) {
	base := envDir("VIGIL_SPEC_WEB3SIGNER_DIR", "web3signer")
	type fixture struct {
		file    string
		valid   bool
		errHas  []string // for invalid documents: the error names the problem and its position
		entries int      // for valid documents: validators with history after import
		after   func(t *testing.T, s slashing.Store)
	}
	gvr := phase0.Root{0x04, 0x70, 0x00, 0x07, 0xfa, 0xbc, 0x82, 0x82, 0x64, 0x4a, 0xed, 0x6d, 0x1c, 0x7c, 0x9e, 0x21,
		0xd3, 0x8a, 0x03, 0xa0, 0xc4, 0xba, 0x19, 0x3f, 0x3a, 0xfe, 0x42, 0x88, 0x24, 0xb3, 0xa6, 0x73}
	var pk phase0.BLSPubKey
	if err := slashing.ParseHex("0xb845089a1457f811bfc000588fbb4e713669be8ce060ea6be3c6ece09afc3794106c91ca73acda5e5457122d58723bed", pk[:]); err != nil {
		t.Fatal(err)
	}
	var root0b phase0.Root
	if err := slashing.ParseHex("0x4ff6f743a43f3b4f95350831aeaf0a122a1a392922c45d804280284a69eb850b", root0b[:]); err != nil {
		t.Fatal(err)
	}
	sign := func(s slashing.Store, slot phase0.Slot, root phase0.Root) error {
		return s.SignBlock(context.Background(), slashing.Block{Pubkey: pk, Slot: slot, SigningRoot: root, GenesisValidatorsRoot: gvr})
	}
	fixtures := []fixture{
		{file: "slashing-interchange-fixtures/conflictingBlocks.json", valid: true, entries: 1, after: func(t *testing.T, s slashing.Store) {
			if err := sign(s, 12345, root0b); !errors.Is(err, slashing.ErrSlashable) {
				t.Fatalf("conflicting imported roots must leave the slot blocked, got %v", err)
			}
		}},
		{file: "slashing-interchange-fixtures/dataFieldNotArray.json", errHas: []string{"data", "must be an array"}},
		{file: "slashing-interchange-fixtures/duplicateAttestation.json", errHas: []string{"data[0]", "signed_attestations[0].signing_root", "32 bytes"}},
		{file: "slashing-interchange-fixtures/duplicateBlocks.json", valid: true, entries: 1, after: func(t *testing.T, s slashing.Store) {
			if err := sign(s, 12345, root0b); err != nil {
				t.Fatalf("the imported root must repeat: %v", err)
			}
		}},
		{file: "slashing-interchange-fixtures/emptyDataArray.json", valid: true, entries: 0},
		{file: "slashing-interchange-fixtures/errorInSecondBlock.json", errHas: []string{"data[0]", "signed_blocks[1].slot", "missing"}},
		{file: "slashing-interchange-fixtures/errorInSecondValidator.json", errHas: []string{"data[0]", "signing_root"}},
		{file: "slashing-interchange-fixtures/invalidAttestationContent.json", valid: true, entries: 1},
		{file: "slashing-interchange-fixtures/missingDataField.json", errHas: []string{`missing "data"`}},
		{file: "slashing-interchange-fixtures/missingPublicKey.json", errHas: []string{"data[0]", "pubkey", "missing"}},
		{file: "slashing-interchange-fixtures/multipleNullSigningRootAttestation.json", valid: true, entries: 1},
		{file: "slashing-interchange-fixtures/multipleNullSigningRootBlock.json", valid: true, entries: 1, after: func(t *testing.T, s slashing.Store) {
			if err := sign(s, 12346, root0b); !errors.Is(err, slashing.ErrSlashable) {
				t.Fatalf("a slot imported without a root must be blocked, got %v", err)
			}
		}},
		{file: "slashing-interchange-fixtures/singleValidAttestation.json", errHas: []string{"data[0]", "signing_root", "32 bytes"}},
		{file: "slashing-interchange-fixtures/singleValidBlock.json", valid: true, entries: 1},
		{file: "acceptance-fixtures/slashingImport.json", valid: true, entries: 1},
		{file: "acceptance-fixtures/slashingImport_two_entries.json", valid: true, entries: 2},
	}
	ctx := context.Background()
	for _, st := range stores() {
		for _, f := range fixtures {
			t.Run(st.name+"/"+filepath.Base(f.file), func(t *testing.T) {
				doc, err := os.ReadFile(filepath.Join(base, f.file))
				if err != nil {
					t.Fatal(err)
				}
				s := st.open(t)
				defer s.Close()
				_, err = slashing.Import(ctx, s, bytes.NewReader(doc), slashing.ImportOptions{})
				if !f.valid {
					if !errors.Is(err, slashing.ErrInterchange) {
						t.Fatalf("want an ErrInterchange, got %v", err)
					}
					for _, want := range f.errHas {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error %q does not mention %q", err, want)
						}
					}
					var exported int
					_ = s.ExportValidators(ctx, nil, func(slashing.ValidatorHistory) error { exported++; return nil })
					if exported != 0 {
						t.Errorf("an invalid document imported %d validators", exported)
					}
					t.Logf("%v", err)
					return
				}
				if err != nil {
					t.Fatalf("import: %v", err)
				}
				first := export(t, s)
				// Importing the same document again changes nothing.
				if _, err := slashing.Import(ctx, s, bytes.NewReader(doc), slashing.ImportOptions{}); err != nil {
					t.Fatalf("second import: %v", err)
				}
				if second := export(t, s); !bytes.Equal(first, second) {
					t.Fatalf("re-import changed the database:\n%s\n%s", first, second)
				}
				var n int
				if err := s.ExportValidators(ctx, nil, func(slashing.ValidatorHistory) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
				if n != f.entries {
					t.Fatalf("%d validators with history, want %d", n, f.entries)
				}
				if f.after != nil {
					f.after(t, s)
				}
			})
		}
	}
}

func export(t *testing.T, s slashing.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	err := slashing.Export(context.Background(), s, &buf, nil)
	if errors.Is(err, slashing.ErrNoGenesisValidatorsRoot) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

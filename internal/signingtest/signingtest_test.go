package signingtest

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// The fixtures are the independent check of the signer: they must not import any vigil package.
func TestImportsNothingOfVigil(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/vigil-signer/vigil/") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}

// Known answers: mainnet's deposit domain (genesis fork version, zero root) is published in
// every deposit tool; a fork's signing version switches at its epoch.
func TestKnownAnswers(t *testing.T) {
	d := ComputeDomain(t, DomainDeposit, phase0.Version{}, phase0.Root{})
	if got, want := Hex(d[:]), "0x03000000f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a9"; got != want {
		t.Errorf("mainnet deposit domain %s, want %s", got, want)
	}
	f := MainnetFork("DENEB")
	if VersionAt(f, f.Epoch-1) != MainnetFork("CAPELLA").CurrentVersion || VersionAt(f, f.Epoch) != f.CurrentVersion {
		t.Errorf("VersionAt does not switch at the fork epoch")
	}
	if f := MainnetFork("PHASE0"); f.PreviousVersion != f.CurrentVersion {
		t.Errorf("PHASE0 fork %+v: previous version is not its own", f)
	}
	if got := Uint64Root(0x0102); got[0] != 0x02 || got[1] != 0x01 {
		t.Errorf("Uint64Root is not little-endian: %x", got)
	}
}

package slashingtest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

// The reference model must itself pass the suite and every vector.
func TestMemoryConformance(t *testing.T) {
	slashingtest.Run(t, func(t *testing.T) slashing.Store { return slashingtest.NewMemory() })
}

func TestMemoryInterchangeVectors(t *testing.T) {
	dir := os.Getenv("VIGIL_SPEC_INTERCHANGE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "slashing-protection-interchange-tests", "tests", "generated")
	}
	n := slashingtest.RunInterchangeVectors(t, dir, func(t *testing.T) slashing.Store { return slashingtest.NewMemory() })
	t.Logf("%d cases", n)
}

func TestMemoryMaintenance(t *testing.T) {
	slashingtest.RunMaintenance(t, func(t *testing.T) slashing.Store { return slashingtest.NewMemory() })
}

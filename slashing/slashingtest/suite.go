// Package slashingtest is the conformance suite every slashing.Store
// implementation runs (Run, RunInterchangeVectors), and Memory, the
// in-memory reference model the suite compares stores against.
//
// A store's test looks like:
//
//	func TestConformance(t *testing.T) {
//		slashingtest.Run(t, func(t *testing.T) slashing.Store { return openFresh(t) })
//	}
//
// open must return a new, empty store each time; the suite closes it.
package slashingtest

import (
	"testing"

	"github.com/vigil-signer/vigil/slashing"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; the suite closes the stores it opens.
func Run(t *testing.T, open func(t *testing.T) slashing.Store) {
	t.Run("BlockRules", func(t *testing.T) { runSteps(t, fresh(t, open), blockRules) })
	t.Run("AttestationRules", func(t *testing.T) { runSteps(t, fresh(t, open), attestationRules) })
	t.Run("GenesisValidatorsRoot", func(t *testing.T) { testGenesis(t, fresh(t, open)) })
	t.Run("EnabledFlag", func(t *testing.T) { runSteps(t, fresh(t, open), enabledRules) })
	t.Run("ImportThenRefusals", func(t *testing.T) { runSteps(t, fresh(t, open), importRules) })
	t.Run("ImportFilterAndResult", func(t *testing.T) { testImportFilter(t, fresh(t, open)) })
	t.Run("ExportImportRoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	t.Run("ExportWithoutRoot", func(t *testing.T) { testExportWithoutRoot(t, fresh(t, open)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, fresh(t, open)) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, fresh(t, open)) })
	t.Run("MatchesReferenceModel", func(t *testing.T) { testModel(t, fresh(t, open)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
	runChunked(t, open)
}

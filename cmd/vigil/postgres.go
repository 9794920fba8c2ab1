package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
)

// openPostgres opens the shared Postgres store (migrating it unless disabled).
func openPostgres(ctx context.Context, c storeConfig) (slashing.Store, error) {
	s, err := postgres.Open(ctx, c.dbURL, postgres.Options{DisableMigrations: !c.migrate})
	if err != nil {
		return nil, fmt.Errorf("slashing-protection database %s: %w", redactURL(c.dbURL), err)
	}
	return s, nil
}

// storeMetrics exports a store's own counters, where it keeps any.
func storeMetrics(m *api.Metrics, s slashing.Store) {
	if pg, ok := s.(*postgres.Store); ok {
		m.CounterFunc("vigil_slashing_db_round_trips_total",
			"Requests sent to the Postgres slashing database (one per block or attestation signature).",
			func() float64 { return float64(pg.Stats().RoundTrips) })
		m.CounterFunc("vigil_slashing_db_fenced_total",
			"Slashing-database writes refused because this instance's leader term is stale.",
			func() float64 { return float64(pg.Stats().Fenced) })
	}
}

// redactURL hides the password of a database URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

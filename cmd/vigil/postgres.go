package main

import (
	"context"
	"errors"
	"net/url"

	"github.com/vigil-signer/vigil/slashing"
)

// openPostgres opens the shared Postgres store. (Filled in with slashing/postgres.)
func openPostgres(ctx context.Context, c storeConfig) (slashing.Store, error) {
	return nil, errors.New("postgres store not built yet")
}

// redactURL hides the password of a database URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

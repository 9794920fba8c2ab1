package main

// Flags of the active/standby pair (package failover): two `vigil serve --ha-enabled` on one
// Postgres slashing database elect one leader; only the leader signs.

import (
	"flag"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/failover"
	"github.com/vigil-signer/vigil/failover/failovermetrics"
	"github.com/vigil-signer/vigil/failover/pgelect"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
)

// haFlags are the serve flags of the HA pair.
type haFlags struct {
	enabled      bool
	instanceID   string
	lease        time.Duration
	advertiseURL string
	kekFile      string
}

func (f *haFlags) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.BoolVar(&f.enabled, "ha-enabled", false, "run as one instance of an active/standby pair on a shared Postgres slashing database: only the elected leader signs")
	fs.StringVar(&f.instanceID, "ha-instance-id", host, "this instance's name in the pair (unique among live instances; default: the host name)")
	fs.DurationVar(&f.lease, "ha-lease", 5*time.Second, "leader lease: a leader that cannot renew it stops signing before it runs out, and a standby takes over once it has run out by the database's clock")
	fs.StringVar(&f.advertiseURL, "ha-advertise-url", "", "the URL clients should use to reach this instance (shown by the standby in its 503 answers and /healthcheck)")
	fs.StringVar(&f.kekFile, "ha-key-encryption-key-file", "", "file holding the key-encryption key (32 bytes as 64 hex digits, the same on both instances) under which passwords of keystores imported through the keymanager API are stored in the shared database, so keys follow the leader")
}

// validate checks the HA settings against the store's (a pair needs the shared database).
func (f *haFlags) validate(dbURL string) error {
	if !f.enabled {
		return nil
	}
	switch {
	case dbURL == "":
		return usagef("--ha-enabled needs a Postgres slashing-protection database (--slashing-protection-db-url): the pair shares its slashing history and elects its leader there; the embedded SQLite database belongs to one instance")
	case f.instanceID == "":
		return usagef("--ha-instance-id: empty (and the host name is unknown)")
	case len(f.instanceID) > 128:
		return usagef("--ha-instance-id: longer than 128 characters")
	case f.lease < 500*time.Millisecond || f.lease > 5*time.Minute:
		return usagef("--ha-lease %s: want 500ms..5m", f.lease)
	}
	if f.advertiseURL != "" {
		u, err := url.Parse(f.advertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--ha-advertise-url %q: want an http:// or https:// URL", f.advertiseURL)
		}
	}
	return nil
}

// newElector builds the HA elector on the shared Postgres store (nil, nil when HA is off).
func (f *haFlags) newElector(store slashing.Store, sc storeConfig, reg prometheus.Registerer, log *slog.Logger) (*failover.Elector, error) {
	if !f.enabled {
		return nil, nil
	}
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil, usagef("--ha-enabled needs the Postgres slashing-protection database")
	}
	backend, err := pgelect.New(pgelect.Config{URL: sc.dbURL, ID: f.instanceID, AdvertiseURL: f.advertiseURL, Lease: f.lease})
	if err != nil {
		return nil, dsnParseError(err)
	}
	var m *failovermetrics.Metrics
	var e *failover.Elector
	e, err = failover.New(failover.Config{
		ID: f.instanceID, AdvertiseURL: f.advertiseURL, Backend: backend, Fence: pg, Lease: f.lease, Logger: log,
		OnTransition: func(t failover.Transition) { m.OnTransition(t) },
		OnRenew:      func(d time.Duration, err error) { m.OnRenew(d, err) },
	})
	if err != nil {
		return nil, err
	}
	m = failovermetrics.New(reg, e.Status)
	return e, nil
}

// leaderGate is the check of maintenance that only the leader runs (nil: always run).
func leaderGate(e *failover.Elector) func() bool {
	if e == nil {
		return func() bool { return true }
	}
	return func() bool { return e.Status().Role == failover.Leader }
}

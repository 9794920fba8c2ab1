package main

// Flags of the active/standby pair (package failover): two `vigil serve --ha-enabled` on one
// Postgres slashing database elect one leader; only the leader signs.

import (
	"context"
	"flag"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/failover"
	"github.com/vigil-signer/vigil/failover/failovermetrics"
	"github.com/vigil-signer/vigil/failover/pgelect"
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
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
// syncKeys, when it is set by the time the elector runs, brings the shared keystores into this
// instance (on promotion, with upload; on a standby when they change).
func (f *haFlags) newElector(store slashing.Store, sc storeConfig, reg prometheus.Registerer, syncKeys *func(ctx context.Context, upload bool), log *slog.Logger) (*failover.Elector, error) {
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
		Promote: func(ctx context.Context, _ int64) error {
			if *syncKeys != nil {
				(*syncKeys)(ctx, true)
			}
			return nil
		},
		KeysChanged: func(ctx context.Context, _ int64) {
			if *syncKeys != nil {
				(*syncKeys)(ctx, false)
			}
		},
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

// shareKeys makes the keymanager's keystores follow the leader: kept in the shared database
// with their passwords sealed under the key-encryption key (keyset.Managed.Share). It returns
// the sync function for the elector's hooks (nil when there is nothing to share).
func (f *haFlags) shareKeys(store slashing.Store, managed *keyset.Managed, kmEnabled bool, loader *keyset.Loader, reloadTimeout time.Duration, log *slog.Logger) (func(ctx context.Context, upload bool), error) {
	if !f.enabled || managed == nil {
		return nil, nil
	}
	if f.kekFile == "" {
		if kmEnabled {
			return nil, usagef("--ha-enabled with --key-manager-api-enabled needs --ha-key-encryption-key-file: keys imported through the keymanager API are kept in the shared database for the other instance, their passwords sealed under that key (the same file on both instances; openssl rand -hex 32)")
		}
		log.Warn("keystores imported through the keymanager API stay on this instance only: give --ha-key-encryption-key-file so they follow the leader")
		return nil, nil
	}
	kek, err := keyset.LoadKEK(f.kekFile)
	if err != nil {
		return nil, usagef("--ha-key-encryption-key-file: %v", err)
	}
	managed.Share(sharedKeystores{store.(*postgres.Store)}, kek, f.instanceID)
	var mu sync.Mutex
	pending := false // a sync changed the directory but its reload did not start
	return func(ctx context.Context, upload bool) {
		mu.Lock()
		defer mu.Unlock()
		res, err := managed.Sync(ctx, upload)
		if err != nil {
			log.Warn("ha: cannot sync the shared keystores", "err", err)
			return
		}
		for _, e := range res.Errors {
			log.Error("ha: shared keystore not synced", "err", e)
		}
		if res.Uploaded > 0 {
			log.Info("ha: keystores of this instance uploaded to the shared table", "keys", res.Uploaded)
		}
		if res.Changed() || pending {
			log.Info("ha: shared keystores synced; reloading keys", "written", res.Written, "removed", res.Removed)
			err := loader.ReloadManaged(reloadTimeout)
			if pending = err != nil; pending {
				log.Warn("ha: key reload after the keystore sync not started; retried at the next sync", "err", err)
			}
		}
	}, nil
}

// watchSharedKeystores brings changes of the shared keystore table that another writer made
// (`vigil keys import --to shared`, the other instance before a takeover) into this instance
// while it leads: every interval it reads the table's version and syncs when it moved. A standby
// follows the table through the elector's observations (KeysChanged).
func watchSharedKeystores(ctx context.Context, pg *postgres.Store, every time.Duration, leading func() bool, sync func(ctx context.Context, upload bool), log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	seen := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !leading() {
			seen = -1 // the standby path syncs meanwhile; read afresh once leading
			continue
		}
		v, err := pg.ManagedKeystoresVersion(ctx)
		if err != nil {
			log.Debug("ha: cannot read the shared keystores' version", "err", err)
			continue
		}
		if v != seen { // and once when leading begins: nothing written since the promotion's sync is missed
			sync(ctx, false)
			seen = v
		}
	}
}

// sharedKeystores adapts the Postgres store's managed_keystores table to keyset.SharedKeystores.
type sharedKeystores struct{ s *postgres.Store }

func (a sharedKeystores) PutManagedKeystore(ctx context.Context, k keyset.SharedKeystore, by string) error {
	return a.s.PutManagedKeystore(ctx, postgres.ManagedKeystore{PublicKey: phase0.BLSPubKey(k.PublicKey), Keystore: k.Keystore, Sealed: k.Sealed, KEKID: k.KEKID}, by)
}

func (a sharedKeystores) DeleteManagedKeystore(ctx context.Context, pk keystore.PublicKey, by string) error {
	return a.s.DeleteManagedKeystore(ctx, phase0.BLSPubKey(pk), by)
}

func (a sharedKeystores) ManagedKeystores(ctx context.Context) ([]keyset.SharedKeystore, error) {
	rows, err := a.s.ManagedKeystores(ctx)
	out := make([]keyset.SharedKeystore, len(rows))
	for i, r := range rows {
		out[i] = keyset.SharedKeystore{PublicKey: keystore.PublicKey(r.PublicKey), Keystore: r.Keystore, Sealed: r.Sealed, KEKID: r.KEKID}
	}
	return out, err
}

// refuseBesidePair stops a `vigil serve` without --ha-enabled from signing on a database whose
// HA pair holds a valid lease (it would sign beside the leader, which the pair promises no one
// does); otherwise the instance writes at the database's current term (adoptTerm).
func (f *haFlags) refuseBesidePair(ctx context.Context, store slashing.Store, dbURL string) error {
	if f.enabled || dbURL == "" {
		return nil
	}
	if l, err := pgelect.ReadLease(ctx, dbURL); err == nil && l.Valid && l.Holder != "" {
		return usagef("an HA pair leads this slashing-protection database (leader %s, term %d): start this instance with --ha-enabled and its own --ha-instance-id, or stop the pair first", l.Holder, l.Term)
	}
	return adoptTerm(ctx, store)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/failover/watch"
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/keystore/keyset/keysetmetrics"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/signer/signermetrics"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
)

// wiring is the object graph of `vigil serve`: built by wire, run as the ordered service list.
type wiring struct {
	c        *serveConfig
	network  *signer.Network
	keys     *keyset.Set
	devKeys  []keystore.PublicKey
	kmToken  string
	services []service
	api      *httpService
	metrics  *httpService // nil when metrics are off
	failures chan error
	cleanup  []func() // run by release, last first
}

// failed delivers a listener that stopped serving by itself.
func (w *wiring) failed() <-chan error { return w.failures }

// release undoes what wire acquired outside the services (data-dir lock, key-source
// connections, the store if the services never ran). Safe after a failed wire.
func (w *wiring) release() {
	for i := len(w.cleanup) - 1; i >= 0; i-- {
		w.cleanup[i]()
	}
	w.cleanup = nil
}

// wire builds the signer and its collaborators from the configuration and returns the services
// in start order (lifecycle.go). Nothing here serves a request yet.
func wire(ctx context.Context, c *serveConfig, getenv func(string) string, hup <-chan os.Signal, log *slog.Logger) (w *wiring, err error) {
	w = &wiring{c: c, failures: make(chan error, 2)}
	defer func() {
		if err != nil {
			w.release()
		}
	}()
	if w.network, err = signer.LoadNetwork(c.network); err != nil {
		return w, usagef("--network: %v", err)
	}
	if err := os.MkdirAll(c.store.dataDir, 0o700); err != nil {
		return w, fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(c.store.dataDir)
	if err != nil {
		return w, err
	}
	w.cleanup = append(w.cleanup, unlock)
	genesis, err := resolveGenesis(ctx, c.genesis, w.network, c.store.dataDir, c.dev, log)
	if err != nil {
		return w, err
	}
	if c.farFutureEpochs > 0 && w.network.GenesisTime.IsZero() {
		msg := "the far-future guard needs the chain's genesis time, and network " + w.network.Name + " does not know it: give --genesis-time, a --beacon-node-url, or --slashing-far-future-epochs 0 to run without the guard"
		if genesis.beaconErr != nil {
			msg += " (beacon nodes: " + genesis.beaconErr.Error() + ")"
		}
		return w, usagef("%s", msg)
	}
	if c.dev {
		if err := w.devKeystores(); err != nil {
			return w, err
		}
	}

	sources, err := keySources(c)
	if err != nil {
		return w, err
	}
	c.ks.logger = log
	sources = append(sources, c.ks.serveSources(getenv)...)
	if c.ha.enabled {
		for _, s := range sources {
			if s.Name() == "local" {
				// The keyring is a directory of this machine: the other instance cannot sign its
				// keys after a takeover unless it has the same keyring.
				log.Warn("ha: the local keyring is this machine's; its keys do not follow the leader. Import them with `vigil keys import --to shared` (or keep them in Vault or an HSM)", "keyring", c.ks.keyringDir())
			}
		}
	}
	w.cleanup = append(w.cleanup, func() {
		for _, s := range sources {
			if l, ok := s.(*lazySource); ok {
				l.Close()
			}
		}
	})
	// Keymanager: keys imported through the API are one more key source (keymanager.go), loaded
	// once at start; after that only the keymanager changes them.
	managed, err := c.km.managedKeys(c.store.dataDir)
	if err != nil {
		return w, err
	}
	if len(sources) == 0 && managed == nil {
		log.Warn("no key source configured: the signer will answer 404 to every sign request (use --keystores-path, --key-config-path, --keyring-path, --vault-address, --hsm-module, --key-manager-api-enabled or --dev)")
	}

	if err := refuseInitOnUsedDataDir(c); err != nil {
		return w, err
	}
	// --dev opts in to a new database by itself (throwaway keys, throwaway history).
	store, err := openStore(ctx, c.store, c.store.init || c.dev)
	if err != nil {
		return w, err
	}
	w.cleanup = append(w.cleanup, func() { _ = store.Close() })
	if err := c.ha.refuseBesidePair(ctx, store, c.store.dbURL); err != nil { // ha.go
		return w, err
	}
	logStoreOpened(ctx, log, c.store, store)
	if err := checkStoreGenesis(ctx, w.network, store, &genesis); err != nil {
		return w, err
	}
	logGenesis(log, w.network, genesis, c.farFutureEpochs)
	w.services = append(w.services, &closer{name: "slashing store", close: func() { _ = store.Close() }})
	reg := newRegistry(version)                                          // metrics.go
	var syncKeys func(ctx context.Context, upload bool)                  // set below once the key loader exists
	elector, err := c.ha.newElector(store, c.store, reg, &syncKeys, log) // ha.go; nil without --ha-enabled
	if err != nil {
		return w, err
	}
	isLeader := leaderGate(elector)
	if c.pruning {
		m, err := maintainer(store)
		if err != nil {
			return w, usagef("%v: set --slashing-protection-pruning-enabled=false", err)
		}
		opts := slashing.PruneOptions{KeepEpochs: c.pruneKeep, SlotsPerEpoch: w.network.SlotsPerEpoch}
		w.services = append(w.services, &loop{name: "slashing pruning", run: func(ctx context.Context) {
			pruneLoop(ctx, m, opts, c.pruneInterval, isLeader, log)
		}})
	}

	w.keys = keyset.New(nil)
	metrics := api.NewMetrics(reg)
	keyMetrics := keysetmetrics.New(reg, w.keys.Len)
	storeMetrics(metrics, store)
	clientReg, err := c.clients.load(log) // clients.go
	if err != nil {
		return w, err
	}
	authz, err := authorizer(clientReg, store, isLeader, reg, log)
	if err != nil {
		return w, err
	}
	tracker := watch.New(nil)                                                                                                   // Vigil's own view of each client's duties (miss detection)
	ctrl, err := vcFailover(c.failover, clientReg, c.genesis.beaconNodes, store, authz, tracker, w.network, isLeader, reg, log) // vcfailover.go
	if err != nil {
		return w, err
	}
	sgCfg := signer.Config{
		Network: w.network, Keys: w.keys, Store: store, FarFutureEpochs: c.farFutureEpochs,
		MaxInFlight: c.maxInFlight, Concurrency: c.concurrency, MaxQueueDelay: c.maxQueueDelay, Observer: signer.Observers{signermetrics.New(reg), tracker}, StoreTimeout: c.storeTimeout,
	}
	if elector != nil {
		sgCfg.Leadership = elector
	}
	if authz != nil {
		sgCfg.Authorizer = authz
	}
	sg, err := signer.New(sgCfg)
	if err != nil {
		return w, usagef("%v", err)
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_sign_requests_running", Help: "Sign requests holding one of the --signing-concurrency slots."},
			func() float64 { running, _ := sg.Load(); return float64(running) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_sign_requests_queued", Help: "Sign requests waiting, in arrival order, for a signing slot (at most --max-queue-delay)."},
			func() float64 { _, queued := sg.Load(); return float64(queued) }),
	)
	apiOpts := api.Options{Signer: sg, Logger: log, Metrics: metrics, MaxBodyBytes: c.maxBodyBytes}
	kmTokenFile, km, err := c.km.wire(&apiOpts, c.store.dataDir, managed, w.keys, store, log) // keymanager.go
	if err != nil {
		return w, err
	}
	w.kmToken = kmTokenFile
	loaderCfg := keyset.LoaderConfig{Sources: sources, Managed: managed, Keys: w.keys,
		Observer: keyMetrics, Logger: log, Publish: sg.SetSourceReports}
	if km != nil {
		loaderCfg.Lock = km.Locker()
	}
	loader := keyset.NewLoader(loaderCfg)
	if syncKeys, err = c.ha.shareKeys(store, managed, c.km.enabled, loader, c.reloadTimeout, log); err != nil { // ha.go
		return w, err
	}
	if syncKeys != nil {
		// Before the keys load: the standby starts hot with every key the leader imported.
		w.services = append(w.services, &starter{name: "shared keystores", start: func(ctx context.Context) { syncKeys(ctx, false) }})
	}
	w.services = append(w.services,
		&keyService{loader: loader, requireAll: c.requireAllKeys, triggers: &loop{name: "key reload triggers", run: func(ctx context.Context) {
			reloadTriggers(ctx, hup, loader, c.reloadTimeout, c.sourceRetry, func() { reloadClients(clientReg, log) }, log)
		}}},
		&loop{name: "health watch", run: func(ctx context.Context) { watchHealth(ctx, sg, healthInterval, log) }},
	)
	if elector != nil {
		// Between the keys and the listeners: a standby is hot (keys loaded) before it can lead,
		// and stops leading (releasing the lease) only after the listeners drained.
		w.services = append(w.services, elector)
		if syncKeys != nil {
			// The leader follows the shared keystore table too (keys imported with `vigil keys
			// import --to shared` sign without a reload).
			pg := store.(*postgres.Store)
			w.services = append(w.services, &loop{name: "shared keystore watch", run: func(ctx context.Context) {
				watchSharedKeystores(ctx, pg, time.Second, leaderGate(elector), syncKeys, log)
			}})
		}
	}
	if ctrl != nil {
		// After the elector (it acts only while this instance leads), before the listeners.
		w.services = append(w.services, &loop{name: "validator-client failover", run: ctrl.Run})
	}
	apiOpts.Reloader, apiOpts.ReloadTimeout = loader, c.reloadTimeout
	if err := c.http.apply(&apiOpts, log); err != nil { // httpserver.go
		return w, err
	}
	tlsCfg, err := c.clients.tlsConfig() // clients.go
	if err != nil {
		return w, err
	}
	if clientReg != nil {
		apiOpts.Clients, apiOpts.AllowUnidentified, apiOpts.KeyVisible = clientReg, c.clients.allowUnidentified, authz.Visible
		if ledger, ok := store.(slashing.FailoverLedger); ok {
			apiOpts.Failover = failoverReport{reg: clientReg, authz: authz, ledger: ledger, track: tracker}
		}
		// Before the listeners: every request is decided on the database's assignments.
		w.services = append(w.services, &starter{name: "key assignments", start: func(ctx context.Context) {
			if err := authz.Refresh(ctx); err != nil {
				log.Error("cannot read the key assignments; refreshed every 2s", "err", err)
			}
		}}, &loop{name: "key assignment refresh", run: func(ctx context.Context) {
			authz.RefreshLoop(ctx, 2*time.Second, func(err error) { log.Warn("key assignments not refreshed", "err", err) })
		}})
	}
	handler := api.Handler(apiOpts)
	w.api = &httpService{name: "signing API listener", srv: c.http.server(handler, log), grace: c.shutdownGrace,
		log: log, failed: w.failures, listen: tlsListen(tlsCfg, func() (net.Listener, error) { return c.http.listen(c.host, c.port) })}
	w.services = append(w.services, w.api)
	own, err := clientListeners(clientReg, c, handler, tlsCfg, w.failures, log)
	if err != nil {
		return w, err
	}
	for _, l := range own {
		w.services = append(w.services, l)
	}
	if c.metricsEnabled {
		w.metrics = &httpService{name: "metrics listener", srv: c.http.server(metrics.Handler(), log), grace: c.shutdownGrace,
			log: log, failed: w.failures, listen: func() (net.Listener, error) { return c.http.listen(c.metricsHost, c.metricsPort) }}
		w.services = append(w.services, w.metrics)
	}
	return w, nil
}

// devKeystores writes the --dev interop keystores (unless --keystores-path names others).
func (w *wiring) devKeystores() error {
	c := w.c
	if c.keystoresPath == "" {
		c.keystoresPath = filepath.Join(c.store.dataDir, "dev-keystores")
		c.passwordFile = filepath.Join(c.store.dataDir, "dev-keystores-password.txt")
		c.passwordsPath = ""
	}
	indices := make([]uint64, devKeyCount)
	for i := range indices {
		indices[i] = uint64(i)
	}
	var err error
	if w.devKeys, err = keystore.WriteInteropKeystores(c.keystoresPath, c.passwordFile, indices, keystore.DevKDF()); err != nil {
		return fmt.Errorf("--dev: write interop keystores: %w", err)
	}
	return nil
}

// keyService loads the keys at Start (the listeners start only after: a signer never serves
// with half its keys) and then runs the reload triggers until Stop.
type keyService struct {
	loader     *keyset.Loader
	requireAll bool
	triggers   *loop
}

func (k *keyService) Name() string { return "keys" }

func (k *keyService) Start(ctx context.Context) error {
	if err := k.loader.Start(ctx); err != nil {
		return err
	}
	if st := k.loader.Status(); k.requireAll && st.State != keyset.ReloadCompleted {
		return fmt.Errorf("--require-all-keys: %s", describeFailures(st))
	}
	return k.triggers.Start(ctx)
}

func (k *keyService) Stop() {
	k.triggers.Stop()
	k.loader.Stop()
}

// announce writes vigil.ports and tells the operator where the signer listens (after start).
func (w *wiring) announce(stdout io.Writer) {
	c := w.c
	httpPort, metricsPort := w.api.port(), 0
	if w.metrics != nil {
		metricsPort = w.metrics.port()
	}
	if err := writePorts(filepath.Join(c.store.dataDir, "vigil.ports"), httpPort, metricsPort); err != nil {
		w.api.log.Warn("cannot write vigil.ports", "err", err)
	}
	scheme := "http://"
	if c.clients.tlsCert != "" {
		scheme = "https://"
	}
	url := scheme + net.JoinHostPort(c.host, strconv.Itoa(httpPort))
	fmt.Fprintf(stdout, "vigil %s serving the signing API at %s (network %s, %d keys", version, url, w.network.Name, w.keys.Len())
	if w.metrics != nil {
		fmt.Fprintf(stdout, ", metrics at http://%s/metrics", net.JoinHostPort(c.metricsHost, strconv.Itoa(metricsPort)))
	}
	fmt.Fprintln(stdout, ")")
	if w.kmToken != "" {
		fmt.Fprintf(stdout, "keymanager API at %s/eth/v1/keystores (bearer token in %s)\n", url, w.kmToken)
	}
	if c.dev {
		fmt.Fprintf(stdout, "dev mode: interop test keys (public knowledge, never use on a real network), data in %s\n", c.store.dataDir)
		for _, pk := range w.devKeys {
			fmt.Fprintf(stdout, "  %s\n", pk)
		}
		fmt.Fprintf(stdout, "try: curl %s/api/v1/eth2/publicKeys\n", url)
	}
}

// refuseInitOnUsedDataDir stops --init-slashing-protection from recreating an embedded database
// that existed before: a data dir holding vigil.ports has served, so its database was lost, and
// a flag left in a unit file must not turn that loss into a fresh, empty history.
func refuseInitOnUsedDataDir(c *serveConfig) error {
	if !c.store.init || c.dev || c.store.dbURL != "" {
		return nil
	}
	if _, err := os.Stat(c.store.sqlitePath()); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	ports := filepath.Join(c.store.dataDir, "vigil.ports")
	if _, err := os.Stat(ports); err != nil {
		return nil
	}
	return fmt.Errorf("the slashing-protection database %s is gone, but this data dir has served before (%s): "+
		"--init-slashing-protection creates a database only on a first start. Restore the database, or rebuild it "+
		"with vigil slashing import --file <export.json> %s; if you really start over with new validators, "+
		"remove %s first", c.store.sqlitePath(), ports, c.store.flagsForHelp(), ports)
}

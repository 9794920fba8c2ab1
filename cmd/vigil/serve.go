package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// devKeyCount is how many interop keys `serve --dev` creates.
const devKeyCount = 4

type serveConfig struct {
	configFile      string
	host            string
	port            int
	metricsEnabled  bool
	metricsHost     string
	metricsPort     int
	network         string
	keystoresPath   string
	passwordFile    string
	passwordsPath   string
	keyConfigPath   string
	store           storeConfig
	storeTimeout    time.Duration
	pruning         bool
	pruneKeep       uint64
	pruneInterval   time.Duration
	farFutureEpochs uint64
	maxBodyBytes    int64
	maxInFlight     int
	logLevel        string
	logFormat       string
	dev             bool
	km              keyManagerFlags // keymanager.go
	ks              keyStoreFlags   // keystores.go: local keyring, Vault, HSM
	requireAllKeys  bool
	reloadTimeout   time.Duration
	sourceRetry     time.Duration
	http            httpFlags    // httpserver.go: connection limits, host allowlist, access log
	genesis         genesisFlags // genesis.go: genesis time and validators root of custom networks
}

func defaultDataDir(getenv func(string) string) string {
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "vigil")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "vigil")
	}
	return "vigil-data"
}

func serveFlags(c *serveConfig, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.configFile, "config-file", "", "YAML file of flag values (keys are flag names)")
	fs.StringVar(&c.host, "http-listen-host", "127.0.0.1", "address of the signing API listener")
	fs.IntVar(&c.port, "http-listen-port", 9000, "port of the signing API listener (0: pick a free port)")
	fs.BoolVar(&c.metricsEnabled, "metrics-enabled", true, "serve Prometheus /metrics on a separate listener")
	fs.StringVar(&c.metricsHost, "metrics-listen-host", "127.0.0.1", "address of the metrics listener")
	fs.IntVar(&c.metricsPort, "metrics-listen-port", 9001, "port of the metrics listener (0: pick a free port)")
	fs.StringVar(&c.network, "network", "mainnet", "mainnet, hoodi, sepolia, holesky, minimal, or the path of a consensus config YAML (default minimal with --dev)")
	fs.StringVar(&c.keystoresPath, "keystores-path", "", "directory of EIP-2335 keystores (*.json)")
	fs.StringVar(&c.passwordFile, "keystores-password-file", "", "file holding the one password of every keystore")
	fs.StringVar(&c.passwordsPath, "keystores-passwords-path", "", "directory of <keystore name>.txt password files")
	fs.StringVar(&c.keyConfigPath, "key-config-path", "", "directory of key config YAML files (file-raw, file-keystore)")
	storeFlags(fs, &c.store, getenv)
	fs.DurationVar(&c.storeTimeout, "slashing-protection-db-timeout", 5*time.Second, "longest wait for the slashing database per request; then 503, nothing signed")
	fs.BoolVar(&c.pruning, "slashing-protection-pruning-enabled", true, "prune old slashing-protection history on a schedule")
	fs.Uint64Var(&c.pruneKeep, "slashing-protection-pruning-epochs-to-keep", 250, "epochs of history kept per key by pruning")
	fs.DurationVar(&c.pruneInterval, "slashing-protection-pruning-interval", 12*time.Hour, "time between prunes (the first runs one interval after start)")
	fs.Uint64Var(&c.farFutureEpochs, "slashing-far-future-epochs", 2, "refuse blocks and attestations more than this many epochs after the wall-clock epoch (0: guard off; needed to start without a known genesis time)")
	c.genesis.register(fs)
	fs.Int64Var(&c.maxBodyBytes, "http-max-body-bytes", api.DefaultMaxBodyBytes, "largest accepted sign request body")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 4096, "concurrent sign requests before new ones get 503")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.dev, "dev", false, "development mode: create interop test keys in the data dir (network minimal unless set)")
	c.km.register(fs) // keymanager.go
	c.ks.register(fs, &c.store.dataDir)
	fs.BoolVar(&c.requireAllKeys, "require-all-keys", false, "refuse to start unless every key source loads every key (default: report failures in /healthcheck and keep going)")
	fs.DurationVar(&c.reloadTimeout, "reload-timeout", api.DefaultReloadTimeout, "longest a key reload (POST /reload, SIGHUP) may take")
	fs.DurationVar(&c.sourceRetry, "key-source-retry-interval", time.Minute, "reload the keys this often while a key source is unreachable (0: only on POST /reload or SIGHUP)")
	c.http.register(fs)              // httpserver.go
	registerWeb3SignerAliases(fs, c) // web3signer.go
	return fs
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c, getenv)
	if err := parseLayered(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, "Usage: vigil serve [flags]")
		}
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if c.dev && !explicit["network"] && getenv(envName("network")) == "" {
		c.network = "minimal"
	}
	log, err := newLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		return err
	}
	logWeb3SignerNotes(fs, log) // web3signer.go
	if c.port < 0 || c.port > 65535 || c.metricsPort < 0 || c.metricsPort > 65535 {
		return usagef("listen ports must be within 0..65535")
	}
	if c.maxBodyBytes < 1024 {
		return usagef("--http-max-body-bytes must be at least 1024")
	}
	if c.reloadTimeout <= 0 || c.sourceRetry < 0 {
		return usagef("--reload-timeout must be positive and --key-source-retry-interval not negative")
	}
	// SIGHUP means "reload keys" from the start: registered before the (possibly long) first key
	// load so that an early one never kills the process; it stays registered until exit, and a
	// SIGHUP before the listener is up is simply ignored.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	network, err := signer.LoadNetwork(c.network)
	if err != nil {
		return usagef("--network: %v", err)
	}
	if err := os.MkdirAll(c.store.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(c.store.dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	genesis, err := resolveGenesis(ctx, c.genesis, network, c.store.dataDir, c.dev, log)
	if err != nil {
		return err
	}
	if c.farFutureEpochs > 0 && network.GenesisTime.IsZero() {
		msg := "the far-future guard needs the chain's genesis time, and network " + network.Name + " does not know it: give --genesis-time, a --beacon-node-url, or --slashing-far-future-epochs 0 to run without the guard"
		if genesis.beaconErr != nil {
			msg += " (beacon nodes: " + genesis.beaconErr.Error() + ")"
		}
		return usagef("%s", msg)
	}

	var devKeys []keystore.PublicKey
	if c.dev {
		if c.keystoresPath == "" {
			c.keystoresPath = filepath.Join(c.store.dataDir, "dev-keystores")
			c.passwordFile = filepath.Join(c.store.dataDir, "dev-keystores-password.txt")
			c.passwordsPath = ""
		}
		indices := make([]uint64, devKeyCount)
		for i := range indices {
			indices[i] = uint64(i)
		}
		if devKeys, err = keystore.WriteInteropKeystores(c.keystoresPath, c.passwordFile, indices, keystore.DevKDF()); err != nil {
			return fmt.Errorf("--dev: write interop keystores: %w", err)
		}
	}

	sources, err := keySources(&c)
	if err != nil {
		return err
	}
	c.ks.logger = log
	sources = append(sources, c.ks.serveSources(getenv)...)
	defer func() {
		for _, s := range sources {
			if l, ok := s.(*lazySource); ok {
				l.Close()
			}
		}
	}()
	// Keymanager: keys imported through the API are one more key source (keymanager.go), loaded
	// once at start; after that only the keymanager changes them.
	managed, err := c.km.managedKeys(c.store.dataDir)
	if err != nil {
		return err
	}
	if len(sources) == 0 && managed == nil {
		log.Warn("no key source configured: the signer will answer 404 to every sign request (use --keystores-path, --key-config-path, --keyring-path, --vault-address, --hsm-module, --key-manager-api-enabled or --dev)")
	}

	// --dev opts in to a new database by itself (throwaway keys, throwaway history).
	store, err := openStore(ctx, c.store, c.store.init || c.dev)
	if err != nil {
		return err
	}
	defer store.Close()
	logStoreOpened(ctx, log, c.store, store)
	if err := checkStoreGenesis(ctx, network, store, &genesis); err != nil {
		return err
	}
	logGenesis(log, network, genesis, c.farFutureEpochs)
	if c.pruning {
		if c.pruneKeep == 0 || c.pruneInterval <= 0 {
			return usagef("pruning needs --slashing-protection-pruning-epochs-to-keep > 0 and a positive interval")
		}
		m, err := maintainer(store)
		if err != nil {
			return usagef("%v: set --slashing-protection-pruning-enabled=false", err)
		}
		go pruneLoop(ctx, m, slashing.PruneOptions{KeepEpochs: c.pruneKeep, SlotsPerEpoch: network.SlotsPerEpoch}, c.pruneInterval, log)
	}

	keySet := signer.NewKeySet(nil)
	metrics := api.NewMetrics(version, keySet.Len)
	storeMetrics(metrics, store)
	sg, err := signer.New(signer.Config{
		Network: network, Keys: keySet, Store: store, FarFutureEpochs: c.farFutureEpochs,
		MaxInFlight: c.maxInFlight, Observer: metrics, StoreTimeout: c.storeTimeout,
	})
	if err != nil {
		return err
	}

	apiOpts := api.Options{Signer: sg, Logger: log, Metrics: metrics, MaxBodyBytes: c.maxBodyBytes}
	kmTokenFile, km, err := c.km.wire(&apiOpts, c.store.dataDir, managed, keySet, store, log) // keymanager.go
	if err != nil {
		return err
	}
	loaderCfg := signer.LoaderConfig{Sources: sources, Managed: managed, Keys: keySet,
		Observer: metrics, Logger: log, Publish: sg.SetSourceReports, Context: ctx}
	if km != nil {
		loaderCfg.Lock = km.Locker()
	}
	loader := signer.NewKeyLoader(loaderCfg)
	st, err := loader.Load(ctx)
	if err != nil {
		return err
	}
	if st.State == signer.ReloadFailed {
		return fmt.Errorf("loading keys: %s", st.Error)
	}
	if c.requireAllKeys && st.State != signer.ReloadCompleted {
		return fmt.Errorf("--require-all-keys: %s", describeFailures(st))
	}
	apiOpts.Reloader, apiOpts.ReloadTimeout = loader, c.reloadTimeout
	go reloadTriggers(ctx, hup, loader, c.reloadTimeout, c.sourceRetry, log)
	go watchHealth(ctx, sg, healthInterval, log)
	if err := c.http.apply(&apiOpts, log); err != nil { // httpserver.go
		return err
	}
	handler := api.Handler(apiOpts)
	ln, err := c.http.listen(c.host, c.port)
	if err != nil {
		return fmt.Errorf("signing API listener: %w", err)
	}
	servers := []*http.Server{c.http.server(handler, log)}
	listeners := []net.Listener{ln}
	metricsPort := 0
	if c.metricsEnabled {
		mln, err := c.http.listen(c.metricsHost, c.metricsPort)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		servers = append(servers, c.http.server(metrics.Handler(), log))
		listeners = append(listeners, mln)
		metricsPort = mln.Addr().(*net.TCPAddr).Port
	}
	httpPort := ln.Addr().(*net.TCPAddr).Port
	if err := writePorts(filepath.Join(c.store.dataDir, "vigil.ports"), httpPort, metricsPort); err != nil {
		log.Warn("cannot write vigil.ports", "err", err)
	}

	url := "http://" + net.JoinHostPort(c.host, strconv.Itoa(httpPort))
	fmt.Fprintf(stdout, "vigil %s serving the signing API at %s (network %s, %d keys", version, url, network.Name, keySet.Len())
	if c.metricsEnabled {
		fmt.Fprintf(stdout, ", metrics at http://%s/metrics", net.JoinHostPort(c.metricsHost, strconv.Itoa(metricsPort)))
	}
	fmt.Fprintln(stdout, ")")
	if kmTokenFile != "" {
		fmt.Fprintf(stdout, "keymanager API at %s/eth/v1/keystores (bearer token in %s)\n", url, kmTokenFile)
	}
	if c.dev {
		fmt.Fprintf(stdout, "dev mode: interop test keys (public knowledge, never use on a real network), data in %s\n", c.store.dataDir)
		for _, pk := range devKeys {
			fmt.Fprintf(stdout, "  %s\n", pk)
		}
		fmt.Fprintf(stdout, "try: curl %s/api/v1/eth2/publicKeys\n", url)
	}

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
		log.Error("listener failed", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx) // in-flight requests finish; their records are already durable
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// writePorts writes the ports actually bound (useful with port 0), like Web3Signer's
// web3signer.ports.
func writePorts(path string, httpPort, metricsPort int) error {
	tmp := path + ".tmp"
	body := fmt.Sprintf("http-port=%d\nmetrics-port=%d\n", httpPort, metricsPort)
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func keySources(c *serveConfig) ([]keystore.Source, error) {
	var out []keystore.Source
	if c.keystoresPath != "" || c.passwordFile != "" || c.passwordsPath != "" {
		s, err := keystore.NewDirSource(keystore.DirConfig{
			KeystoresPath: c.keystoresPath, PasswordFile: c.passwordFile, PasswordsPath: c.passwordsPath,
		})
		if err != nil {
			return nil, usagef("%v", err)
		}
		out = append(out, s)
	}
	if c.keyConfigPath != "" {
		s, err := keystore.NewConfigSource(keystore.KeyConfig{Path: c.keyConfigPath})
		if err != nil {
			return nil, usagef("%v", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// describeFailures lists the sources and items that failed in a load.
func describeFailures(st signer.ReloadStatus) string {
	var parts []string
	for _, r := range st.Sources {
		if r.Err != nil {
			parts = append(parts, fmt.Sprintf("source %s: %v", r.Name, r.Err))
		}
		for _, e := range r.Errors {
			parts = append(parts, fmt.Sprintf("source %s: %v", r.Name, e))
		}
	}
	return strings.Join(parts, "; ")
}

// reloadTriggers reloads the keys on SIGHUP and, every retry interval, while a key source is
// unreachable as a whole (an item error, such as a bad file, waits for the operator).
func reloadTriggers(ctx context.Context, hup <-chan os.Signal, loader *signer.KeyLoader, timeout, retry time.Duration, log *slog.Logger) {
	var tick <-chan time.Time
	if retry > 0 {
		t := time.NewTicker(retry)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := loader.Start(timeout); err != nil {
				log.Warn("SIGHUP: key reload not started", "err", err)
			} else {
				log.Info("SIGHUP: key reload started")
			}
		case <-tick:
			st := loader.Status()
			for _, r := range st.Sources {
				if r.Err != nil && st.State != signer.ReloadRunning {
					log.Info("retrying unreachable key source", "source", r.Name)
					_ = loader.Start(timeout)
					break
				}
			}
		}
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// pruneLoop prunes the slashing history every interval until ctx ends. Errors are logged and the
// next interval tries again: pruning only ever removes history the raised watermarks refuse, so
// a missed prune costs disk space, never safety.
func pruneLoop(ctx context.Context, m slashing.Maintainer, opts slashing.PruneOptions, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := m.Prune(ctx, opts)
		if err != nil {
			log.Error("slashing-protection pruning failed", "err", err)
			continue
		}
		log.Info("slashing-protection history pruned", "validators", res.Validators, "blocks", res.Blocks,
			"attestations", res.Attestations, "keep_epochs", opts.KeepEpochs, "took", time.Since(start).Round(time.Millisecond))
	}
}

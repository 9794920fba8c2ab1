package main

import (
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/vigil-signer/vigil/api"
)

// devKeyCount is how many interop keys `serve --dev` creates.
const devKeyCount = 4

type serveConfig struct {
	configFile      string
	cpuProfile      string
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
	concurrency     int
	maxQueueDelay   time.Duration
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
	shutdownGrace   time.Duration
	ha              haFlags       // ha.go: the active/standby pair
	clients         clientFlags   // clients.go: validator-client identity, TLS
	failover        failoverFlags // vcfailover.go: validator-client failover
}

// Validate reports the first bad setting, naming its flag (usage error: exit 2).
func (c *serveConfig) Validate() error {
	switch {
	case c.port < 0 || c.port > 65535 || c.metricsPort < 0 || c.metricsPort > 65535:
		return usagef("listen ports must be within 0..65535")
	case c.maxBodyBytes < 1024:
		return usagef("--http-max-body-bytes must be at least 1024")
	case c.reloadTimeout <= 0 || c.sourceRetry < 0:
		return usagef("--reload-timeout must be positive and --key-source-retry-interval not negative")
	case c.pruning && (c.pruneKeep == 0 || c.pruneInterval <= 0):
		return usagef("pruning needs --slashing-protection-pruning-epochs-to-keep > 0 and a positive interval")
	case c.shutdownGrace < 0:
		return usagef("--shutdown-grace must not be negative")
	}
	if err := c.clients.validate(); err != nil {
		return err
	}
	if err := c.failover.validate(); err != nil {
		return err
	}
	return c.ha.validate(c.store.dbURL)
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
	fs.IntVar(&c.maxInFlight, "max-in-flight", 4096, "sign requests running and queued before new ones get 503 at once")
	fs.IntVar(&c.concurrency, "signing-concurrency", 64, "sign requests doing their slashing-protection write and BLS signature at once; more wait in arrival order")
	fs.DurationVar(&c.maxQueueDelay, "max-queue-delay", time.Second, "longest a sign request waits for a signing slot: one expected to wait longer gets 503 at once (Retry-After: 1), one that waited that long gets 503 then")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.cpuProfile, "cpu-profile", "", "diagnostics: write a Go CPU profile of the whole run to this file (read it with go tool pprof)")
	fs.BoolVar(&c.dev, "dev", false, "development mode: create interop test keys in the data dir (network minimal unless set)")
	c.km.register(fs) // keymanager.go
	c.ks.register(fs, &c.store.dataDir)
	fs.BoolVar(&c.requireAllKeys, "require-all-keys", false, "refuse to start unless every key source loads every key (default: report failures in /healthcheck and keep going)")
	fs.DurationVar(&c.reloadTimeout, "reload-timeout", api.DefaultReloadTimeout, "longest a key reload (POST /reload, SIGHUP) may take")
	fs.DurationVar(&c.sourceRetry, "key-source-retry-interval", time.Minute, "reload the keys this often while a key source is unreachable (0: only on POST /reload or SIGHUP)")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "on SIGTERM/SIGINT, how long in-flight requests may finish before their connections are closed")
	c.http.register(fs)              // httpserver.go
	c.ha.register(fs)                // ha.go
	c.clients.register(fs)           // clients.go
	c.failover.register(fs)          // vcfailover.go
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

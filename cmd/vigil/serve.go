package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/slashing"
)

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
	raiseProcs(getenv, log)     // procs.go
	if c.cpuProfile != "" {
		stop, err := startCPUProfile(c.cpuProfile) // procs.go
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := c.Validate(); err != nil {
		return err
	}
	// SIGHUP means "reload keys" from the start: registered before the (possibly long) first key
	// load so that an early one never kills the process; it stays registered until exit, and a
	// SIGHUP before the listener is up is simply ignored.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	w, err := wire(ctx, &c, getenv, hup, log) // wiring.go
	if err != nil {
		return err
	}
	defer w.release()
	lc := &lifecycle{log: log}
	if err := lc.start(ctx, w.services...); err != nil {
		return err
	}
	w.announce(stdout)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-w.failed():
		log.Error("listener failed", "err", err)
	}
	lc.stop() // listeners drain first, the store closes last
	return err
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
		s, err := keystore.NewConfigSource(keystore.KeyConfig{Path: c.keyConfigPath, Loaders: keyConfigLoaders()})
		if err != nil {
			return nil, usagef("%v", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// describeFailures lists the sources and items that failed in a load.
func describeFailures(st keyset.ReloadStatus) string {
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

// reloadTriggers reloads the keys (and runs onHUP) on SIGHUP and, every retry interval, while a key source is
// unreachable as a whole (an item error, such as a bad file, waits for the operator).
func reloadTriggers(ctx context.Context, hup <-chan os.Signal, loader *keyset.Loader, timeout, retry time.Duration, onHUP func(), log *slog.Logger) {
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
			onHUP()
			if err := loader.Reload(timeout); err != nil {
				log.Warn("SIGHUP: key reload not started", "err", err)
			} else {
				log.Info("SIGHUP: key reload started")
			}
		case <-tick:
			st := loader.Status()
			for _, r := range st.Sources {
				if r.Err != nil && st.State != keyset.ReloadRunning {
					log.Info("retrying unreachable key source", "source", r.Name)
					_ = loader.Reload(timeout)
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

// pruneLoop prunes the slashing history every interval until ctx ends, on the leader only. Errors are logged and the
// next interval tries again: pruning only ever removes history the raised watermarks refuse, so
// a missed prune costs disk space, never safety.
func pruneLoop(ctx context.Context, m slashing.Maintainer, opts slashing.PruneOptions, every time.Duration, isLeader func() bool, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !isLeader() {
			continue // an HA standby: the leader prunes (its writes would be fenced here anyway)
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

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
)

const slashingUsage = `Usage:
  vigil slashing init                                  create an empty database (new validators only)
  vigil slashing import --file <interchange.json>      merge an EIP-3076 file (creates the database if needed)
  vigil slashing export [--file out.json] [--pubkeys]  write the history as EIP-3076 v5
  vigil slashing prune [--keep-epochs 250]             drop history older than N epochs per key
  vigil slashing watermark [--slot S --epoch E] [--high-slot S --high-epoch E | --remove-high] [--pubkeys]
                                                       raise low watermarks / set the high watermark
  vigil slashing migrate                               run the Postgres schema migrations
Every command takes --data-dir / --slashing-db-path (embedded) or --slashing-protection-db-url (Postgres).
Only init and import create a missing database (others need --init-slashing-protection).
`

func slashingCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("slashing: missing command\n\n%s", slashingUsage)
	}
	sub := args[0]
	var sc storeConfig
	var configFile, file, pubkeys, network string
	var keepEpochs, slot, epoch, highSlot, highEpoch uint64
	var removeHigh bool
	fs := flag.NewFlagSet("slashing "+sub, flag.ContinueOnError)
	fs.StringVar(&configFile, "config-file", "", "YAML file of flag values (keys are flag names)")
	storeFlags(fs, &sc, getenv)
	switch sub {
	case "import":
		fs.StringVar(&file, "file", "", "EIP-3076 interchange file to import ('-' for stdin)")
	case "export":
		fs.StringVar(&file, "file", "-", "where to write the interchange document ('-' for stdout)")
		fs.StringVar(&pubkeys, "pubkeys", "", "comma-separated public keys to export (default: all)")
	case "prune":
		fs.Uint64Var(&keepEpochs, "keep-epochs", 250, "epochs of history to keep per key")
		fs.StringVar(&network, "network", "mainnet", "network (for its slots per epoch)")
	case "watermark":
		fs.Uint64Var(&slot, "slot", 0, "raise every (or each --pubkeys) key's block low watermark to this slot")
		fs.Uint64Var(&epoch, "epoch", 0, "raise the attestation low watermarks (source and target) to this epoch")
		fs.Uint64Var(&highSlot, "high-slot", 0, "set the high watermark slot (with --high-epoch)")
		fs.Uint64Var(&highEpoch, "high-epoch", 0, "set the high watermark epoch (with --high-slot)")
		fs.BoolVar(&removeHigh, "remove-high", false, "remove the high watermark")
		fs.StringVar(&pubkeys, "pubkeys", "", "comma-separated public keys (default: every key in the database)")
	case "migrate", "init":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, slashingUsage)
		return nil
	default:
		return usagef("slashing: unknown command %q\n\n%s", sub, slashingUsage)
	}
	if err := parseLayered(fs, args[1:], getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, slashingUsage)
		}
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pks, err := parsePubkeys(pubkeys)
	if err != nil {
		return err
	}

	switch sub {
	case "import":
		if file == "" {
			return usagef("slashing import: --file is required")
		}
		return slashingImport(ctx, sc, file, stdout, stderr)
	case "export":
		return slashingExport(ctx, sc, file, pks, stderr)
	case "prune":
		n, err := signer.LoadNetwork(network)
		if err != nil {
			return usagef("--network: %v", err)
		}
		store, err := openToolStore(ctx, sc, false)
		if err != nil {
			return err
		}
		defer store.Close()
		m, err := maintainer(store)
		if err != nil {
			return err
		}
		res, err := m.Prune(ctx, slashing.PruneOptions{KeepEpochs: keepEpochs, SlotsPerEpoch: n.SlotsPerEpoch})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pruned %d validators: %d blocks and %d attestations older than %d epochs removed (%s)\n",
			res.Validators, res.Blocks, res.Attestations, keepEpochs, sc.describe())
		return nil
	case "watermark":
		return slashingWatermark(ctx, sc, set, pks, slot, epoch, highSlot, highEpoch, removeHigh, stdout)
	case "init":
		return slashingInit(ctx, sc, stdout)
	case "migrate":
		if sc.dbURL == "" {
			return usagef("slashing migrate: the embedded database migrates itself at open; --slashing-protection-db-url is required")
		}
		sc.migrate = true
		store, err := openToolStore(ctx, sc, sc.init)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "schema up to date (%s)\n", sc.describe())
		return store.Close()
	}
	return nil
}

func parsePubkeys(list string) ([]phase0.BLSPubKey, error) {
	var out []phase0.BLSPubKey
	for _, s := range splitList(list) {
		pk, err := keystore.ParsePublicKey(s)
		if err != nil {
			return nil, usagef("--pubkeys: %q: %v", s, err)
		}
		out = append(out, phase0.BLSPubKey(pk))
	}
	return out, nil
}

// maintainer returns the store's lifecycle side (pruning, watermarks).
func maintainer(s slashing.Store) (slashing.Maintainer, error) {
	m, ok := s.(slashing.Maintainer)
	if !ok {
		return nil, fmt.Errorf("the %T slashing store does not support pruning or watermark repair", s)
	}
	return m, nil
}

func slashingWatermark(ctx context.Context, sc storeConfig, set map[string]bool, pks []phase0.BLSPubKey,
	slot, epoch, highSlot, highEpoch uint64, removeHigh bool, stdout io.Writer) error {
	raise := set["slot"] || set["epoch"]
	high := set["high-slot"] || set["high-epoch"]
	switch {
	case raise && !(set["slot"] && set["epoch"]):
		return usagef("slashing watermark: --slot and --epoch go together")
	case high && !(set["high-slot"] && set["high-epoch"]):
		return usagef("slashing watermark: --high-slot and --high-epoch go together")
	case high && removeHigh:
		return usagef("slashing watermark: --remove-high excludes --high-slot/--high-epoch")
	}
	store, err := openToolStore(ctx, sc, sc.init) // a new database needs --init-slashing-protection, as everywhere
	if err != nil {
		return err
	}
	defer store.Close()
	m, err := maintainer(store)
	if err != nil {
		return err
	}
	if raise {
		n, err := m.RaiseLowWatermarks(ctx, pks, phase0.Slot(slot), phase0.Epoch(epoch))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "low watermarks raised to slot %d, epoch %d on %d keys\n", slot, epoch, n)
	}
	switch {
	case high:
		if err := m.SetHighWatermark(ctx, &slashing.HighWatermark{Slot: phase0.Slot(highSlot), Epoch: phase0.Epoch(highEpoch)}); err != nil {
			return err
		}
	case removeHigh:
		if err := m.SetHighWatermark(ctx, nil); err != nil {
			return err
		}
	}
	hw, err := m.HighWatermark(ctx)
	if err != nil {
		return err
	}
	if hw == nil {
		fmt.Fprintln(stdout, "high watermark: none")
	} else {
		fmt.Fprintf(stdout, "high watermark: slot %d, epoch %d (blocks and votes at or above are refused)\n", hw.Slot, hw.Epoch)
	}
	return nil
}

func slashingImport(ctx context.Context, sc storeConfig, file string, stdout, stderr io.Writer) error {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	// An import may create the database: it is how a lost database is rebuilt from an export,
	// and the history it brings is what protects the keys.
	store, err := openToolStore(ctx, sc, true)
	if err != nil {
		return err
	}
	defer store.Close()
	if ss, ok := store.(storeSummary); ok {
		if sum, err := ss.Summary(ctx); err == nil && sum.Created {
			fmt.Fprintf(stderr, "import: created a new slashing-protection database (%s)\n", sc.describe())
		}
	}
	start, last := time.Now(), time.Now()
	workers := 1 // the embedded store has one writer
	if sc.dbURL != "" {
		workers = 4 // Postgres merges different keys concurrently
	}
	res, err := slashing.Import(ctx, store, r, slashing.ImportOptions{Workers: workers, Progress: func(p slashing.ImportProgress) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "import: %d validators, %.1f MB read, %s\n", p.Imported, float64(p.BytesRead)/1e6, time.Since(start).Round(time.Second))
		}
	}})
	if err != nil {
		return fmt.Errorf("import %s: %w (validators imported before the error: %d; importing again is safe)", file, err, res.Imported)
	}
	fmt.Fprintf(stdout, "imported %d validators (%d blocks, %d attestations) for genesis validators root %#x into %s in %s\n",
		res.Imported, res.Blocks, res.Attestations, res.GenesisValidatorsRoot[:], sc.describe(), time.Since(start).Round(time.Millisecond))
	return nil
}

func slashingExport(ctx context.Context, sc storeConfig, file string, pubkeys []phase0.BLSPubKey, stderr io.Writer) error {
	store, err := openToolStore(ctx, sc, false)
	if err != nil {
		return err
	}
	defer store.Close()
	if file == "-" {
		return slashing.Export(ctx, store, os.Stdout, pubkeys)
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := slashing.Export(ctx, store, f, pubkeys); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported to %s\n", file)
	return nil
}

// slashingInit creates an empty slashing-protection database (the explicit opt-in that serve's
// --init-slashing-protection also gives); an existing one is left as it is and described.
func slashingInit(ctx context.Context, sc storeConfig, stdout io.Writer) error {
	store, err := openToolStore(ctx, sc, true)
	if err != nil {
		return err
	}
	defer store.Close()
	sum, err := store.(storeSummary).Summary(ctx)
	if err != nil {
		return err
	}
	if sum.Created {
		fmt.Fprintf(stdout, "created an empty slashing-protection database (%s)\n", sc.describe())
		return nil
	}
	fmt.Fprintf(stdout, "the slashing-protection database already exists, left as it is (%s: %d validators, %d blocks, %d attestations)\n",
		sc.describe(), sum.Validators, sum.Blocks, sum.Attestations)
	return nil
}

// openToolStore opens the store for a `vigil slashing` command. On Postgres the command writes at
// the database's current fencing term, as one more writer beside the leader of an HA pair (the
// per-key locks serialise it with every signature; a leader change while it runs fences it, and
// it fails with nothing half-written per validator).
func openToolStore(ctx context.Context, sc storeConfig, create bool) (slashing.Store, error) {
	store, err := openStore(ctx, sc, create)
	if err != nil {
		return nil, err
	}
	if err := adoptTerm(ctx, store); err != nil {
		_ = store.Close()
		return nil, err
	}
	return store, nil
}

// adoptTerm makes a Postgres store write at the database's current fencing term (a writer that
// is not an elected HA leader: `vigil slashing`, or `vigil serve` without --ha-enabled on a
// database an HA pair used before).
func adoptTerm(ctx context.Context, store slashing.Store) error {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil
	}
	term, err := pg.DatabaseTerm(ctx)
	if err == nil && term != pg.Term() {
		err = pg.SetTerm(ctx, term)
	}
	if err != nil {
		return fmt.Errorf("slashing-protection database: reading its fencing term: %w", err)
	}
	return nil
}

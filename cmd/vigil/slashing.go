package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

const slashingUsage = `Usage:
  vigil slashing import --file <interchange.json> [flags]
  vigil slashing export [--file <out.json>] [--pubkeys 0x..,0x..] [flags]
`

type slashingConfig struct {
	configFile     string
	dataDir        string
	slashingDBPath string
	file           string
	pubkeys        string
}

func slashingCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "import" && args[0] != "export") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, slashingUsage)
			return nil
		}
		return usagef("slashing: want import or export\n\n%s", slashingUsage)
	}
	sub := args[0]
	var c slashingConfig
	fs := flag.NewFlagSet("slashing "+sub, flag.ContinueOnError)
	fs.StringVar(&c.configFile, "config-file", "", "YAML file of flag values (keys are flag names)")
	fs.StringVar(&c.dataDir, "data-dir", defaultDataDir(getenv), "data directory of the signer")
	fs.StringVar(&c.slashingDBPath, "slashing-db-path", "", "embedded slashing-protection database (default <data-dir>/slashing-protection.sqlite)")
	if sub == "import" {
		fs.StringVar(&c.file, "file", "", "EIP-3076 interchange file to import ('-' for stdin)")
	} else {
		fs.StringVar(&c.file, "file", "-", "where to write the interchange document ('-' for stdout)")
		fs.StringVar(&c.pubkeys, "pubkeys", "", "comma-separated public keys to export (default: all)")
	}
	if err := parseLayered(fs, args[1:], getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, slashingUsage)
		}
		return err
	}
	if c.file == "" {
		return usagef("slashing %s: --file is required", sub)
	}
	dbPath := c.slashingDBPath
	if dbPath == "" {
		dbPath = filepath.Join(c.dataDir, "slashing-protection.sqlite")
	}
	if sub == "import" {
		return slashingImport(ctx, dbPath, c.file, stdout)
	}
	var pubkeys []phase0.BLSPubKey
	for _, s := range splitList(c.pubkeys) {
		pk, err := keystore.ParsePublicKey(s)
		if err != nil {
			return usagef("--pubkeys: %q: %v", s, err)
		}
		pubkeys = append(pubkeys, phase0.BLSPubKey(pk))
	}
	return slashingExport(ctx, dbPath, c.file, pubkeys, stderr)
}

func slashingImport(ctx context.Context, dbPath, file string, stdout io.Writer) error {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return err
	}
	store, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		return fmt.Errorf("slashing-protection database %s: %w", dbPath, err)
	}
	defer store.Close()
	res, err := slashing.Import(ctx, store, r, slashing.ImportOptions{})
	if err != nil {
		return fmt.Errorf("import %s: %w (validators imported before the error: %d; importing again is safe)", file, err, res.Imported)
	}
	fmt.Fprintf(stdout, "imported %d validators (%d blocks, %d attestations) for genesis validators root %#x into %s\n",
		res.Imported, res.Blocks, res.Attestations, res.GenesisValidatorsRoot[:], dbPath)
	return nil
}

func slashingExport(ctx context.Context, dbPath, file string, pubkeys []phase0.BLSPubKey, stderr io.Writer) error {
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("slashing-protection database %s: %w", dbPath, err)
	}
	store, err := sqlite.Open(ctx, dbPath, sqlite.Options{})
	if err != nil {
		return fmt.Errorf("slashing-protection database %s: %w", dbPath, err)
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

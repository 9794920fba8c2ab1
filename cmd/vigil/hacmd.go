package main

// `vigil ha status` and `vigil ha step-down`: the lease row of the active/standby pair, read or
// asked to change hands, straight from the shared Postgres database.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/vigil-signer/vigil/failover/pgelect"
)

const haUsage = `Usage: vigil ha <command> [flags]

Commands:
  status      print the lease row (leader, term, renewed ago, advertise URL); exit 1 when no
              leader holds a valid lease
  step-down   ask the leader to hand over to the standby at its next renewal (maintenance);
              it then holds off for two leases. Exit 1 when no leader holds a valid lease.

Flags: --slashing-protection-db-url (or VIGIL_SLASHING_PROTECTION_DB_URL, or --config-file).
`

func haCmd(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usagef("ha: missing command\n\n%s", haUsage)
	}
	sub := args[0]
	switch sub {
	case "status", "step-down":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, haUsage)
		return nil
	default:
		return usagef("ha: unknown command %q\n\n%s", sub, haUsage)
	}
	var sc storeConfig
	var configFile string
	fs := flag.NewFlagSet("ha "+sub, flag.ContinueOnError)
	fs.StringVar(&configFile, "config-file", "", "YAML file of flag values (keys are flag names)")
	storeFlags(fs, &sc, getenv)
	if err := parseLayered(fs, args[1:], getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, "Usage: vigil ha "+sub+" [flags]")
		}
		return err
	}
	if sc.dbURL == "" {
		return usagef("ha %s: needs --slashing-protection-db-url (the pair's shared database)", sub)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	where := describeDSN(sc.dbURL)
	if sub == "step-down" {
		holder, term, ok, err := pgelect.RequestStepDown(ctx, sc.dbURL)
		if err != nil {
			return fmt.Errorf("ha step-down (%s): %s", where, scrubDSN(err.Error(), sc.dbURL))
		}
		if !ok {
			return errors.New("ha step-down: no leader holds a valid lease")
		}
		fmt.Fprintf(stdout, "asked %s (term %d) to step down; the standby takes over at its next renewal\n", holder, term)
		return nil
	}
	l, err := pgelect.ReadLease(ctx, sc.dbURL)
	if err != nil {
		return fmt.Errorf("ha status (%s): %s", where, scrubDSN(err.Error(), sc.dbURL))
	}
	state := "valid"
	if !l.Valid {
		state = "EXPIRED or released"
	}
	holder := l.Holder
	if holder == "" {
		holder = "(never held)"
	}
	url := l.AdvertiseURL
	if url == "" {
		url = "(none advertised)"
	}
	fmt.Fprintf(stdout, "leader:         %s\nterm:           %d\nrenewed:        %s ago\nlease:          %s\nadvertise url:  %s\n",
		holder, l.Term, l.Age.Round(time.Millisecond), state, url)
	if l.StepDown {
		fmt.Fprintln(stdout, "step-down:      requested")
	}
	if !l.Valid || l.Holder == "" {
		return errors.New("ha status: no leader holds a valid lease")
	}
	return nil
}

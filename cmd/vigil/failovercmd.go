package main

// `vigil failover status|assign`: the key → validator-client assignments in the slashing
// database, read or changed by an operator (a manual failover: once a key is assigned to
// another client, the old client's requests for it get 403 on every Vigil instance within
// their next refresh, 2 s).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/slashing"
)

const failoverUsage = `Usage: vigil failover <command> [flags]

Commands:
  status   the validator clients and how many keys each is assigned
  assign   assign keys to a client: --client C (--pubkeys K1,K2,… | --from C2); the previous
           client's requests for them are refused (403) from then on

Flags: the slashing database (--data-dir / --slashing-db-path, or --slashing-protection-db-url),
--clients-file (checks the client names).
`

func failoverCmd(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usagef("failover: missing command\n\n%s", failoverUsage)
	}
	sub := args[0]
	switch sub {
	case "status", "assign":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, failoverUsage)
		return nil
	default:
		return usagef("failover: unknown command %q\n\n%s", sub, failoverUsage)
	}
	var sc storeConfig
	var configFile, clientsFile, client, from, pubkeys string
	fs := flag.NewFlagSet("failover "+sub, flag.ContinueOnError)
	fs.StringVar(&configFile, "config-file", "", "YAML file of flag values (keys are flag names)")
	storeFlags(fs, &sc, getenv)
	fs.StringVar(&clientsFile, "clients-file", "", "the clients file of vigil serve (checks client names; lists clients without keys)")
	if sub == "assign" {
		fs.StringVar(&client, "client", "", "the client the keys are assigned to")
		fs.StringVar(&from, "from", "", "move every key of this client")
		fs.StringVar(&pubkeys, "pubkeys", "", "comma-separated public keys to assign")
	}
	if err := parseLayered(fs, args[1:], getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, "Usage: vigil failover "+sub+" [flags]")
		}
		return err
	}
	var set *clients.Set
	if clientsFile != "" {
		var err error
		if set, err = clients.Load(clientsFile); err != nil {
			return usagef("--clients-file: %v", err)
		}
	}
	store, err := openToolStore(ctx, sc, false)
	if err != nil {
		return err
	}
	defer store.Close()
	asg, ok := store.(slashing.Assigner)
	if !ok {
		return fmt.Errorf("the slashing store keeps no key assignments")
	}
	owners, err := asg.KeyAssignments(ctx)
	if err != nil {
		return err
	}
	if sub == "status" {
		count := map[string]int{}
		for _, c := range owners {
			count[c]++
		}
		var names []string
		if set != nil {
			for _, c := range set.Clients() {
				names = append(names, c.Name)
				fmt.Fprintf(stdout, "%-20s %-8s %6d keys\n", c.Name, c.Role, count[c.Name])
				delete(count, c.Name)
			}
		}
		for n := range count {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if k, left := count[n]; left {
				fmt.Fprintf(stdout, "%-20s %-8s %6d keys (not in the clients file)\n", n, "?", k)
			}
		}
		fmt.Fprintf(stdout, "%d keys assigned (%s)\n", len(owners), sc.describe())
		return nil
	}
	if client == "" || (from == "") == (pubkeys == "") {
		return usagef("failover assign: want --client and one of --pubkeys or --from")
	}
	if set != nil {
		if _, ok := set.Get(client); !ok {
			return usagef("failover assign: %q is not a client of %s", client, clientsFile)
		}
	}
	var keys []phase0.BLSPubKey
	if from != "" {
		for k, c := range owners {
			if c == from {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return fmt.Errorf("failover assign: client %q has no keys", from)
		}
	} else {
		pks, err := parsePubkeys(pubkeys)
		if err != nil {
			return err
		}
		keys = pks
	}
	if err := asg.AssignKeys(ctx, keys, client); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "assigned %d keys to %s\n", len(keys), client)
	return nil
}

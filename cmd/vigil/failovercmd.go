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
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/slashing"
)

const failoverUsage = `Usage: vigil failover <command> [flags]

Commands:
  status    the validator clients: role, keys assigned, fenced or not, consecutive missed epochs
  assign    assign keys to a client: --client C (--pubkeys K1,K2,… | --from C2); the previous
            client's requests for them are refused (403) from then on
  fence     --client C: fence a client out (the controller moves nothing to it, judges it no more)
  unfence   --client C: let a failed client back (after it was repaired)
  history   the audit log of failover and operator actions, newest first (--limit N)

Flags: the slashing database (--data-dir / --slashing-db-path, or --slashing-protection-db-url),
--clients-file (checks the client names).
`

func failoverCmd(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usagef("failover: missing command\n\n%s", failoverUsage)
	}
	sub := args[0]
	switch sub {
	case "status", "assign", "fence", "unfence", "history":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, failoverUsage)
		return nil
	default:
		return usagef("failover: unknown command %q\n\n%s", sub, failoverUsage)
	}
	var sc storeConfig
	var configFile, clientsFile, client, from, pubkeys, reason string
	var limit int
	fs := flag.NewFlagSet("failover "+sub, flag.ContinueOnError)
	fs.StringVar(&configFile, "config-file", "", "YAML file of flag values (keys are flag names)")
	storeFlags(fs, &sc, getenv)
	fs.StringVar(&clientsFile, "clients-file", "", "the clients file of vigil serve (checks client names; lists clients without keys)")
	switch sub {
	case "assign":
		fs.StringVar(&client, "client", "", "the client the keys are assigned to")
		fs.StringVar(&from, "from", "", "move every key of this client")
		fs.StringVar(&pubkeys, "pubkeys", "", "comma-separated public keys to assign")
	case "fence", "unfence":
		fs.StringVar(&client, "client", "", "the client")
		fs.StringVar(&reason, "reason", "operator", "why (kept in the audit log)")
	case "history":
		fs.IntVar(&limit, "limit", 50, "how many records")
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
	ledger, ok := store.(slashing.FailoverLedger)
	if !ok {
		return fmt.Errorf("the slashing store keeps no failover state")
	}
	owners, err := asg.KeyAssignments(ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		states, err := ledger.ClientStates(ctx)
		if err != nil {
			return err
		}
		return failoverStatus(stdout, set, owners, states, sc.describe())
	case "history":
		recs, err := ledger.AuditLog(ctx, limit)
		if err != nil {
			return err
		}
		for _, r := range recs {
			fmt.Fprintf(stdout, "%s  %-8s from=%-12s to=%-12s keys=%-5d %s %s\n", r.At.UTC().Format(time.RFC3339), r.Action, r.From, r.To, r.Keys, r.Reason, r.Detail)
		}
		return nil
	case "fence", "unfence":
		if client == "" {
			return usagef("failover %s: want --client", sub)
		}
		if err := ledger.SetFenced(ctx, client, sub == "fence", reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sd %s\n", sub, client)
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

func failoverStatus(w io.Writer, set *clients.Set, owners map[phase0.BLSPubKey]string, states map[string]slashing.ClientState, where string) error {
	count := map[string]int{}
	for _, c := range owners {
		count[c]++
	}
	line := func(name, role string, note string) {
		st := states[name]
		fenced := "-"
		if st.Fenced {
			fenced = "FENCED (" + st.Reason + ")"
		}
		fmt.Fprintf(w, "%-20s %-8s %6d keys  missed %d  %s%s\n", name, role, count[name], st.Missed, fenced, note)
	}
	seen := map[string]bool{}
	if set != nil {
		for _, c := range set.Clients() {
			line(c.Name, string(c.Role), "")
			seen[c.Name] = true
		}
	}
	var rest []string
	for n := range count {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	for n := range states {
		if !seen[n] && count[n] == 0 {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		line(n, "?", " (not in the clients file)")
	}
	fmt.Fprintf(w, "%d keys assigned (%s)\n", len(owners), where)
	return nil
}

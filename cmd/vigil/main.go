// Command vigil is the Vigil remote signer: `vigil serve` runs the Web3Signer-compatible signing
// API; `vigil slashing import|export` moves EIP-3076 interchange data; `vigil version` prints the
// build. Every flag can also be set as VIGIL_<FLAG> or in a YAML --config-file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const topUsage = `vigil: a remote signer for Ethereum validators (Web3Signer-compatible API)

Usage:
  vigil serve [flags]              run the signer (vigil serve --dev: demo keys, no setup)
  vigil keys import [flags]        import EIP-2335 keystores into the local keyring, Vault or an HSM
  vigil keys list|delete|generate  list, delete or generate keys
  vigil slashing init [flags]      create an empty slashing-protection database
  vigil slashing import [flags]    import an EIP-3076 interchange file
  vigil slashing export [flags]    export the slashing-protection history
  vigil ha status|step-down        the HA pair's lease (leader, term), or ask the leader to hand over
  vigil failover status|assign     which validator client each key is assigned to; move keys
  vigil bench [flags]              measure raw BLS vs end-to-end HTTP signing throughput
  vigil version                    print the version
  vigil [options] eth2 [options]   Web3Signer's command line, run as vigil serve (see serve --help)

Run "vigil <command> --help" for the flags of a command.
`

// run is the whole program behind main, so tests can drive it in-process.
// Exit status: 0 success, 1 runtime failure, 2 usage error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr)
	case "slashing":
		err = slashingCmd(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		err = keysCmd(ctx, args[1:], getenv, stdout, stderr)
	case "ha":
		err = haCmd(ctx, args[1:], getenv, stdout, stderr)
	case "failover":
		err = failoverCmd(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		err = bench(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "vigil %s\n", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, topUsage)
	case "eth2":
		err = eth2Cmd(ctx, args, getenv, stdout, stderr)
	default:
		if strings.HasPrefix(args[0], "-") { // Web3Signer's [global options] eth2 [eth2 options]
			err = eth2Cmd(ctx, args, getenv, stdout, stderr)
			break
		}
		err = usagef("unknown command %q\n\n%s", args[0], topUsage)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "vigil: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "vigil: %v\n", err)
		return 1
	}
}

// eth2Cmd runs Web3Signer's command-line shape, `[global options] eth2 [eth2 options]`, as
// `vigil serve` with the options of both sides.
func eth2Cmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c, getenv)
	isBool := func(name string) (bool, bool) {
		f := fs.Lookup(name)
		if f == nil {
			return false, false
		}
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		return true, ok && b.IsBoolFlag()
	}
	serveArgs, ok, err := eth2Args(args, isBool)
	if err != nil {
		return err
	}
	if !ok {
		return usagef("unknown command %q: options before a command are Web3Signer's form, which needs the eth2 subcommand (vigil [options] eth2 [options])\n\n%s", args[0], topUsage)
	}
	return serve(ctx, serveArgs, getenv, stdout, stderr)
}

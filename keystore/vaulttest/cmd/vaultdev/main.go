// Command vaultdev runs an in-memory HashiCorp Vault (vault v1.21.4's core, see package vaultcore)
// until interrupted, for benchmarks and black-box end-to-end runs of the signer. It prints the
// shell variables to reach it:
//
//	VAULT_ADDR=http://127.0.0.1:8200
//	VAULT_TOKEN=hvs.…
//	VAULT_CACERT=/tmp/…/vault-ca.pem   (with -tls)
//
// It is a development tool: everything is lost when it stops, and it prints a root token.
//
// Usage: vaultdev [-addr 127.0.0.1:8200] [-tls] [-dir DIR] [-kv-mount secret] [-approle-mount approle] [-log-level off]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/vigil-signer/vigil/keystore/vaulttest/vaultcore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vaultdev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts vaultcore.Options
	fs.StringVar(&opts.Addr, "addr", "127.0.0.1:8200", "listen address (port 0: a random free port)")
	fs.BoolVar(&opts.TLS, "tls", false, "serve HTTPS with a generated CA (its PEM file is printed as VAULT_CACERT)")
	fs.StringVar(&opts.Dir, "dir", "", "directory for the CA file (default: a temporary directory)")
	fs.StringVar(&opts.KVMount, "kv-mount", "secret", "path of the KV version 2 engine")
	fs.StringVar(&opts.AppRoleMount, "approle-mount", "approle", "path of the AppRole auth method")
	level := fs.String("log-level", "off", "core log level: off, error, warn, info, debug, trace")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *level != "off" {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.LevelFromString(*level), Output: stderr})
	}
	srv, err := vaultcore.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(stderr, "vaultdev:", err)
		return 1
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "VAULT_ADDR=%s\nVAULT_TOKEN=%s\n", srv.Addr, srv.RootToken)
	if srv.CAFile != "" {
		fmt.Fprintf(stdout, "VAULT_CACERT=%s\n", srv.CAFile)
	}
	fmt.Fprintf(stdout, "# KV v2 at %s/, AppRole at auth/%s/; Ctrl-C to stop\n", srv.KVMount, srv.AppRoleMount)
	<-ctx.Done()
	fmt.Fprintln(stderr, "vaultdev: stopping")
	return 0
}

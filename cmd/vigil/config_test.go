package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layeredFlags is a small command for parseLayered tests: four string flags that differ only in
// which layer sets them, an int and a bool for typed values, and --config-file.
type layeredFlags struct {
	fs                   *flag.FlagSet
	cli, env, file, dflt string
	port                 int
	dev                  bool
	configFile           string
}

func newLayeredFlags() *layeredFlags {
	l := &layeredFlags{fs: flag.NewFlagSet("test", flag.ContinueOnError)}
	l.fs.StringVar(&l.configFile, "config-file", "", "config file")
	l.fs.StringVar(&l.cli, "from-cli", "default", "")
	l.fs.StringVar(&l.env, "from-env", "default", "")
	l.fs.StringVar(&l.file, "from-file", "default", "")
	l.fs.StringVar(&l.dflt, "from-default", "default", "")
	l.fs.IntVar(&l.port, "listen-port", 9000, "")
	l.fs.BoolVar(&l.dev, "dev", false, "")
	return l
}

// envMap returns a getenv over a fixed map.
func envMap(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigEnvName(t *testing.T) {
	t.Parallel()
	for flagName, want := range map[string]string{
		"http-listen-port":           "VIGIL_HTTP_LISTEN_PORT",
		"network":                    "VIGIL_NETWORK",
		"slashing-far-future-epochs": "VIGIL_SLASHING_FAR_FUTURE_EPOCHS",
		"config-file":                "VIGIL_CONFIG_FILE",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q) = %q, want %q", flagName, got, want)
		}
	}
}

func TestParseLayeredPrecedence(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `
from-cli: file
from-env: file
from-file: file
listen-port: 9100
dev: true
`)
	l := newLayeredFlags()
	getenv := envMap(
		"VIGIL_FROM_CLI", "env",
		"VIGIL_FROM_ENV", "env",
		"VIGIL_LISTEN_PORT", "9200",
	)
	if err := parseLayered(l.fs, []string{"--config-file", cfg, "--from-cli", "cli"}, getenv); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"from-cli (CLI > env > file)", l.cli, "cli"},
		{"from-env (env > file)", l.env, "env"},
		{"from-file (file > default)", l.file, "file"},
		{"from-default", l.dflt, "default"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if l.port != 9200 {
		t.Errorf("listen-port = %d, want the env value 9200", l.port)
	}
	if !l.dev {
		t.Error("dev = false, want true from the config file")
	}
}

func TestParseLayeredCLIOverridesEnvForTypedFlags(t *testing.T) {
	t.Parallel()
	l := newLayeredFlags()
	if err := parseLayered(l.fs, []string{"--listen-port=1", "--dev=false"}, envMap("VIGIL_LISTEN_PORT", "2", "VIGIL_DEV", "true")); err != nil {
		t.Fatal(err)
	}
	if l.port != 1 || l.dev {
		t.Errorf("listen-port %d, dev %v; want 1, false (command line wins)", l.port, l.dev)
	}
}

func TestParseLayeredEmptyEnvIsUnset(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "from-env: file\n")
	l := newLayeredFlags()
	if err := parseLayered(l.fs, []string{"--config-file=" + cfg}, envMap("VIGIL_FROM_ENV", "")); err != nil {
		t.Fatal(err)
	}
	if l.env != "file" {
		t.Errorf("from-env = %q, want the file value (an empty variable is unset)", l.env)
	}
}

func TestParseLayeredConfigFileFromEnv(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "from-file: file\n# comment\nfrom-default: null\n")
	l := newLayeredFlags()
	if err := parseLayered(l.fs, nil, envMap("VIGIL_CONFIG_FILE", cfg)); err != nil {
		t.Fatal(err)
	}
	if l.file != "file" {
		t.Errorf("from-file = %q, want %q (config file named by VIGIL_CONFIG_FILE)", l.file, "file")
	}
	if l.dflt != "" {
		t.Errorf("from-default = %q, want empty (null in the file)", l.dflt)
	}
}

func TestParseLayeredNoConfigFile(t *testing.T) {
	t.Parallel()
	l := newLayeredFlags()
	if err := parseLayered(l.fs, nil, envMap()); err != nil {
		t.Fatal(err)
	}
	if l.cli != "default" || l.port != 9000 || l.dev {
		t.Errorf("defaults changed: %+v", l)
	}
}

func TestParseLayeredErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		config string // written to a file passed as --config-file when non-empty
		noFile bool   // pass a --config-file that does not exist
		args   []string
		env    []string
		want   []string // substrings of the error
	}{
		{name: "unknown config key", config: "from-file: x\nlisten-prot: 9\n", want: []string{"unknown key", `"listen-prot"`}},
		{name: "config-file inside the config file", config: "config-file: other.yaml\n", want: []string{"unknown key", `"config-file"`}},
		{name: "empty config file", config: "   \n\n", want: []string{"empty"}},
		{name: "nested value", config: "from-file:\n  a: 1\n", want: []string{"from-file", "single value"}},
		{name: "list value", config: "from-file: [a, b]\n", want: []string{"from-file", "single value"}},
		{name: "bad value in file", config: "listen-port: many\n", want: []string{"listen-port", "vigil.yaml"}},
		{name: "bad bool in file", config: "dev: maybe\n", want: []string{"dev"}},
		{name: "not YAML", config: "from-file: [unclosed\n", want: []string{"vigil.yaml"}},
		{name: "missing config file", noFile: true, want: []string{"config file", "no-such.yaml"}},
		{name: "bad env value", env: []string{"VIGIL_LISTEN_PORT", "nine"}, want: []string{"VIGIL_LISTEN_PORT", "nine"}},
		{name: "bad env bool", env: []string{"VIGIL_DEV", "sometimes"}, want: []string{"VIGIL_DEV"}},
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: []string{"no-such-flag"}},
		{name: "bad flag value", args: []string{"--listen-port", "x"}, want: []string{"listen-port"}},
		{name: "positional argument", args: []string{"extra"}, want: []string{"unexpected argument", "extra"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			switch {
			case tc.config != "":
				args = append([]string{"--config-file", writeConfig(t, tc.config)}, args...)
			case tc.noFile:
				args = append([]string{"--config-file", filepath.Join(t.TempDir(), "no-such.yaml")}, args...)
			}
			err := parseLayered(newLayeredFlags().fs, args, envMap(tc.env...))
			if err == nil {
				t.Fatalf("parseLayered succeeded, want an error mentioning %q", tc.want)
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("error %q is not a usage error", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestParseLayeredHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-h", "--help", "-help"} {
		if err := parseLayered(newLayeredFlags().fs, []string{arg}, envMap()); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseLayered(%s) = %v, want flag.ErrHelp", arg, err)
		}
	}
}

// runVigil calls run with a private HOME and returns the exit code and both outputs.
func runVigil(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := envMap(append([]string{"HOME", t.TempDir()}, env...)...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	code := run(ctx, args, getenv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRunCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		env        []string
		code       int
		stdout     []string
		stderr     []string
		noStdout   bool
		quietError bool // nothing on stderr
	}{
		{name: "no arguments", args: nil, code: 2, stderr: []string{"Usage:", "vigil serve"}, noStdout: true},
		{name: "unknown command", args: []string{"sing"}, code: 2, stderr: []string{`unknown command "sing"`, "Usage:"}, noStdout: true},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"vigil " + version + "\n"}, quietError: true},
		{name: "--version", args: []string{"--version"}, code: 0, stdout: []string{"vigil " + version}, quietError: true},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"Usage:", "vigil slashing import"}, quietError: true},
		{name: "serve --help", args: []string{"serve", "--help"}, code: 0,
			stdout: []string{"Usage: vigil serve", "--http-listen-port (default 9000)", "VIGIL_HTTP_LISTEN_PORT", "--config-file", "VIGIL_NETWORK"}, quietError: true},
		{name: "serve -h", args: []string{"serve", "-h"}, code: 0, stdout: []string{"--network"}, quietError: true},
		{name: "serve with an unknown flag", args: []string{"serve", "--http-listen-prot=1"}, code: 2, stderr: []string{"http-listen-prot"}, noStdout: true},
		{name: "serve with a positional argument", args: []string{"serve", "now"}, code: 2, stderr: []string{"unexpected argument"}, noStdout: true},
		{name: "serve with a bad env value", args: []string{"serve"}, env: []string{"VIGIL_HTTP_LISTEN_PORT", "ninety"}, code: 2, stderr: []string{"VIGIL_HTTP_LISTEN_PORT", "ninety"}, noStdout: true},
		{name: "serve with a bad log level", args: []string{"serve", "--log-level", "loud"}, code: 2, stderr: []string{"--log-level", "loud"}, noStdout: true},
		{name: "serve with a port out of range", args: []string{"serve", "--http-listen-port", "70000"}, code: 2, stderr: []string{"65535"}, noStdout: true},
		{name: "serve with an unknown network", args: []string{"serve", "--network", "/no/such/network.yaml"}, code: 2, stderr: []string{"--network", "/no/such/network.yaml"}, noStdout: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runVigil(t, tc.env, tc.args...)
			if code != tc.code {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout %q lacks %q", stdout, s)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q lacks %q", stderr, s)
				}
			}
			if tc.noStdout && stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if tc.quietError && stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
		})
	}
}

func TestRunServeConfigFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config string
		want         []string
	}{
		{"unknown key", "http-listen-port: 0\nhttp-listen-prot: 1\n", []string{"unknown key", "http-listen-prot"}},
		{"empty file", "\n", []string{"empty"}},
		{"nested value", "network:\n  name: mainnet\n", []string{"network", "single value"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := writeConfig(t, tc.config)
			code, stdout, stderr := runVigil(t, []string{"VIGIL_CONFIG_FILE", cfg}, "serve")
			if code != 2 {
				t.Errorf("exit code = %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			for _, s := range append(tc.want, cfg) {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q lacks %q", stderr, s)
				}
			}
		})
	}
}

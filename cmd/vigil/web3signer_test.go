package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/vigil-signer/vigil/internal/signingtest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

// startCmd runs the vigil binary with exactly args (no "serve" prepended) and extra environment,
// waits for <dataDir>/vigil.ports and /upcheck, and kills it when the test ends.
func startCmd(t *testing.T, dataDir string, env []string, args ...string) *vigil {
	t.Helper()
	v := &vigil{DataDir: dataDir, Stdout: newOutBuf(), Stderr: newOutBuf(), exited: make(chan struct{})}
	v.cmd = exec.Command(vigilBin, args...)
	v.cmd.Stdout, v.cmd.Stderr, v.cmd.Env = v.Stdout, v.Stderr, append(testEnv(), env...)
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start vigil: %v", err)
	}
	go func() {
		_ = v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			t.Logf("vigil %s\n--- stdout ---\n%s--- stderr ---\n%s", strings.Join(args, " "), v.Stdout, v.Stderr)
		}
	})
	// vigil.ports is written once both listeners are up: wait for the "serving" line on stdout,
	// which follows it.
	out := v.Stdout.waitForOrExit(t, v, "serving the signing API at ", 60*time.Second)
	line := out[strings.Index(out, "serving the signing API at ")+len("serving the signing API at "):]
	v.URL = strings.Fields(line)[0]
	b, err := os.ReadFile(filepath.Join(dataDir, "vigil.ports"))
	if err != nil {
		t.Fatalf("vigil.ports: %v", err)
	}
	if !strings.Contains(string(b), "http-port="+v.URL[strings.LastIndex(v.URL, ":")+1:]) {
		t.Fatalf("vigil.ports %q does not hold the port of %s", b, v.URL)
	}
	return v
}

// writeKeyConfig writes a Web3Signer key config directory holding interop key i as file-raw.
func writeKeyConfig(t *testing.T, i uint64) string {
	t.Helper()
	dir := t.TempDir()
	body := fmt.Sprintf("type: \"file-raw\"\nkeyType: \"BLS\"\nprivateKey: \"0x%s\"\n", hex.EncodeToString(interopKey(t, i).Bytes()))
	if err := os.WriteFile(filepath.Join(dir, "validator.yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// signMainnetAttestation signs a phase0 mainnet attestation with interop key 0 through v and
// checks the signature against one computed here (the slashing database records it).
func signMainnetAttestation(t *testing.T, v *vigil) {
	t.Helper()
	f := signingtest.MainnetFork("PHASE0")
	a := signingtest.AttestationData(320, 9, 10, 20)
	body := map[string]any{"type": "ATTESTATION", "fork_info": signingtest.ForkInfoJSON(f), "attestation": a}
	root := signingtest.ForkedRoot(t, signingtest.DomainBeaconAttester, f, a.Target.Epoch, signingtest.HashTreeRoot(t, a))
	wantSignature(t, 0, root, signature(t, v.signJSON(t, interopPub(t, 0), body)))
}

// jdbcOf is the JDBC spelling (Web3Signer's) of a pgtest database URL.
func jdbcOf(t *testing.T, pgURL string) (jdbc, host, db string) {
	t.Helper()
	rest := strings.TrimPrefix(pgURL, "postgres://")
	if rest == pgURL {
		t.Fatalf("the JDBC form needs a postgres:// URL; pgtest gave another form")
	}
	_, rest, _ = strings.Cut(rest, "@") // user; the documented command line gives its own
	host, db, _ = strings.Cut(rest, "/")
	db, _, _ = strings.Cut(db, "?")
	return "jdbc:postgresql://" + host + "/" + db, host, db
}

// TestWeb3SignerDocumentedCommandLine runs Web3Signer's documented eth2 command line as vigil.
//
// Source: /work/shared/reference/web3signer.md §2.1/§2.7 (the `web3signer [global opts] eth2
// [eth2 opts]` shape with --slashing-protection-db-url=jdbc:postgresql://… and
// --slashing-protection-db-username/-password) and, verbatim, Consensys/doc.web3signer
// docs/how-to/configure-slashing-protection.md, "Start Web3Signer":
//
//	web3signer --key-store-path=/Users/me/keys eth2 --slashing-protection-db-url="jdbc:postgresql://localhost/web3signer" --slashing-protection-db-username=postgres --slashing-protection-db-password=password --slashing-protection-pruning-enabled=true
//
// Replaced: the program name; the key directory; localhost/web3signer by the test cluster's
// host:port/database; and, added, the test's data path and ports (--data-path, --http-listen-port=0,
// --metrics-port=0). The database is initialised first with `vigil slashing init`, as Web3Signer
// needs its migrations run first. Then the same settings as WEB3SIGNER_* environment variables
// with a bare `vigil eth2`.
func TestWeb3SignerDocumentedCommandLine(t *testing.T) {
	pgURL := pgtest.NewDatabase(t)
	jdbc, host, db := jdbcOf(t, pgURL)
	if code, out, errs := runCLI(t, "slashing", "init", "--slashing-protection-db-url", pgURL); code != 0 {
		t.Fatalf("slashing init: exit %d\n%s%s", code, out, errs)
	}
	keys := writeKeyConfig(t, 0)

	t.Run("command line", func(t *testing.T) {
		data := t.TempDir()
		v := startCmd(t, data, nil,
			"--data-path="+data, "--http-listen-port=0", "--metrics-port=0",
			"--key-store-path="+keys, "eth2",
			"--slashing-protection-db-url="+jdbc, "--slashing-protection-db-username=postgres",
			"--slashing-protection-db-password=password", "--slashing-protection-pruning-enabled=true")
		checkW3SServing(t, v, host, db)
		stderr := v.Stderr.String()
		if !strings.Contains(stderr, "visible to every local user") {
			t.Errorf("no warning about the password on the command line:\n%s", stderr)
		}
	})
	t.Run("environment", func(t *testing.T) {
		data := t.TempDir()
		v := startCmd(t, data, []string{
			"WEB3SIGNER_DATA_PATH=" + data, "WEB3SIGNER_HTTP_LISTEN_PORT=0", "WEB3SIGNER_METRICS_PORT=0",
			"WEB3SIGNER_KEY_STORE_PATH=" + keys,
			"WEB3SIGNER_ETH2_SLASHING_PROTECTION_DB_URL=" + jdbc,
			"WEB3SIGNER_ETH2_SLASHING_PROTECTION_DB_USERNAME=postgres",
			"WEB3SIGNER_ETH2_SLASHING_PROTECTION_DB_PASSWORD=password",
			"WEB3SIGNER_ETH2_SLASHING_PROTECTION_PRUNING_ENABLED=true",
		}, "eth2")
		checkW3SServing(t, v, host, db)
		if strings.Contains(v.Stderr.String(), "visible to every local user") {
			t.Errorf("password from the environment warned about as if on the command line:\n%s", v.Stderr)
		}
	})
}

func checkW3SServing(t *testing.T, v *vigil, host, db string) {
	t.Helper()
	r := do(t, http.MethodGet, v.URL+"/upcheck", "", nil)
	if r.status != http.StatusOK || string(r.body) != "OK" {
		t.Fatalf("/upcheck: %s", r)
	}
	r = do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
	if want := `["` + interopPub(t, 0) + `"]`; strings.TrimSpace(string(r.body)) != want {
		t.Fatalf("publicKeys %s, want %s (from --key-store-path)", r.body, want)
	}
	signMainnetAttestation(t, v)
	stderr := v.Stderr.String()
	hostOnly, port, _ := strings.Cut(host, ":")
	if want := "host=" + hostOnly + " port=" + port + " database=" + db + " user=postgres"; !strings.Contains(stderr, want) {
		t.Errorf("log does not describe the database as %q:\n%s", want, stderr)
	}
	all := v.Stdout.String() + stderr
	for _, leak := range []string{":password@", "password=password", "'password'"} {
		if strings.Contains(all, leak) {
			t.Errorf("output contains the password (%q):\n%s", leak, all)
		}
	}
}

// w3sParse parses serve's flags (with the Web3Signer names) like `vigil serve`.
func w3sParse(t *testing.T, env []string, args ...string) (*serveConfig, error) {
	t.Helper()
	c := new(serveConfig)
	getenv := envMap(append([]string{"HOME", t.TempDir()}, env...)...)
	fs := serveFlags(c, getenv)
	err := parseLayered(fs, args, getenv)
	return c, err
}

func TestWeb3SignerAliases(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "metrics-host: 10.0.0.9\neth2.network: hoodi\nlogging: warn\n")
	tests := []struct {
		name  string
		args  []string
		env   []string
		check func(c *serveConfig) string // "" when right
	}{
		{"metrics host and port", []string{"--metrics-host=0.0.0.0", "--metrics-port", "9101"}, nil, func(c *serveConfig) string {
			return want2(c.metricsHost, "0.0.0.0", fmt.Sprint(c.metricsPort), "9101")
		}},
		{"data path", []string{"--data-path", "/srv/w3s"}, nil, func(c *serveConfig) string { return want2(c.store.dataDir, "/srv/w3s", "", "") }},
		{"key store path", []string{"--key-store-path=/srv/keys"}, nil, func(c *serveConfig) string { return want2(c.keyConfigPath, "/srv/keys", "", "") }},
		{"logging levels", []string{"--logging=WARN"}, nil, func(c *serveConfig) string { return want2(c.logLevel, "warn", "", "") }},
		{"logging -l TRACE", []string{"-l", "TRACE"}, nil, func(c *serveConfig) string { return want2(c.logLevel, "debug", "", "") }},
		{"logging OFF", []string{"--logging=off"}, nil, func(c *serveConfig) string { return want2(c.logLevel, "error+4", "", "") }},
		{"logging FATAL", []string{"--logging", "FATAL"}, nil, func(c *serveConfig) string { return want2(c.logLevel, "error", "", "") }},
		{"logging-format", []string{"--logging-format=ECS"}, nil, func(c *serveConfig) string { return want2(c.logFormat, "json", "", "") }},
		{"alias and flag agree", []string{"--logging=INFO", "--log-level=info", "--metrics-host=a", "--metrics-listen-host=a"}, nil, func(c *serveConfig) string {
			return want2(c.logLevel, "info", c.metricsHost, "a")
		}},
		{"enable-key-manager-api", []string{"--enable-key-manager-api"}, nil, func(c *serveConfig) string { return want2(fmt.Sprint(c.km.enabled), "true", "", "") }},
		{"slashing protection enabled", []string{"--slashing-protection-enabled=true"}, nil, func(*serveConfig) string { return "" }},
		{"reload timeout in minutes", []string{"--reload-timeout=30"}, nil, func(c *serveConfig) string { return want2(c.reloadTimeout.String(), "30m0s", "", "") }},
		{"pruning interval in hours", []string{"--slashing-protection-pruning-interval", "18"}, nil, func(c *serveConfig) string {
			return want2(c.pruneInterval.String(), "18h0m0s", "", "")
		}},
		{"jdbc URL", []string{"--slashing-protection-db-url=jdbc:postgresql://db.example:5433/w3s?ssl=true&socketTimeout=30"}, nil, func(c *serveConfig) string {
			return want2(c.store.dbURL, "postgresql://db.example:5433/w3s?sslmode=verify-full", "", "")
		}},
		{"jdbc short form", []string{"--slashing-protection-db-url=jdbc:postgresql:w3s"}, nil, func(c *serveConfig) string {
			return want2(c.store.dbURL, "postgresql://localhost/w3s", "", "")
		}},
		{"user and password merged into the URL", []string{"--slashing-protection-db-url=jdbc:postgresql://db/w3s", "--slashing-protection-db-username=signer", "--slashing-protection-db-password=p@ss word"}, nil,
			func(c *serveConfig) string {
				return want2(c.store.dbURL, "postgresql://signer:p%40ss%20word@db/w3s", "", "")
			}},
		{"user and password merged into a key=value DSN", []string{"--slashing-protection-db-url=host=db dbname=w3s", "--slashing-protection-db-username=signer", "--slashing-protection-db-password=it's"}, nil,
			func(c *serveConfig) string {
				return want2(c.store.dbURL, `host=db dbname=w3s user='signer' password='it\'s'`, "", "")
			}},
		{"WEB3SIGNER_ global env", nil, []string{"WEB3SIGNER_METRICS_HOST", "10.1.1.1", "WEB3SIGNER_HTTP_LISTEN_PORT", "9555"}, func(c *serveConfig) string {
			return want2(c.metricsHost, "10.1.1.1", fmt.Sprint(c.port), "9555")
		}},
		{"WEB3SIGNER_ETH2_ env", nil, []string{"WEB3SIGNER_ETH2_NETWORK", "sepolia", "WEB3SIGNER_NETWORK", "hoodi"}, func(c *serveConfig) string {
			return want2(c.network, "sepolia", "", "") // WEB3SIGNER_NETWORK is not an eth2 option's name
		}},
		{"VIGIL_ wins over WEB3SIGNER_", nil, []string{"WEB3SIGNER_METRICS_HOST", "10.1.1.1", "VIGIL_METRICS_LISTEN_HOST", "10.2.2.2", "WEB3SIGNER_ETH2_NETWORK", "sepolia", "VIGIL_NETWORK", "hoodi"}, func(c *serveConfig) string {
			return want2(c.metricsHost, "10.2.2.2", c.network, "hoodi")
		}},
		{"command-line alias wins over VIGIL_ env of its flag", []string{"--metrics-host=10.3.3.3"}, []string{"VIGIL_METRICS_LISTEN_HOST", "10.2.2.2"}, func(c *serveConfig) string {
			return want2(c.metricsHost, "10.3.3.3", "", "")
		}},
		{"config file with Web3Signer keys", []string{"--config-file", cfg}, nil, func(c *serveConfig) string {
			if s := want2(c.metricsHost, "10.0.0.9", c.network, "hoodi"); s != "" {
				return s
			}
			return want2(c.logLevel, "warn", "", "")
		}},
		{"env beats config file across names", []string{"--config-file", cfg}, []string{"VIGIL_METRICS_LISTEN_HOST", "10.2.2.2"}, func(c *serveConfig) string {
			return want2(c.metricsHost, "10.2.2.2", "", "")
		}},
		{"harmless option accepted", []string{"--http-cors-origins=*", "--swagger-ui-enabled=false", "--vertx-worker-pool-size=40", "--metrics-push-enabled=false"}, nil, func(*serveConfig) string { return "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := w3sParse(t, tc.env, tc.args...)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if msg := tc.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func want2(got1, want1, got2, want2 string) string {
	if got1 != want1 || got2 != want2 {
		return fmt.Sprintf("got %q, %q; want %q, %q", got1, got2, want1, want2)
	}
	return ""
}

func TestWeb3SignerBadInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want []string // substrings of the usage error
		not  []string // never in it
	}{
		{name: "alias and flag disagree", args: []string{"--metrics-host=a", "--metrics-listen-host=b"}, want: []string{"--metrics-host", "--metrics-listen-host", "different values"}},
		{name: "logging and log-level disagree", args: []string{"--logging=INFO", "--log-level=debug"}, want: []string{"--logging", "--log-level"}},
		{name: "two Web3Signer env names disagree", env: []string{"WEB3SIGNER_KEY_STORE_PATH", "/a", "WEB3SIGNER_KEY_CONFIG_PATH", "/b"}, want: []string{"WEB3SIGNER_KEY_STORE_PATH", "WEB3SIGNER_KEY_CONFIG_PATH"}},
		{name: "unknown logging level", args: []string{"--logging=LOUD"}, want: []string{"logging", "OFF, FATAL"}},
		{name: "slashing protection disabled", args: []string{"--slashing-protection-enabled=false"}, want: []string{"slashing-protection-enabled", "never signs without slashing protection"}},
		{name: "slashing protection disabled in env", env: []string{"WEB3SIGNER_ETH2_SLASHING_PROTECTION_ENABLED", "false"}, want: []string{"WEB3SIGNER_ETH2_SLASHING_PROTECTION_ENABLED", "never signs without"}},
		{name: "TLS keystore", args: []string{"--tls-keystore-file=/etc/w3s/ks.p12"}, want: []string{"tls-keystore-file", "does not terminate TLS"}},
		{name: "AWS key source", args: []string{"--aws-secrets-enabled=true"}, want: []string{"aws-secrets-enabled", "AWS"}},
		{name: "metrics push", args: []string{"--metrics-push-enabled"}, want: []string{"metrics-push-enabled", "push gateway"}},
		{name: "unimplemented option", args: []string{"--Xsigning-ext-enabled=true"}, want: []string{"Xsigning-ext-enabled"}},
		{name: "user without a URL", args: []string{"--slashing-protection-db-username=signer"}, want: []string{"need --slashing-protection-db-url"}},
		{name: "password twice", args: []string{"--slashing-protection-db-url=postgres://u:Secret-1@db/w3s", "--slashing-protection-db-password=Secret-2"}, want: []string{"password is given twice"}, not: []string{"Secret-1", "Secret-2"}},
		{name: "different users", args: []string{"--slashing-protection-db-url=postgres://alice@db/w3s", "--slashing-protection-db-username=bob"}, want: []string{"alice", "bob"}},
		{name: "non-Postgres JDBC URL", args: []string{"--slashing-protection-db-url=jdbc:mysql://u:Secret-3@db/w3s"}, want: []string{"only jdbc:postgresql"}, not: []string{"Secret-3"}},
		{name: "unknown JDBC parameter", args: []string{"--slashing-protection-db-url=jdbc:postgresql://db/w3s?password=Secret-4&cancelSignalTimeout=3"}, want: []string{"cancelSignalTimeout"}, not: []string{"Secret-4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := w3sParse(t, tc.env, tc.args...)
			if err == nil {
				t.Fatalf("parse succeeded, want an error mentioning %q", tc.want)
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("%q is not a usage error", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
		})
	}
}

// TestWeb3SignerCommandForms drives run: the eth2 subcommand forms, help and the start notes.
func TestWeb3SignerCommandForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "eth2 --help is serve's help", args: []string{"eth2", "--help"}, code: 0, stdout: []string{"Usage: vigil serve", "--network"}},
		{name: "global options before eth2, help after", args: []string{"--metrics-enabled", "--http-listen-port", "0", "eth2", "--help"}, code: 0, stdout: []string{"Usage: vigil serve"}},
		{name: "options without eth2", args: []string{"--key-store-path=/x"}, code: 2, stderr: []string{"eth2 subcommand"}},
		{name: "eth2 export", args: []string{"eth2", "--slashing-protection-db-url=postgres://db/w3s", "export", "--to=/tmp/x.json"}, code: 2, stderr: []string{"vigil slashing export"}},
		{name: "eth2 import", args: []string{"--data-path", "/tmp/w3s", "eth2", "import", "--from=/tmp/x.json"}, code: 2, stderr: []string{"vigil slashing import"}},
		{name: "eth2 with slashing protection off", args: []string{"eth2", "--slashing-protection-enabled=false"}, code: 2, stderr: []string{"never signs without slashing protection"}},
		{name: "eth2 with an unknown option", args: []string{"eth2", "--azure-vault-name=x"}, code: 2, stderr: []string{"azure-vault-name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runVigil(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

// TestWeb3SignerHelp: the aliases are listed only in a "Web3Signer names" section at the end.
func TestWeb3SignerHelp(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runVigil(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	main, w3s, ok := strings.Cut(stdout, "\nWeb3Signer names")
	if !ok {
		t.Fatalf("no Web3Signer names section:\n%s", stdout)
	}
	for _, alias := range []string{"--metrics-host\n", "--data-path\n", "--logging\n", "--key-store-path\n", "--slashing-protection-db-password\n", "--slashing-protection-enabled\n", "--http-cors-origins\n"} {
		if strings.Contains(main, "  "+alias) {
			t.Errorf("%q listed among Vigil's flags", strings.TrimSpace(alias))
		}
		if !strings.Contains(w3s, "  "+alias) {
			t.Errorf("%q missing from the Web3Signer names section", strings.TrimSpace(alias))
		}
	}
	for _, native := range []string{"--metrics-listen-host (default 127.0.0.1)", "--log-level (default info)", "--slashing-protection-db-url\n"} {
		if !strings.Contains(main, "  "+native) {
			t.Errorf("%q missing from Vigil's flags", native)
		}
	}
	if !strings.Contains(w3s, "WEB3SIGNER_ETH2_SLASHING_PROTECTION_DB_PASSWORD") || !strings.Contains(w3s, "WEB3SIGNER_METRICS_HOST") {
		t.Errorf("Web3Signer section does not give the env names:\n%s", w3s)
	}
}

// TestWeb3SignerNotesLogged: an accepted-but-ignored option is logged at start.
func TestWeb3SignerNotesLogged(t *testing.T) {
	data := t.TempDir()
	v := startCmd(t, data, nil, "--data-path="+data, "--http-listen-port=0", "--metrics-port=0",
		"--http-cors-origins=*", "--logging=INFO", "eth2", "--init-slashing-protection")
	stderr := v.Stderr.waitFor(t, "Web3Signer option accepted without effect", 10*time.Second)
	if !strings.Contains(stderr, "option=--http-cors-origins") || !strings.Contains(stderr, "CORS") {
		t.Errorf("note does not name --http-cors-origins:\n%s", stderr)
	}
}

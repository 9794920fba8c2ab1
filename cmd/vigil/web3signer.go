package main

// Web3Signer command-line compatibility: Web3Signer's option names as aliases of Vigil's flags,
// its environment names (WEB3SIGNER_<OPTION> for global options, WEB3SIGNER_ETH2_<OPTION> for
// eth2 options), its `eth2` subcommand form, and a decision for each Web3Signer option Vigil does
// not implement: accepted with a logged note when ignoring it is harmless, refused by name when
// ignoring it would change what an operator relies on (TLS, a key source, no slashing
// protection). The migration table in the README lists every name.

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// w3sScope says where an option sits on Web3Signer's command line, which fixes its env name.
type w3sScope int

const (
	w3sGlobal w3sScope = iota // before the subcommand: WEB3SIGNER_<OPTION>
	w3sEth2                   // after eth2: WEB3SIGNER_ETH2_<OPTION>
)

// w3sEnv is Web3Signer's environment name of an option.
func w3sEnv(scope w3sScope, name string) string {
	p := "WEB3SIGNER_"
	if scope == w3sEth2 {
		p += "ETH2_"
	}
	return p + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// w3sKeys are the config-file keys of a Web3Signer option besides its name: Web3Signer's YAML
// prefixes eth2 options with "eth2.".
func w3sKeys(scope w3sScope, name string) []string {
	if scope == w3sEth2 {
		return []string{"eth2." + name}
	}
	return nil
}

// w3sSameName are Web3Signer options Vigil has under the same name. conv adapts Web3Signer's
// syntax where it differs (a bare number of minutes or hours where Vigil takes a duration).
var w3sSameName = []struct {
	name  string
	scope w3sScope
	conv  func(string) (string, error)
}{
	{"config-file", w3sGlobal, nil},
	{"http-listen-host", w3sGlobal, nil},
	{"http-listen-port", w3sGlobal, nil},
	{"http-host-allowlist", w3sGlobal, nil},
	{"metrics-enabled", w3sGlobal, nil},
	{"metrics-host-allowlist", w3sGlobal, nil},
	{"key-config-path", w3sGlobal, nil},
	{"reload-timeout", w3sGlobal, bareNumber("m")},
	{"idle-connection-timeout-seconds", w3sGlobal, nil},
	{"network", w3sEth2, nil},
	{"slashing-protection-db-url", w3sEth2, nil}, // JDBC form: storeFlags
	{"slashing-protection-pruning-enabled", w3sEth2, nil},
	{"slashing-protection-pruning-epochs-to-keep", w3sEth2, nil},
	{"slashing-protection-pruning-interval", w3sEth2, bareNumber("h")},
	{"keystores-path", w3sEth2, nil},
	{"keystores-passwords-path", w3sEth2, nil},
	{"keystores-password-file", w3sEth2, nil},
	{"key-manager-api-enabled", w3sEth2, nil},
}

// w3sAliases are Web3Signer names of Vigil flags.
var w3sAliases = []struct {
	name, vigil string
	scope       w3sScope
	conv        func(string) (string, error)
	note        func(string) string
}{
	{"metrics-host", "metrics-listen-host", w3sGlobal, nil, nil},
	{"metrics-port", "metrics-listen-port", w3sGlobal, nil, nil},
	{"data-path", "data-dir", w3sGlobal, nil, nil},
	{"key-store-path", "key-config-path", w3sGlobal, nil, nil},
	{"logging", "log-level", w3sGlobal, w3sLogLevel, nil},
	{"l", "log-level", w3sGlobal, w3sLogLevel, nil},
	{"logging-format", "log-format", w3sGlobal, w3sLogFormat, func(v string) string {
		if strings.EqualFold(v, "PLAIN") {
			return ""
		}
		return "--logging-format=" + v + ": Vigil writes JSON lines with its own field names (time, level, msg, …), not the " + strings.ToUpper(v) + " layout"
	}},
	{"enable-key-manager-api", "key-manager-api-enabled", w3sEth2, nil, nil},
	{"access-logs-enabled", "http-access-log", w3sGlobal, nil, nil},
}

// w3sOther are Web3Signer options without a Vigil flag. refuse (nil: never) rejects a value with
// the reason; note (nil: none) is logged at start when the option is given.
var w3sOther = []struct {
	name   string
	scope  w3sScope
	isBool bool
	usage  string
	refuse func(string) error
	note   func(string) string
}{
	{name: "http-cors-origins", scope: w3sGlobal, usage: "ignored: Vigil sends no CORS headers (browsers cannot call it)",
		note: fixedNote("Vigil sends no CORS headers, so browser pages cannot call the signer; validator clients are unaffected")},
	{name: "swagger-ui-enabled", scope: w3sGlobal, isBool: true, usage: "ignored: no Swagger UI (removed from Web3Signer in 25.12.0 as well)",
		note: whenTrue("Vigil serves no Swagger UI")},
	{name: "idle-connection-timeout-seconds", scope: w3sGlobal, usage: "ignored: idle keep-alive connections close after 120 s",
		note: fixedNote("Vigil closes idle keep-alive connections after 120 s")},
	{name: "vertx-worker-pool-size", scope: w3sGlobal, usage: "ignored: no worker pool (see --max-in-flight)",
		note: fixedNote("Vigil has no worker pool; --max-in-flight bounds concurrent sign requests (then 503)")},
	{name: "metrics-category", scope: w3sGlobal, usage: "ignored: every Vigil metric is exported",
		note: fixedNote("Vigil exports all of its metrics (see the metrics table in the README)")},
	{name: "metrics-categories", scope: w3sGlobal, usage: "ignored: every Vigil metric is exported",
		note: fixedNote("Vigil exports all of its metrics (see the metrics table in the README)")},
	{name: "metrics-push-enabled", scope: w3sGlobal, isBool: true, usage: "refused when true: no push gateway (Prometheus scrapes /metrics)",
		refuse: refuseTrue("Vigil has no Prometheus push gateway client; let Prometheus scrape /metrics (--metrics-enabled)")},
	{name: "key-store-config-file-max-size", scope: w3sGlobal, usage: "ignored: key config files are read whole",
		note: fixedNote("Vigil has no key config file size limit option")},
	{name: "signer-load-parallel", scope: w3sGlobal, isBool: true, usage: "ignored: keys always load in parallel",
		note: fixedNote("Vigil always loads keys in parallel on every core")},
	{name: "signer-load-timeout", scope: w3sGlobal, usage: "ignored: see --reload-timeout",
		note: fixedNote("Vigil bounds a whole key load by --reload-timeout")},
	{name: "signer-load-batch-size", scope: w3sGlobal, usage: "ignored",
		note: fixedNote("Vigil does not batch key loading")},
	{name: "signer-load-sequential-threshold", scope: w3sGlobal, usage: "ignored",
		note: fixedNote("Vigil does not batch key loading")},
	{name: "tls-keystore-file", scope: w3sGlobal, usage: "refused: Vigil does not terminate TLS (no PKCS#12)",
		refuse: always("Vigil does not terminate TLS itself and would serve plain HTTP; terminate TLS in a proxy in front of it and remove this option")},
	{name: "tls-keystore-password-file", scope: w3sGlobal, usage: "refused (see --tls-keystore-file)",
		refuse: always("Vigil does not terminate TLS itself; see --tls-keystore-file")},
	{name: "tls-known-clients-file", scope: w3sGlobal, usage: "refused: no client-certificate allowlist",
		refuse: always("Vigil does not check client certificates itself; terminate mTLS in a proxy in front of it and remove this option")},
	{name: "tls-allow-ca-clients", scope: w3sGlobal, isBool: true, usage: "refused when true (see --tls-known-clients-file)",
		refuse: refuseTrue("Vigil does not check client certificates itself")},
	{name: "tls-allow-any-client", scope: w3sGlobal, isBool: true, usage: "refused when true (see --tls-keystore-file)",
		refuse: refuseTrue("Vigil does not terminate TLS itself")},
	{name: "slashing-protection-db-pool-configuration-file", scope: w3sEth2, usage: "ignored: size the pool with ?pool_max_conns= in the URL",
		note: fixedNote("Vigil does not read HikariCP files; set the pool size with pool_max_conns in --slashing-protection-db-url")},
	{name: "slashing-protection-db-health-check-interval-milliseconds", scope: w3sEth2, usage: "ignored: /healthcheck pings the database on each request",
		note: fixedNote("Vigil pings the database on each /healthcheck request instead of on a schedule")},
	{name: "slashing-protection-db-health-check-timeout-milliseconds", scope: w3sEth2, usage: "ignored: /healthcheck pings with a 2 s timeout",
		note: fixedNote("Vigil's /healthcheck database ping times out after 2 s")},
	{name: "slashing-protection-pruning-at-boot-enabled", scope: w3sEth2, isBool: true, usage: "ignored: run `vigil slashing prune` before starting",
		note: whenTrue("Vigil prunes first one --slashing-protection-pruning-interval after start; run `vigil slashing prune` before starting to prune at boot")},
	{name: "slashing-protection-pruning-slots-per-epoch", scope: w3sEth2, usage: "ignored: slots per epoch come from --network",
		note: fixedNote("Vigil takes slots per epoch from --network")},
	{name: "slashing-protection-pruning-db-pool-configuration-file", scope: w3sEth2, usage: "ignored: pruning shares the pool",
		note: fixedNote("Vigil prunes through the same connection pool")},
	{name: "aws-secrets-enabled", scope: w3sEth2, isBool: true, usage: "refused when true: no AWS Secrets Manager key source",
		refuse: refuseTrue("Vigil has no AWS Secrets Manager key source (its keys would not load); use Vault, an HSM, keystores or the local keyring")},
	{name: "gcp-secrets-enabled", scope: w3sEth2, isBool: true, usage: "refused when true: no GCP Secret Manager key source",
		refuse: refuseTrue("Vigil has no GCP Secret Manager key source (its keys would not load); use Vault, an HSM, keystores or the local keyring")},
	{name: "azure-vault-enabled", scope: w3sEth2, isBool: true, usage: "refused when true: no Azure Key Vault key source",
		refuse: refuseTrue("Vigil has no Azure Key Vault key source (its keys would not load); use Vault, an HSM, keystores or the local keyring")},
	{name: "commit-boost-api-enabled", scope: w3sEth2, isBool: true, usage: "refused when true: no Commit-Boost signer API",
		refuse: refuseTrue("Vigil does not serve the Commit-Boost signer API")},
}

func fixedNote(s string) func(string) string { return func(string) string { return s } }

func whenTrue(s string) func(string) string {
	return func(v string) string {
		if b, _ := strconv.ParseBool(v); b {
			return s
		}
		return ""
	}
}

func refuseTrue(reason string) func(string) error {
	return func(v string) error {
		if b, _ := strconv.ParseBool(v); b {
			return fmt.Errorf("%s", reason)
		}
		return nil
	}
}

func always(reason string) func(string) error {
	return func(string) error { return fmt.Errorf("%s", reason) }
}

// bareNumber makes a bare number mean that many units (Web3Signer's minutes or hours) for a
// duration flag; anything else passes unchanged.
func bareNumber(unit string) func(string) (string, error) {
	return func(s string) (string, error) {
		if _, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64); err == nil {
			return strings.TrimSpace(s) + unit, nil
		}
		return s, nil
	}
}

// w3sLogLevel maps Web3Signer's (Log4j) levels to Vigil's. OFF is above every level Vigil logs.
func w3sLogLevel(s string) (string, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "OFF":
		return "error+4", nil
	case "FATAL", "ERROR":
		return "error", nil
	case "WARN":
		return "warn", nil
	case "INFO":
		return "info", nil
	case "DEBUG", "TRACE", "ALL":
		return "debug", nil
	}
	return "", fmt.Errorf("want OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE or ALL")
}

// w3sLogFormat maps Web3Signer's --logging-format to Vigil's --log-format.
func w3sLogFormat(s string) (string, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "PLAIN":
		return "text", nil
	case "ECS", "GCP", "GELF", "LOGSTASH":
		return "json", nil
	}
	return "", fmt.Errorf("want PLAIN, ECS, GCP, GELF or LOGSTASH")
}

// optValue holds a Web3Signer-only option.
type optValue struct {
	val    string
	isBool bool
}

func (o *optValue) String() string {
	if o == nil {
		return ""
	}
	return o.val
}

func (o *optValue) Set(s string) error {
	if o.isBool {
		if _, err := strconv.ParseBool(s); err != nil {
			return fmt.Errorf("want true or false")
		}
	}
	o.val = s
	return nil
}

func (o *optValue) IsBoolFlag() bool { return o.isBool }

// w3sUsage is the help line of a Web3Signer name.
func w3sUsage(scope w3sScope, what string) string {
	where := "global option"
	if scope == w3sEth2 {
		where = "eth2 option"
	}
	return what + " (Web3Signer " + where + ")"
}

// registerWeb3SignerAliases registers Web3Signer's flag names as aliases of Vigil's. It runs
// after every Vigil flag is registered: a Web3Signer name that Vigil registers natively is left
// to that flag (it only gains its WEB3SIGNER_… environment name).
func registerWeb3SignerAliases(fs *flag.FlagSet, c *serveConfig) {
	for _, o := range w3sSameName {
		f := fs.Lookup(o.name)
		if f == nil {
			continue
		}
		nv := wrapName(f)
		nv.env = append(nv.env, w3sEnv(o.scope, o.name))
		nv.keys = append(nv.keys, w3sKeys(o.scope, o.name)...)
		if o.conv != nil {
			nv.conv = chain(nv.conv, o.conv)
		}
	}
	for _, a := range w3sAliases {
		target := fs.Lookup(a.vigil)
		if target == nil || fs.Lookup(a.name) != nil {
			continue
		}
		if a.vigil == "log-level" {
			// Compare levels case-insensitively (--logging=INFO agrees with --log-level=info).
			tv := wrapName(target)
			tv.conv = chain(tv.conv, func(s string) (string, error) { return strings.ToLower(s), nil })
		}
		nv := &nameValue{Value: wrapName(target).Value, group: a.vigil, w3s: true, conv: a.conv, note: a.note,
			usage: w3sUsage(a.scope, "same as --"+a.vigil)}
		if len(a.name) > 1 {
			nv.env = []string{w3sEnv(a.scope, a.name)}
			nv.keys = append([]string{a.name}, w3sKeys(a.scope, a.name)...)
		}
		fs.Var(nv, a.name, nv.usage)
	}
	for _, o := range w3sOther {
		if f := fs.Lookup(o.name); f != nil {
			nv := wrapName(f) // Vigil has it natively (under Web3Signer's name)
			nv.env = append(nv.env, w3sEnv(o.scope, o.name))
			nv.keys = append(nv.keys, w3sKeys(o.scope, o.name)...)
			continue
		}
		nv := &nameValue{Value: &optValue{isBool: o.isBool}, group: o.name, w3s: true, usage: w3sUsage(o.scope, o.usage),
			env: []string{w3sEnv(o.scope, o.name)}, keys: w3sKeys(o.scope, o.name), note: o.note}
		if o.refuse != nil {
			nv.conv = func(s string) (string, error) {
				if err := o.refuse(s); err != nil {
					return "", err
				}
				return s, nil
			}
		}
		fs.Var(nv, o.name, nv.usage)
	}
	registerW3SSlashing(fs, &c.store)
}

// registerW3SSlashing registers --slashing-protection-enabled (true is the only value Vigil
// accepts) and --slashing-protection-db-username/-password, merged into the database URL once
// every layer is applied.
func registerW3SSlashing(fs *flag.FlagSet, sc *storeConfig) {
	if fs.Lookup("slashing-protection-enabled") == nil {
		nv := &nameValue{Value: &optValue{isBool: true}, group: "slashing-protection-enabled", w3s: true,
			usage: w3sUsage(w3sEth2, "true is accepted; false is refused: Vigil never signs without slashing protection"),
			env:   []string{w3sEnv(w3sEth2, "slashing-protection-enabled")}, keys: w3sKeys(w3sEth2, "slashing-protection-enabled"),
			conv: func(s string) (string, error) {
				b, err := strconv.ParseBool(s)
				if err != nil {
					return "", fmt.Errorf("want true or false")
				}
				if !b {
					return "", fmt.Errorf("Vigil never signs without slashing protection; remove this option (the embedded database needs no setup, or give --slashing-protection-db-url for a shared Postgres)")
				}
				return s, nil
			}}
		fs.Var(nv, "slashing-protection-enabled", nv.usage)
	}
	if fs.Lookup("slashing-protection-db-username") != nil || fs.Lookup("slashing-protection-db-password") != nil {
		return
	}
	user := &nameValue{Value: &optValue{}, group: "slashing-protection-db-username", w3s: true,
		usage: w3sUsage(w3sEth2, "database user, merged into --slashing-protection-db-url"),
		env:   []string{w3sEnv(w3sEth2, "slashing-protection-db-username")}, keys: w3sKeys(w3sEth2, "slashing-protection-db-username")}
	pass := &nameValue{Value: &optValue{}, group: "slashing-protection-db-password", w3s: true, secret: true,
		usage: w3sUsage(w3sEth2, "database password, merged into --slashing-protection-db-url and never logged; give it as WEB3SIGNER_ETH2_SLASHING_PROTECTION_DB_PASSWORD or in --config-file, not on the command line"),
		env:   []string{w3sEnv(w3sEth2, "slashing-protection-db-password")}, keys: w3sKeys(w3sEth2, "slashing-protection-db-password")}
	pass.note = func(string) string {
		if strings.HasPrefix(pass.origin, "--") {
			return "--slashing-protection-db-password on the command line is visible to every local user (ps, /proc); set WEB3SIGNER_ETH2_SLASHING_PROTECTION_DB_PASSWORD or put it in --config-file"
		}
		return ""
	}
	user.finish = func() error {
		u, p := user.String(), pass.String()
		if u == "" && p == "" {
			return nil
		}
		if sc.dbURL == "" {
			return usagef("--slashing-protection-db-username and --slashing-protection-db-password need --slashing-protection-db-url")
		}
		merged, err := mergeDBCredentials(sc.dbURL, u, p)
		if err != nil {
			return err
		}
		sc.dbURL = merged
		return nil
	}
	fs.Var(user, "slashing-protection-db-username", user.usage)
	fs.Var(pass, "slashing-protection-db-password", pass.usage)
}

// wrapName makes f's Value a nameValue (once) so that it can carry more names.
func wrapName(f *flag.Flag) *nameValue {
	if nv, ok := f.Value.(*nameValue); ok {
		return nv
	}
	nv := &nameValue{Value: f.Value, group: f.Name}
	f.Value = nv
	return nv
}

// chain applies a, then b (either may be nil).
func chain(a, b func(string) (string, error)) func(string) (string, error) {
	if a == nil {
		return b
	}
	return func(s string) (string, error) {
		s, err := a(s)
		if err != nil {
			return "", err
		}
		return b(s)
	}
}

var (
	kvUserRE     = regexp.MustCompile(`(^|\s)user\s*=`)
	kvPasswordRE = regexp.MustCompile(`(^|\s)password\s*=`)
)

// mergeDBCredentials puts Web3Signer's separate user name and password into a Postgres URL or
// key=value DSN. A credential the URL already has is an error unless it is the same user name
// (the password is never compared in a message).
func mergeDBCredentials(dsn, user, password string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", usagef("--slashing-protection-db-url does not parse as a URL, so --slashing-protection-db-username/-password cannot be merged into it")
		}
		q := u.Query()
		curUser, curPass, hasPass := "", "", false
		if u.User != nil {
			curUser = u.User.Username()
			curPass, hasPass = u.User.Password()
		}
		if q.Has("user") {
			curUser = q.Get("user")
		}
		if q.Has("password") {
			curPass, hasPass = q.Get("password"), true
		}
		if user != "" && curUser != "" && curUser != user {
			return "", usagef("--slashing-protection-db-username=%q and the user %q in --slashing-protection-db-url differ: give the user once", user, curUser)
		}
		if password != "" && hasPass {
			return "", usagef("the password is given twice (in --slashing-protection-db-url and --slashing-protection-db-password): give it once")
		}
		if user == "" {
			user = curUser
		}
		if password == "" {
			password = curPass
		}
		q.Del("user")
		q.Del("password")
		u.RawQuery = q.Encode()
		switch {
		case password != "" || hasPass:
			u.User = url.UserPassword(user, password)
		case user != "":
			u.User = url.User(user)
		}
		return u.String(), nil
	}
	if user != "" && kvUserRE.MatchString(dsn) {
		return "", usagef("--slashing-protection-db-username and a user= in --slashing-protection-db-url: give the user once")
	}
	if password != "" && kvPasswordRE.MatchString(dsn) {
		return "", usagef("the password is given twice (in --slashing-protection-db-url and --slashing-protection-db-password): give it once")
	}
	out := dsn
	if user != "" {
		out += " user=" + kvQuote(user)
	}
	if password != "" {
		out += " password=" + kvQuote(password)
	}
	return out, nil
}

// kvQuote quotes a value of a key=value DSN (libpq rules: single quotes, \' and \\ escaped).
func kvQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// logWeb3SignerNotes logs, once the logger exists, what Web3Signer options that Vigil accepts
// but does not act on mean here.
func logWeb3SignerNotes(fs *flag.FlagSet, log *slog.Logger) {
	fs.VisitAll(func(f *flag.Flag) {
		nv, ok := f.Value.(*nameValue)
		if !ok || nv.note == nil || nv.origin == "" {
			return
		}
		if n := nv.note(nv.Value.String()); n != "" {
			log.Warn("Web3Signer option accepted without effect", "option", "--"+f.Name, "from", nv.origin, "note", n)
		}
	})
}

// eth2Args turns Web3Signer's command-line shape, `[global options] eth2 [eth2 options]`, into
// the arguments of `vigil serve`. ok is false when args hold no eth2 subcommand. Web3Signer's
// eth2 import/export/watermark-repair subcommands are usage errors pointing at `vigil slashing`.
func eth2Args(args []string, isBool func(name string) (known, isBool bool)) (serveArgs []string, ok bool, err error) {
	i := subcommandIndex(args, isBool)
	if i < 0 || args[i] != "eth2" {
		return nil, false, nil
	}
	rest := args[i+1:]
	if j := subcommandIndex(rest, isBool); j >= 0 {
		switch rest[j] {
		case "import":
			return nil, true, usagef("vigil eth2 import: use `vigil slashing import --file <interchange.json>` with the same database flags (--from becomes --file)")
		case "export":
			return nil, true, usagef("vigil eth2 export: use `vigil slashing export --file <interchange.json>` with the same database flags (--to becomes --file)")
		case "watermark-repair":
			return nil, true, usagef("vigil eth2 watermark-repair: use `vigil slashing watermark` (--slot/--epoch, --high-slot/--high-epoch, --remove-high)")
		}
	}
	return append(append([]string{}, args[:i]...), rest...), true, nil
}

// subcommandIndex is the index of the first argument that is neither a flag nor a flag's value,
// or -1.
func subcommandIndex(args []string, isBool func(name string) (known, isBool bool)) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return -1
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return i
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if hasValue {
			continue
		}
		if known, b := isBool(name); known && !b {
			i++ // the flag's value
		}
	}
	return -1
}

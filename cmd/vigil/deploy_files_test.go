package main

// The deployment files of the HA pair (deploy/systemd, deploy/haproxy, deploy/kubernetes and
// deploy/README.md) are checked against the code: every flag, VIGIL_* variable and config-file
// key they use must be one `vigil serve` has, every probe path one the API serves (readiness on
// /readyz, the only one that tells the leader from the standby), the settings of each instance
// must parse and validate as `vigil serve` would read them, and the HAProxy file must pass
// `haproxy -c` and fail a request over from one instance to the other when run as it is.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/internal/testenv"
)

const deployDir = "../../deploy"

// deployNames are the names `vigil serve` accepts.
type deployNames struct {
	flags  map[string]bool // flag names, Web3Signer names included
	env    map[string]bool // environment variables (VIGIL_<FLAG>, WEB3SIGNER_…, secrets)
	keys   map[string]bool // config-file keys
	probes map[string]bool // GET routes of the signing API that are probes
}

func deployKnownNames(t testing.TB) deployNames {
	t.Helper()
	var c serveConfig
	fs := serveFlags(&c, func(string) string { return "" })
	n := deployNames{flags: map[string]bool{}, env: map[string]bool{}, keys: map[string]bool{}, probes: map[string]bool{}}
	fs.VisitAll(func(f *flag.Flag) {
		n.flags[f.Name] = true
		for _, e := range envNames(f) {
			n.env[e] = true
		}
		if groupOf(f) == "config-file" {
			return // applyConfigFile refuses it as a key
		}
		n.keys[f.Name] = true
		if nv, ok := f.Value.(*nameValue); ok {
			for _, k := range nv.keys {
				n.keys[k] = true
			}
		}
	})
	// Secrets read from the environment besides the flags (keystores.go).
	for _, e := range []string{envKeyringPassword, envHSMPIN, envVaultToken} {
		n.env[e] = true
	}
	for _, p := range deployAPIGetRoutes(t) {
		switch p {
		case "/livez", "/readyz", "/healthcheck", "/upcheck":
			n.probes[p] = true
		}
	}
	for _, p := range []string{"/livez", "/readyz"} {
		if !n.probes[p] {
			t.Fatalf("api/api.go registers no GET %s route", p)
		}
	}
	return n
}

// deployAPIGetRoutes are the literal paths of r.Get("…", …) calls in api/api.go.
func deployAPIGetRoutes(t testing.TB) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../api/api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	ast.Inspect(f, func(x ast.Node) bool {
		call, ok := x.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		lit, ok2 := call.Args[0].(*ast.BasicLit)
		if !ok || !ok2 || sel.Sel.Name != "Get" || lit.Kind != token.STRING {
			return true
		}
		if p, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(p, "/") {
			paths = append(paths, p)
		}
		return true
	})
	return paths
}

func (n deployNames) flag(where, name string) []string {
	if n.flags[name] {
		return nil
	}
	return []string{fmt.Sprintf("%s: --%s is not a flag of `vigil serve`", where, name)}
}

func (n deployNames) envVar(where, name string) []string {
	if n.env[name] {
		return nil
	}
	return []string{fmt.Sprintf("%s: %s is not an environment variable of `vigil serve`", where, name)}
}

func (n deployNames) probe(where, path string) []string {
	if n.probes[path] {
		return nil
	}
	return []string{fmt.Sprintf("%s: probe path %q is not one the API serves (%s)", where, path, strings.Join(deploySorted(n.probes), ", "))}
}

func deploySorted(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// --- Any text: VIGIL_* names and --flags mentioned anywhere (comments, prose, commands) ---

var (
	deployVigilEnvRE = regexp.MustCompile(`\bVIGIL_[A-Z0-9_]*[A-Z0-9]\b`)
	deployFlagRE     = regexp.MustCompile("(?:^|[\\s\"'`(\\[=,|])--([a-z][a-z0-9.-]*[a-z0-9])")
)

// deployForeignOptions are options of other programs that the deploy files mention (kubectl,
// useradd, systemctl, curl, haproxy).
var deployForeignOptions = map[string]bool{
	"from-literal": true, "from-file": true, "system": true, "home-dir": true, "shell": true,
	"now": true, "offline": true, "rm": true, "help": true,
}

// deployCheckText reports VIGIL_* names and --options in text that `vigil serve` does not have.
func deployCheckText(where, text string, n deployNames) []string {
	var bad []string
	seen := map[string]bool{}
	for _, e := range deployVigilEnvRE.FindAllString(text, -1) {
		if !seen[e] {
			seen[e] = true
			bad = append(bad, n.envVar(where, e)...)
		}
	}
	for _, m := range deployFlagRE.FindAllStringSubmatch(text, -1) {
		if name := m[1]; !seen["--"+name] && !deployForeignOptions[name] {
			seen["--"+name] = true
			bad = append(bad, n.flag(where, name)...)
		}
	}
	return bad
}

// deployFlagArgs checks command-line arguments of `vigil serve` (after "serve") and returns
// them; every one must be a --flag (=value) of serve.
func deployFlagArgs(where string, args []string, n deployNames) []string {
	var bad []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			bad = append(bad, fmt.Sprintf("%s: argument %q is not a flag", where, a))
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		bad = append(bad, n.flag(where, name)...)
		if !hasValue && n.flags[name] {
			var c serveConfig
			f := serveFlags(&c, func(string) string { return "" }).Lookup(name)
			if !(&nameValue{Value: f.Value}).IsBoolFlag() {
				i++ // --flag value
			}
		}
	}
	return bad
}

// --- systemd ---

// deployUnit is a parsed unit file: section → key → values, continuation lines joined.
type deployUnit map[string]map[string][]string

func deployParseUnit(text string) (deployUnit, error) {
	u := deployUnit{}
	section := ""
	var pending string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if pending != "" {
			line = pending + " " + strings.TrimSpace(line)
			pending = ""
		} else if t := strings.TrimSpace(line); t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not key=value in a section", i+1, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u, nil
}

func (u deployUnit) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// deploySystemdSeconds parses a systemd time span ("30s", "1min 30s", "90").
func deploySystemdSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	s = strings.NewReplacer("min", "m", " ", "").Replace(s)
	return time.ParseDuration(s)
}

// deployUnitServe checks a vigil unit and returns the arguments of its `vigil serve` (with
// instance "a"); the settings themselves are checked by deployServeSettings.
func deployUnitServe(where, text string, n deployNames) (args []string, u deployUnit, bad []string) {
	u, err := deployParseUnit(text)
	if err != nil {
		return nil, nil, []string{where + ": " + err.Error()}
	}
	svc := u["Service"]
	if svc == nil {
		return nil, u, []string{where + ": no [Service] section"}
	}
	want := map[string]string{
		"User": "vigil", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"KillSignal": "SIGTERM", "Restart": "always",
	}
	for k, v := range want {
		if got := u.last("Service", k); got != v && !(v == "yes" && got == "true") {
			bad = append(bad, fmt.Sprintf("%s: %s=%q, want %q", where, k, got, v))
		}
	}
	if len(svc["EnvironmentFile"]) == 0 {
		bad = append(bad, where+": no EnvironmentFile=")
	}
	for _, e := range svc["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, _, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			if strings.HasPrefix(k, "VIGIL_") || strings.HasPrefix(k, "WEB3SIGNER_") {
				bad = append(bad, n.envVar(where+": Environment", k)...)
			}
		}
	}
	execs := svc["ExecStart"]
	if len(execs) != 1 {
		return nil, u, append(bad, fmt.Sprintf("%s: %d ExecStart= lines, want 1", where, len(execs)))
	}
	tok := strings.Fields(strings.NewReplacer("%i", "a", "%d", "/run/credentials/vigil@a.service").Replace(execs[0]))
	if len(tok) < 2 || filepath.Base(tok[0]) != "vigil" || tok[1] != "serve" {
		return nil, u, append(bad, fmt.Sprintf("%s: ExecStart=%q does not run `vigil serve`", where, execs[0]))
	}
	args = tok[2:]
	bad = append(bad, deployFlagArgs(where+": ExecStart", args, n)...)
	// The data dir must be writable under ProtectSystem=strict.
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			rw := strings.Fields(strings.ReplaceAll(strings.Join(svc["ReadWritePaths"], " "), "%i", "a"))
			found := false
			for _, p := range rw {
				if v == strings.TrimLeft(p, "-") || strings.HasPrefix(v, strings.TrimLeft(p, "-")+"/") {
					found = true
				}
			}
			if !found {
				bad = append(bad, fmt.Sprintf("%s: --data-dir %s is not in ReadWritePaths=%v", where, v, rw))
			}
		}
	}
	return args, u, bad
}

// deployParseEnvFile reads KEY=VALUE lines (EnvironmentFile= syntax, without quotes).
func deployParseEnvFile(where, text string, n deployNames) (map[string]string, []string) {
	env := map[string]string{}
	var bad []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			bad = append(bad, fmt.Sprintf("%s:%d: %q is not KEY=VALUE", where, line, l))
			continue
		}
		bad = append(bad, n.envVar(fmt.Sprintf("%s:%d", where, line), k)...)
		env[k] = v
	}
	return env, bad
}

// deployCheckConfigKeys checks the keys of a --config-file YAML.
func deployCheckConfigKeys(where, text string, n deployNames) []string {
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(text), &raw); err != nil {
		return []string{where + ": " + err.Error()}
	}
	var bad []string
	for _, k := range deploySorted(func() map[string]bool {
		m := map[string]bool{}
		for k := range raw {
			m[k] = true
		}
		return m
	}()) {
		if !n.keys[k] {
			bad = append(bad, fmt.Sprintf("%s: key %q is not a config-file key of `vigil serve`", where, k))
		}
	}
	return bad
}

// deployServeSettings parses args, env and the config file the way `vigil serve` does and
// validates the result.
func deployServeSettings(args []string, env map[string]string) (*serveConfig, error) {
	var c serveConfig
	fs := serveFlags(&c, func(string) string { return "" })
	if err := parseLayered(fs, args, func(k string) string { return env[k] }); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// --- HAProxy ---

type deployHAProxy struct {
	checkPaths []string            // option httpchk / http-check send paths
	envVars    []string            // ${NAME} used
	binds      map[string][]string // frontend → env vars of its bind lines
	defaultBE  map[string]string   // frontend → default_backend
	servers    map[string][]string // backend → env vars of its server addresses
	srvNames   map[string][]string // backend → names of those servers, in the same order
	pairBE     string              // the backend with the health check
}

var deployHAEnvRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)

func deployCheckHAProxy(where, text string, n deployNames) (*deployHAProxy, []string) {
	h := &deployHAProxy{binds: map[string][]string{}, defaultBE: map[string]string{}, servers: map[string][]string{}, srvNames: map[string][]string{}}
	var bad []string
	section, name := "", ""
	type params struct{ inter, fall, rise, markedDown string }
	var dflt params
	perServer := map[string]params{}
	var expect200 bool
	timeouts := map[string]string{}
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if j := strings.Index(line, "#"); j >= 0 && !strings.Contains(line[:j], `"`) {
			line = strings.TrimSpace(line[:j])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		vars := deployHAEnvRE.FindAllStringSubmatch(line, -1)
		var names []string
		for _, v := range vars {
			names = append(names, v[1])
			h.envVars = append(h.envVars, v[1])
		}
		if raw[0] != ' ' && raw[0] != '\t' {
			section, name = f[0], ""
			if len(f) > 1 {
				name = f[1]
			}
			continue
		}
		where := fmt.Sprintf("%s:%d", where, i+1)
		parse := func(p *params, f []string) {
			for k := 0; k+1 < len(f); k++ {
				switch f[k] {
				case "inter":
					p.inter = f[k+1]
				case "fall":
					p.fall = f[k+1]
				case "rise":
					p.rise = f[k+1]
				case "on-marked-down":
					p.markedDown = f[k+1]
				}
			}
		}
		switch {
		case f[0] == "option" && len(f) > 1 && f[1] == "httpchk":
			if len(f) < 4 {
				bad = append(bad, where+": option httpchk without a method and path (HAProxy would check /)")
				continue
			}
			h.checkPaths = append(h.checkPaths, f[3])
			h.pairBE = name
		case f[0] == "http-check" && len(f) > 1 && f[1] == "send":
			for k := 2; k+1 < len(f); k++ {
				if f[k] == "uri" {
					h.checkPaths = append(h.checkPaths, f[k+1])
				}
			}
		case f[0] == "http-check" && len(f) > 3 && f[1] == "expect":
			expect200 = f[2] == "status" && f[3] == "200"
		case f[0] == "timeout" && len(f) > 2:
			timeouts[f[1]] = f[2]
		case f[0] == "bind" && section == "frontend":
			h.binds[name] = append(h.binds[name], names...)
		case f[0] == "default_backend" && len(f) > 1:
			h.defaultBE[name] = f[1]
		case f[0] == "default-server":
			parse(&dflt, f)
		case f[0] == "server" && len(f) > 2:
			h.servers[name] = append(h.servers[name], names...)
			for range names {
				h.srvNames[name] = append(h.srvNames[name], f[1])
			}
			p := params{}
			parse(&p, f)
			perServer[name+"/"+f[1]] = p
		}
	}
	if len(h.checkPaths) == 0 {
		bad = append(bad, where+": no option httpchk")
	}
	for _, p := range h.checkPaths {
		bad = append(bad, n.probe(where+": health check", p)...)
		if p != "/readyz" {
			bad = append(bad, fmt.Sprintf("%s: health check %s: only /readyz tells the leader from the standby", where, p))
		}
	}
	if !expect200 {
		bad = append(bad, where+": no `http-check expect status 200`")
	}
	if len(h.servers[h.pairBE]) != 2 {
		bad = append(bad, fmt.Sprintf("%s: backend %q has %d servers with substitutable addresses, want 2", where, h.pairBE, len(h.servers[h.pairBE])))
	}
	for s, p := range perServer {
		if !strings.HasPrefix(s, h.pairBE+"/") {
			continue
		}
		pick := func(a, b string) string {
			if a != "" {
				return a
			}
			return b
		}
		inter, err := time.ParseDuration(pick(p.inter, dflt.inter))
		if err != nil || inter > 250*time.Millisecond {
			bad = append(bad, fmt.Sprintf("%s: server %s: check inter %q, want at most 250ms", where, s, pick(p.inter, dflt.inter)))
		}
		if pick(p.fall, dflt.fall) != "1" || pick(p.rise, dflt.rise) != "1" {
			bad = append(bad, fmt.Sprintf("%s: server %s: want fall 1 rise 1", where, s))
		}
		if pick(p.markedDown, dflt.markedDown) != "shutdown-sessions" {
			bad = append(bad, fmt.Sprintf("%s: server %s: want on-marked-down shutdown-sessions", where, s))
		}
	}
	for k, want := range map[string]time.Duration{"connect": 100 * time.Millisecond, "client": 10 * time.Second, "server": 10 * time.Second} {
		got, err := time.ParseDuration(timeouts[k])
		if err != nil || got != want {
			bad = append(bad, fmt.Sprintf("%s: timeout %s %q, want %s", where, k, timeouts[k], want))
		}
	}
	return h, bad
}

// --- Kubernetes ---

type deployK8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
	PeriodSeconds int `yaml:"periodSeconds"`
}

type deployK8sEnv struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type deployK8sContainer struct {
	Name           string          `yaml:"name"`
	Command        []string        `yaml:"command"`
	Args           []string        `yaml:"args"`
	Env            []deployK8sEnv  `yaml:"env"`
	ReadinessProbe *deployK8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *deployK8sProbe `yaml:"livenessProbe"`
	StartupProbe   *deployK8sProbe `yaml:"startupProbe"`
}

type deployK8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// StatefulSet / Deployment
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				Affinity                      *struct {
					PodAntiAffinity *struct {
						Required []struct {
							TopologyKey string `yaml:"topologyKey"`
						} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				Containers []deployK8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service
		ClusterIP                string `yaml:"clusterIP"`
		PublishNotReadyAddresses bool   `yaml:"publishNotReadyAddresses"`
		Ports                    []struct {
			Port int `yaml:"port"`
		} `yaml:"ports"`
		// PodDisruptionBudget
		MinAvailable any `yaml:"minAvailable"`
	} `yaml:"spec"`
}

func deployDecodeK8s(text string) ([]deployK8sObject, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var objs []deployK8sObject
	for {
		var o deployK8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
}

var deployK8sRefRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// deployK8sPod is what the checks need of the vigil container of a workload.
type deployK8sPod struct {
	where     string
	args      []string          // serve arguments, $(VAR) expanded
	env       map[string]string // environment, fieldRef and secretKeyRef resolved
	podName   string
	graceSecs int
}

// deployCheckK8s checks the objects of one or more manifests; secrets are the stringData of
// example Secrets (for resolving secretKeyRef).
func deployCheckK8s(where string, objs []deployK8sObject, secrets map[string]map[string]string, n deployNames) ([]deployK8sPod, []string) {
	var bad []string
	var pods []deployK8sPod
	var workloads, readySvc, pdbs int
	for _, o := range objs {
		w := fmt.Sprintf("%s: %s/%s", where, o.Kind, o.Metadata.Name)
		switch o.Kind {
		case "StatefulSet", "Deployment":
			workloads++
			ps := o.Spec.Template.Spec
			if o.Spec.Replicas == nil || *o.Spec.Replicas != 2 {
				bad = append(bad, w+": want replicas: 2")
			}
			grace := 30 // the Kubernetes default
			if ps.TerminationGracePeriodSeconds != nil {
				grace = *ps.TerminationGracePeriodSeconds
			}
			anti := false
			if ps.Affinity != nil && ps.Affinity.PodAntiAffinity != nil {
				for _, r := range ps.Affinity.PodAntiAffinity.Required {
					anti = anti || r.TopologyKey == "kubernetes.io/hostname"
				}
			}
			if !anti {
				bad = append(bad, w+": no required podAntiAffinity on kubernetes.io/hostname")
			}
			for _, c := range ps.Containers {
				cw := w + ": container " + c.Name
				cmd := append(append([]string{}, c.Command...), c.Args...)
				if len(cmd) < 2 || filepath.Base(cmd[0]) != "vigil" || cmd[1] != "serve" {
					continue
				}
				pod := deployK8sPod{where: cw, env: map[string]string{}, podName: o.Metadata.Name + "-0", graceSecs: grace}
				for _, e := range c.Env {
					if strings.HasPrefix(e.Name, "VIGIL_") || strings.HasPrefix(e.Name, "WEB3SIGNER_") {
						bad = append(bad, n.envVar(cw+": env", e.Name)...)
					}
					v := e.Value
					if vf := e.ValueFrom; vf != nil {
						switch {
						case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.name":
							v = pod.podName
						case vf.FieldRef != nil && vf.FieldRef.FieldPath == "metadata.namespace":
							v = "validators"
						case vf.FieldRef != nil:
							v = "fieldref-" + vf.FieldRef.FieldPath
						case vf.SecretKeyRef != nil:
							s, ok := secrets[vf.SecretKeyRef.Name][vf.SecretKeyRef.Key]
							if !ok {
								bad = append(bad, fmt.Sprintf("%s: env %s: no example Secret %s with key %s", cw, e.Name, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key))
							}
							v = s
						}
						if e.Name == "VIGIL_HA_INSTANCE_ID" && (vf.FieldRef == nil || vf.FieldRef.FieldPath != "metadata.name") {
							bad = append(bad, cw+": VIGIL_HA_INSTANCE_ID must come from fieldRef metadata.name")
						}
						if e.Name == "VIGIL_SLASHING_PROTECTION_DB_URL" && vf.SecretKeyRef == nil {
							bad = append(bad, cw+": VIGIL_SLASHING_PROTECTION_DB_URL must come from a Secret")
						}
					} else if e.Name == "VIGIL_SLASHING_PROTECTION_DB_URL" {
						bad = append(bad, cw+": VIGIL_SLASHING_PROTECTION_DB_URL must come from a Secret, not a literal value")
					}
					pod.env[e.Name] = deployK8sRefRE.ReplaceAllStringFunc(v, func(m string) string {
						return pod.env[deployK8sRefRE.FindStringSubmatch(m)[1]]
					})
				}
				for _, a := range cmd[2:] {
					pod.args = append(pod.args, deployK8sRefRE.ReplaceAllStringFunc(a, func(m string) string {
						return pod.env[deployK8sRefRE.FindStringSubmatch(m)[1]]
					}))
				}
				bad = append(bad, deployFlagArgs(cw+": args", pod.args, n)...)
				switch p := c.ReadinessProbe; {
				case p == nil || p.HTTPGet == nil:
					bad = append(bad, cw+": no httpGet readinessProbe")
				default:
					bad = append(bad, n.probe(cw+": readinessProbe", p.HTTPGet.Path)...)
					if p.HTTPGet.Path != "/readyz" {
						bad = append(bad, fmt.Sprintf("%s: readinessProbe %s: only /readyz tells the leader from the standby", cw, p.HTTPGet.Path))
					}
					if p.PeriodSeconds != 1 {
						bad = append(bad, fmt.Sprintf("%s: readinessProbe periodSeconds %d, want 1", cw, p.PeriodSeconds))
					}
				}
				for kind, p := range map[string]*deployK8sProbe{"livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
					if p == nil || p.HTTPGet == nil {
						if kind == "livenessProbe" {
							bad = append(bad, cw+": no httpGet livenessProbe")
						}
						continue
					}
					bad = append(bad, n.probe(cw+": "+kind, p.HTTPGet.Path)...)
					if p.HTTPGet.Path == "/readyz" {
						bad = append(bad, fmt.Sprintf("%s: %s on /readyz would restart the standby", cw, kind))
					}
				}
				pods = append(pods, pod)
			}
		case "Service":
			if o.Spec.ClusterIP == "None" {
				continue // headless: pod DNS names, standbys included
			}
			if o.Spec.PublishNotReadyAddresses {
				bad = append(bad, w+": a Service for clients must route to ready pods only")
			}
			for _, p := range o.Spec.Ports {
				if p.Port == 9000 {
					readySvc++
				}
			}
		case "PodDisruptionBudget":
			pdbs++
			if fmt.Sprint(o.Spec.MinAvailable) != "1" {
				bad = append(bad, fmt.Sprintf("%s: minAvailable %v, want 1", w, o.Spec.MinAvailable))
			}
		}
	}
	if workloads == 0 || len(pods) == 0 {
		bad = append(bad, where+": no StatefulSet or Deployment running `vigil serve`")
	}
	if readySvc == 0 {
		bad = append(bad, where+": no Service on port 9000 for ready pods")
	}
	if pdbs == 0 {
		bad = append(bad, where+": no PodDisruptionBudget")
	}
	return pods, bad
}

// --- README: `vigil serve` command lines in code blocks ---

func deployReadmeServeArgs(text string) [][]string {
	var cmds [][]string
	inCode := false
	var cur string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			continue
		}
		if !inCode {
			continue
		}
		if cur != "" {
			cur += " " + strings.TrimSpace(line)
		} else if i := strings.Index(line, "vigil serve"); i >= 0 {
			cur = line[i:]
		} else {
			continue
		}
		if strings.HasSuffix(cur, "\\") {
			cur = strings.TrimSuffix(cur, "\\")
			continue
		}
		if j := strings.Index(cur, " #"); j >= 0 {
			cur = cur[:j]
		}
		for _, sep := range []string{" &", " >", " |", ";"} {
			if j := strings.Index(cur, sep); j >= 0 {
				cur = cur[:j]
			}
		}
		cmds = append(cmds, strings.Fields(cur)[2:])
		cur = ""
	}
	return cmds
}

func deployRead(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deployReport(t *testing.T, bad []string) {
	t.Helper()
	for _, b := range bad {
		t.Error(b)
	}
}

func TestDeployFiles(t *testing.T) {
	n := deployKnownNames(t)

	t.Run("AnyText", func(t *testing.T) {
		var files []string
		for _, dir := range []string{"systemd", "haproxy", "kubernetes"} {
			ents, err := os.ReadDir(filepath.Join(deployDir, dir))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
		files = append(files, "README.md")
		for _, f := range files {
			deployReport(t, deployCheckText("deploy/"+f, deployRead(t, f), n))
		}
	})

	t.Run("README", func(t *testing.T) {
		cmds := deployReadmeServeArgs(deployRead(t, "README.md"))
		if len(cmds) < 2 {
			t.Fatalf("deploy/README.md: %d `vigil serve` commands in code blocks, want the two of the pair", len(cmds))
		}
		for i, args := range cmds {
			deployReport(t, deployFlagArgs(fmt.Sprintf("deploy/README.md: serve command %d", i+1), args, n))
		}
	})

	t.Run("Systemd", func(t *testing.T) {
		args, u, bad := deployUnitServe("deploy/systemd/vigil@.service", deployRead(t, "systemd/vigil@.service"), n)
		deployReport(t, bad)
		env, bad := deployParseEnvFile("deploy/systemd/vigil.env.example", deployRead(t, "systemd/vigil.env.example"), n)
		deployReport(t, bad)
		deployReport(t, deployCheckConfigKeys("deploy/systemd/vigil.yaml.example", deployRead(t, "systemd/vigil.yaml.example"), n))
		if t.Failed() {
			return
		}
		// The instance's settings as vigil serve reads them: the unit's command line, the env
		// example as its EnvironmentFile, the YAML example as its --config-file.
		for i, a := range args {
			if strings.HasPrefix(a, "--config-file=") {
				args[i] = "--config-file=" + filepath.Join(deployDir, "systemd", "vigil.yaml.example")
			}
		}
		c, err := deployServeSettings(args, env)
		if err != nil {
			t.Fatalf("systemd instance settings: %v", err)
		}
		if !c.ha.enabled || c.ha.instanceID == "" || c.ha.advertiseURL == "" || c.store.dbURL == "" {
			t.Errorf("systemd instance: ha-enabled %v, instance id %q, advertise URL %q, DB URL set %v: want all set",
				c.ha.enabled, c.ha.instanceID, c.ha.advertiseURL, c.store.dbURL != "")
		}
		t.Logf("vigil@a: instance %q, advertise %s, lease %s, shutdown grace %s, TimeoutStopSec=%s, data dir %s",
			c.ha.instanceID, c.ha.advertiseURL, c.ha.lease, c.shutdownGrace, u.last("Service", "TimeoutStopSec"), c.store.dataDir)
		stop, err := deploySystemdSeconds(u.last("Service", "TimeoutStopSec"))
		if err != nil || stop <= c.shutdownGrace {
			t.Errorf("TimeoutStopSec=%q must exceed --shutdown-grace %s", u.last("Service", "TimeoutStopSec"), c.shutdownGrace)
		}
	})

	t.Run("Kubernetes", func(t *testing.T) {
		ents, err := os.ReadDir(filepath.Join(deployDir, "kubernetes"))
		if err != nil {
			t.Fatal(err)
		}
		var objs []deployK8sObject
		secrets := map[string]map[string]string{}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".yaml") {
				continue
			}
			o, err := deployDecodeK8s(deployRead(t, filepath.Join("kubernetes", e.Name())))
			if err != nil {
				t.Fatalf("deploy/kubernetes/%s: %v", e.Name(), err)
			}
			for _, x := range o {
				if x.Kind == "Secret" {
					secrets[x.Metadata.Name] = x.StringData
				}
			}
			objs = append(objs, o...)
		}
		pods, bad := deployCheckK8s("deploy/kubernetes", objs, secrets, n)
		deployReport(t, bad)
		if t.Failed() {
			return
		}
		for _, p := range pods {
			c, err := deployServeSettings(p.args, p.env)
			if err != nil {
				t.Errorf("%s: settings: %v", p.where, err)
				continue
			}
			if !c.ha.enabled || c.ha.instanceID != p.podName || c.ha.advertiseURL == "" || c.store.dbURL == "" {
				t.Errorf("%s: ha-enabled %v, instance id %q (want the pod name %q), advertise URL %q, DB URL set %v",
					p.where, c.ha.enabled, c.ha.instanceID, p.podName, c.ha.advertiseURL, c.store.dbURL != "")
			}
			t.Logf("%s: instance %q, advertise %s, lease %s, shutdown grace %s, terminationGracePeriodSeconds %d",
				p.where, c.ha.instanceID, c.ha.advertiseURL, c.ha.lease, c.shutdownGrace, p.graceSecs)
			if time.Duration(p.graceSecs)*time.Second <= c.shutdownGrace {
				t.Errorf("%s: terminationGracePeriodSeconds %d must exceed --shutdown-grace %s", p.where, p.graceSecs, c.shutdownGrace)
			}
			if c.host != "0.0.0.0" && c.host != "" && c.host != "::" {
				t.Errorf("%s: --http-listen-host %q: the kubelet and the Service reach the pod IP", p.where, c.host)
			}
		}
	})

	t.Run("HAProxy", func(t *testing.T) {
		text := deployRead(t, "haproxy/haproxy.cfg")
		h, bad := deployCheckHAProxy("deploy/haproxy/haproxy.cfg", text, n)
		deployReport(t, bad)
		if t.Failed() {
			return
		}
		bin := testenv.LookPath(t, "haproxy", "apt-get install haproxy (Debian 12: 2.6)")
		t.Run("Check", func(t *testing.T) {
			env := os.Environ()
			for _, v := range h.envVars {
				env = append(env, v+"=127.0.0.1:"+strconv.Itoa(deployFreePort(t)))
			}
			cmd := exec.Command(bin, "-c", "-f", filepath.Join(deployDir, "haproxy", "haproxy.cfg"))
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil || bytes.Contains(out, []byte("[WARNING]")) || bytes.Contains(out, []byte("[ALERT]")) {
				t.Fatalf("haproxy -c -f deploy/haproxy/haproxy.cfg: %v\n%s", err, out)
			}
		})
		t.Run("Failover", func(t *testing.T) { deployHAProxyFailover(t, bin, text, h) })
	})

	t.Run("Negative", func(t *testing.T) { deployNegative(t, n) })
}

func deployFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// deployFakeVigil is an instance of the pair as HAProxy sees it: /readyz 200 on the leader,
// 503 on the standby, behind the API's Host guard with its default allowlist.
type deployFakeVigil struct {
	name   string
	leader atomic.Bool
	srv    *httptest.Server
}

func newDeployFakeVigil(t *testing.T, name string) *deployFakeVigil {
	v := &deployFakeVigil{name: name}
	allow, err := api.ParseHostAllowlist("http-host-allowlist", api.DefaultHostAllowlist)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !v.leader.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /api/v1/eth2/sign/{id}", func(w http.ResponseWriter, _ *http.Request) {
		if !v.leader.Load() {
			http.Error(w, "standby", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, v.name)
	})
	v.srv = httptest.NewServer(api.HostGuard(allow, nil, mux))
	t.Cleanup(v.srv.Close)
	return v
}

// deployHAProxyFailover runs deploy/haproxy/haproxy.cfg (as root exactly as it is; otherwise
// without its user, group and chroot lines, which need root) against two fake instances and
// moves the leadership from one to the other.
func deployHAProxyFailover(t *testing.T, bin, text string, h *deployHAProxy) {
	cfg := filepath.Join(deployDir, "haproxy", "haproxy.cfg")
	if os.Geteuid() != 0 {
		var kept []string
		for _, l := range strings.Split(text, "\n") {
			if f := strings.Fields(l); len(f) > 0 && (f[0] == "user" || f[0] == "group" || f[0] == "chroot") {
				continue
			}
			kept = append(kept, l)
		}
		cfg = filepath.Join(t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Log("not root: running haproxy.cfg without its user, group and chroot lines")
	}
	a, b := newDeployFakeVigil(t, "a"), newDeployFakeVigil(t, "b")
	a.leader.Store(true)
	env := os.Environ()
	servers := h.servers[h.pairBE]
	env = append(env, servers[0]+"="+a.srv.Listener.Addr().String(), servers[1]+"="+b.srv.Listener.Addr().String())
	front := ""
	for fe, vars := range h.binds {
		for _, v := range vars {
			addr := "127.0.0.1:" + strconv.Itoa(deployFreePort(t))
			env = append(env, v+"="+addr)
			if h.defaultBE[fe] == h.pairBE {
				front = addr
			}
		}
	}
	if front == "" {
		t.Fatalf("no frontend with a substitutable bind address sends to backend %s", h.pairBE)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", cfg)
	cmd.Env = env
	// HAProxy in the foreground (-db) reports every server state change on stderr ("Server
	// <backend>/<server> is UP|DOWN, ..."), after applying it: the test waits for those lines.
	out := newOutBuf()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	sign := func() string {
		req, _ := http.NewRequest(http.MethodPost, "http://"+front+"/api/v1/eth2/sign/0xab", strings.NewReader("{}"))
		req.Host = "localhost"
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return string(body)
	}
	names := h.srvNames[h.pairBE]
	state := func(i int, st string) string { return "Server " + h.pairBE + "/" + names[i] + " is " + st }
	// waitLines waits until the output after offset from holds every line (an event: HAProxy
	// writes) and returns the output's length then.
	waitLines := func(from int, within time.Duration, lines ...string) int {
		t.Helper()
		deadline := time.NewTimer(within)
		defer deadline.Stop()
		for {
			s, changed := out.snapshot()
			missing := ""
			for _, l := range lines {
				if !strings.Contains(s[from:], l) {
					missing = l
					break
				}
			}
			if missing == "" {
				return len(s)
			}
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("HAProxy did not report %q within %s", missing, within)
			}
		}
	}
	// Both servers start up; b's first check (a 503) takes it down: HAProxy listens and sends
	// to a alone.
	seen := waitLines(0, 5*time.Second, state(1, "DOWN"))
	if got := sign(); got != "a" {
		t.Fatalf("through HAProxy with a the leader: %q, want a", got)
	}
	// Failover: a loses the lease, b takes it.
	switched := time.Now()
	a.leader.Store(false)
	b.leader.Store(true)
	waitLines(seen, 3*time.Second, state(0, "DOWN"), state(1, "UP"))
	took := time.Since(switched)
	t.Logf("HAProxy moved to the new leader %s after the switch", took.Round(time.Millisecond))
	for i := 0; i < 20; i++ {
		if got := sign(); got != "b" {
			t.Fatalf("after the failover, request %d: %q, want b", i, got)
		}
	}
	// A check interval of 250 ms with fall 1 / rise 1 moves traffic within about two intervals
	// (the bound leaves room for a loaded machine).
	if took > 2*time.Second {
		t.Errorf("failover through HAProxy took %s, want under 2s", took)
	}
}

// deployNegative feeds each checker a known-bad in-memory file (a misspelt flag, variable,
// key or probe path) and a good one: the bad one must be reported, the good one not.
func deployNegative(t *testing.T, n deployNames) {
	unit := func(flags string) string {
		return "[Service]\nUser=vigil\nNoNewPrivileges=yes\nProtectSystem=strict\nKillSignal=SIGTERM\nRestart=always\n" +
			"EnvironmentFile=/etc/vigil/%i.env\nReadWritePaths=/var/lib/vigil/%i\nTimeoutStopSec=30s\n" +
			"ExecStart=/usr/local/bin/vigil serve \\\n    --data-dir=/var/lib/vigil/%i \\\n    " + flags + "\n"
	}
	haproxy := func(path string) string {
		return "defaults\n    timeout connect 100ms\n    timeout client 10s\n    timeout server 10s\n" +
			"backend p\n    option httpchk GET " + path + "\n    http-check expect status 200\n" +
			"    default-server check inter 250ms fall 1 rise 1 on-marked-down shutdown-sessions\n" +
			"    server a \"${A}\"\n    server b \"${B}\"\n"
	}
	k8s := func(envName, readyPath string) string {
		return `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vigil}
spec:
  replicas: 2
  template:
    spec:
      terminationGracePeriodSeconds: 30
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - topologyKey: kubernetes.io/hostname
      containers:
        - name: vigil
          command: [vigil, serve]
          args: [--ha-enabled]
          env:
            - {name: ` + envName + `, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
          readinessProbe: {httpGet: {path: ` + readyPath + `, port: 9000}, periodSeconds: 1}
          livenessProbe: {httpGet: {path: /livez, port: 9000}}
---
apiVersion: v1
kind: Service
metadata: {name: vigil}
spec:
  ports: [{port: 9000}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: vigil}
spec: {minAvailable: 1}
`
	}
	check := map[string]func(text string) []string{
		"text": func(s string) []string { return deployCheckText("mem", s, n) },
		"unit": func(s string) []string { _, _, bad := deployUnitServe("mem", s, n); return bad },
		"env":  func(s string) []string { _, bad := deployParseEnvFile("mem", s, n); return bad },
		"yaml": func(s string) []string { return deployCheckConfigKeys("mem", s, n) },
		"haproxy": func(s string) []string {
			_, bad := deployCheckHAProxy("mem", s, n)
			return bad
		},
		"k8s": func(s string) []string {
			objs, err := deployDecodeK8s(s)
			if err != nil {
				return []string{err.Error()}
			}
			_, bad := deployCheckK8s("mem", objs, nil, n)
			return bad
		},
		"readme": func(s string) []string {
			var bad []string
			for _, args := range deployReadmeServeArgs(s) {
				bad = append(bad, deployFlagArgs("mem", args, n)...)
			}
			return bad
		},
	}
	for _, tc := range []struct {
		name, kind, text string
		want             string // "" for a good file; else a fragment of the expected report
	}{
		{"unit good", "unit", unit("--ha-enabled --ha-lease=5s --network mainnet"), ""},
		{"unit unknown flag", "unit", unit("--ha-enabld"), "--ha-enabld is not a flag"},
		{"unit Web3Signer name", "unit", unit("--data-path=/x --logging=INFO"), ""},
		{"unit Environment=", "unit", unit("--ha-enabled") + "Environment=VIGIL_HA_LEAS=5s\n", "VIGIL_HA_LEAS is not"},
		{"unit hardening", "unit", strings.Replace(unit("--ha-enabled"), "ProtectSystem=strict", "ProtectSystem=full", 1), `ProtectSystem="full"`},
		{"unit data dir not writable", "unit", strings.Replace(unit("--ha-enabled"), "ReadWritePaths=/var/lib/vigil/%i", "ReadWritePaths=/srv", 1), "not in ReadWritePaths"},
		{"env good", "env", "# c\nVIGIL_HA_ENABLED=true\nWEB3SIGNER_ETH2_NETWORK=mainnet\n", ""},
		{"env unknown", "env", "VIGIL_HA_ENABLED=true\nVIGIL_HA_INSTANCEID=a\n", "VIGIL_HA_INSTANCEID is not"},
		{"yaml good", "yaml", "ha-enabled: true\neth2.network: mainnet\n", ""},
		{"yaml unknown key", "yaml", "ha-enabled: true\nha_lease: 5s\n", `key "ha_lease"`},
		{"yaml config-file key", "yaml", "config-file: x.yaml\n", `key "config-file"`},
		{"text good", "text", "set VIGIL_HA_LEASE or --ha-lease; kubectl --from-file=x", ""},
		{"text unknown env", "text", "# export VIGIL_HA_LEASE_SECONDS=5\n", "VIGIL_HA_LEASE_SECONDS is not"},
		{"text unknown flag", "text", "# see --ha-advertise-address\n", "--ha-advertise-address is not"},
		{"readme good", "readme", "```sh\nvigil serve --ha-enabled \\\n  --ha-instance-id a &\n```\n", ""},
		{"readme unknown flag", "readme", "```sh\nvigil serve --ha-enabled \\\n  --ha-id a\n```\n", "--ha-id is not"},
		{"haproxy good", "haproxy", haproxy("/readyz"), ""},
		{"haproxy unknown path", "haproxy", haproxy("/ready"), `"/ready" is not one the API serves`},
		{"haproxy liveness path", "haproxy", haproxy("/upcheck"), "only /readyz"},
		{"haproxy slow checks", "haproxy", strings.Replace(haproxy("/readyz"), "inter 250ms", "inter 2s", 1), "at most 250ms"},
		{"k8s good", "k8s", k8s("VIGIL_HA_INSTANCE_ID", "/readyz"), ""},
		{"k8s unknown env", "k8s", k8s("VIGIL_HA_INSTANCE", "/readyz"), "VIGIL_HA_INSTANCE is not"},
		{"k8s unknown probe", "k8s", k8s("VIGIL_HA_INSTANCE_ID", "/ready"), `"/ready" is not one the API serves`},
		{"k8s readiness on livez", "k8s", k8s("VIGIL_HA_INSTANCE_ID", "/livez"), "only /readyz"},
	} {
		bad := check[tc.kind](tc.text)
		switch {
		case tc.want == "" && len(bad) > 0:
			t.Errorf("%s: want no report, got %q", tc.name, bad)
		case tc.want != "" && !strings.Contains(strings.Join(bad, "\n"), tc.want):
			t.Errorf("%s: want a report containing %q, got %q", tc.name, tc.want, bad)
		}
	}
}

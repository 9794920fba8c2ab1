package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// errUsage marks a command-line, environment or config-file mistake (exit status 2).
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// envName is the environment variable of a flag: VIGIL_ + upper snake case.
func envName(flagName string) string {
	return "VIGIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// nameValue is the flag.Value of a flag that has more names than its own (web3signer.go): an
// alias of a Vigil flag, a Vigil flag that Web3Signer spells the same way, or a Web3Signer option
// of its own. Every name of one variable shares Value and group (the Vigil flag name), so a value
// given through one name counts as set for all of them, and two names given different values on
// the same layer is a usage error naming both.
type nameValue struct {
	flag.Value          // the variable, shared by every name of the group
	group      string   // the variable's identity: the Vigil flag name (or the option's own name)
	w3s        bool     // a Web3Signer-only name: listed apart at the end of --help
	env        []string // environment names besides VIGIL_<flag> (a w3s name has only these)
	keys       []string // config-file keys besides the flag name (e.g. "eth2.network")
	usage      string   // the line of the "Web3Signer names" help section
	secret     bool     // never print the value (messages say "a different value")
	// conv maps this name's syntax to the variable's (nil: none); an error refuses the value.
	conv func(string) (string, error)
	// finish runs once after every layer is applied (cross-flag checks and merges).
	finish func() error
	// note says what a given value means here, logged at start (nil or "": nothing to say).
	note func(value string) string

	origin string // where the value came from: "--name", an env name or "<file>: key"
}

func (v *nameValue) Set(s string) error {
	if v.conv != nil {
		c, err := v.conv(s)
		if err != nil {
			return err
		}
		s = c
	}
	return v.Value.Set(s)
}

func (v *nameValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (v *nameValue) String() string {
	if v == nil || v.Value == nil {
		return ""
	}
	return v.Value.String()
}

// groupOf is the variable a flag sets (its own name unless it is another name of one).
func groupOf(f *flag.Flag) string {
	if nv, ok := f.Value.(*nameValue); ok && nv.group != "" {
		return nv.group
	}
	return f.Name
}

// envNames are the environment variables of a flag, VIGIL_<FLAG> first.
func envNames(f *flag.Flag) []string {
	nv, ok := f.Value.(*nameValue)
	if !ok {
		return []string{envName(f.Name)}
	}
	if nv.w3s {
		return nv.env
	}
	return append([]string{envName(f.Name)}, nv.env...)
}

// layerSetting is one value of a group found on one layer (env or config file).
type layerSetting struct {
	flag, origin, value string
}

// setGroup applies the settings of one group found on one layer, in order. They must agree: two
// names giving the variable different values is a usage error naming both.
func setGroup(fs *flag.FlagSet, settings []layerSetting) error {
	var first layerSetting
	var firstVal string
	for i, s := range settings {
		if err := fs.Set(s.flag, s.value); err != nil {
			if isSecret(fs, s.flag) {
				return usagef("%s: %v", s.origin, err)
			}
			return usagef("%s=%q: %v", s.origin, s.value, err)
		}
		f := fs.Lookup(s.flag)
		if nv, ok := f.Value.(*nameValue); ok {
			nv.origin = s.origin
		}
		got := f.Value.String()
		if i == 0 {
			first, firstVal = s, got
			continue
		}
		if got != firstVal {
			if isSecret(fs, s.flag) {
				return usagef("%s and %s give different values: give one of them", first.origin, s.origin)
			}
			return conflict(first.origin, first.value, s.origin, s.value)
		}
	}
	return nil
}

func isSecret(fs *flag.FlagSet, name string) bool {
	nv, ok := fs.Lookup(name).Value.(*nameValue)
	return ok && nv.secret
}

func conflict(origin1, v1, origin2, v2 string) error {
	return usagef("%s=%q and %s=%q set the same setting to different values: give one of them", origin1, v1, origin2, v2)
}

// parseLayered parses args into fs, then fills every flag not given on the command line from
// VIGIL_<FLAG> in the environment (then from a flag's other environment names, such as
// WEB3SIGNER_…), then from the YAML config file (--config-file or VIGIL_CONFIG_FILE; keys are
// flag names without dashes). Precedence: command line > env > file > default. A flag with several
// names (nameValue) is one setting: set through any name it counts as set for all, and different
// values through two names on one layer is an error. Unknown config-file keys, an empty config
// file and bad values are errors that name their origin.
func parseLayered(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}

	// Members of each group, in flag-name order.
	members := map[string][]*flag.Flag{}
	var groups []string
	fs.VisitAll(func(f *flag.Flag) {
		g := groupOf(f)
		if members[g] == nil {
			groups = append(groups, g)
		}
		members[g] = append(members[g], f)
	})
	sort.Strings(groups)

	// Command line: a group is set when any of its names is; two names must agree.
	set := map[string]bool{}
	cliVal := map[string]*flag.Flag{}
	var firstErr error
	fs.Visit(func(f *flag.Flag) {
		g := groupOf(f)
		set[g] = true
		nv, _ := f.Value.(*nameValue)
		if nv != nil {
			nv.origin = "--" + f.Name
		}
		prev := cliVal[g]
		cliVal[g] = f
		if prev == nil || firstErr != nil {
			return
		}
		// Two names of one setting: re-apply each name's own value alone and read the variable
		// back, so that equal values in different syntaxes (INFO, info) agree.
		pv, fv := argValue(args, prev), argValue(args, f)
		_ = fs.Set(prev.Name, pv)
		a := prev.Value.String()
		_ = fs.Set(f.Name, fv)
		if b := f.Value.String(); a != b {
			if nv != nil && nv.secret {
				firstErr = usagef("--%s and --%s give different values: give one of them", prev.Name, f.Name)
			} else {
				firstErr = conflict("--"+prev.Name, pv, "--"+f.Name, fv)
			}
		}
	})
	if firstErr != nil {
		return firstErr
	}

	// Environment: VIGIL_<FLAG> wins over every other name of the same setting.
	for _, g := range groups {
		if set[g] {
			continue
		}
		var vigil, other []layerSetting
		for _, f := range members[g] {
			for i, e := range envNames(f) {
				v := getenv(e)
				if v == "" {
					continue
				}
				s := layerSetting{flag: f.Name, origin: e, value: v}
				if i == 0 && strings.HasPrefix(e, "VIGIL_") {
					vigil = append(vigil, s)
				} else {
					other = append(other, s)
				}
			}
		}
		use := other
		if len(vigil) > 0 {
			use = vigil
		}
		if len(use) == 0 {
			continue
		}
		if err := setGroup(fs, use); err != nil {
			return err
		}
		set[g] = true
	}

	if err := applyConfigFile(fs, set); err != nil {
		return err
	}

	var finishers []func() error
	fs.VisitAll(func(f *flag.Flag) {
		if nv, ok := f.Value.(*nameValue); ok && nv.finish != nil {
			finishers = append(finishers, nv.finish)
		}
	})
	for _, fin := range finishers {
		if err := fin(); err != nil {
			return err
		}
	}
	return nil
}

// argValue is the last value args gave flag f (by any spelling: -f, --f, with = or without).
func argValue(args []string, f *flag.Flag) string {
	val := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, v, hasV := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != f.Name {
			continue
		}
		switch {
		case hasV:
			val = v
		case (&nameValue{Value: f.Value}).IsBoolFlag():
			val = "true"
		case i+1 < len(args):
			i++
			val = args[i]
		}
	}
	return val
}

// applyConfigFile sets every group not yet set from the YAML config file, if there is one.
func applyConfigFile(fs *flag.FlagSet, set map[string]bool) error {
	cf := fs.Lookup("config-file")
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	values, err := readConfigFile(path)
	if err != nil {
		return err
	}
	byKey := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		byKey[f.Name] = f
		if nv, ok := f.Value.(*nameValue); ok {
			for _, k := range nv.keys {
				byKey[k] = f
			}
		}
	})
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	perGroup := map[string][]layerSetting{}
	var order []string
	for _, k := range keys {
		f := byKey[k]
		if f == nil || groupOf(f) == "config-file" {
			return usagef("%s: unknown key %q (keys are the flag names of this command, without dashes)", path, k)
		}
		g := groupOf(f)
		if set[g] {
			continue
		}
		if perGroup[g] == nil {
			order = append(order, g)
		}
		perGroup[g] = append(perGroup[g], layerSetting{flag: f.Name, origin: path + ": " + k, value: values[k]})
	}
	for _, g := range order {
		if err := setGroup(fs, perGroup[g]); err != nil {
			return err
		}
		set[g] = true
	}
	return nil
}

func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("config file: %v", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, usagef("config file %s is empty", path)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, usagef("config file %s: %v", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch x := v.(type) {
		case map[string]any, []any:
			return nil, usagef("config file %s: %s must be a single value", path, k)
		case nil:
			out[k] = ""
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out, nil
}

// printUsage writes a command's flags with their env names; Web3Signer-only names (nameValue.w3s)
// follow in a section of their own.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "%s\n\nFlags (each also settable as VIGIL_<FLAG> or in --config-file):\n", synopsis)
	var w3s []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if nv, ok := f.Value.(*nameValue); ok && nv.w3s {
			w3s = append(w3s, f)
			return
		}
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n      %s [%s]\n", f.Name, def, f.Usage, envName(f.Name))
	})
	if len(w3s) == 0 {
		return
	}
	fmt.Fprintf(w, "\nWeb3Signer names (accepted so that a Web3Signer command line runs unchanged; `vigil [options] eth2 [options]` works too;\nWeb3Signer's WEB3SIGNER_<OPTION> and WEB3SIGNER_ETH2_<OPTION> environment names are read, VIGIL_* wins):\n")
	for _, f := range w3s {
		nv := f.Value.(*nameValue)
		dash, env := "--", ""
		if len(f.Name) == 1 {
			dash = "-"
		}
		if len(nv.env) > 0 {
			env = " [" + strings.Join(nv.env, ", ") + "]"
		}
		fmt.Fprintf(w, "  %s%s\n      %s%s\n", dash, f.Name, nv.usage, env)
	}
}

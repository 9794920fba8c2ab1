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

// parseLayered parses args into fs, then fills every flag not given on the command line from
// VIGIL_<FLAG> in the environment, then from the YAML config file (--config-file or
// VIGIL_CONFIG_FILE; keys are flag names without dashes). Precedence: command line > env > file >
// default. Unknown config-file keys, an empty config file and bad values are errors that name
// their origin.
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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || firstErr != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = usagef("%s=%q: %v", envName(f.Name), v, err)
			}
			set[f.Name] = true
		}
	})
	if firstErr != nil {
		return firstErr
	}

	cf := fs.Lookup("config-file")
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	path := cf.Value.String()
	values, err := readConfigFile(path)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == "config-file" {
			return usagef("%s: unknown key %q (keys are the flag names of this command, without dashes)", path, k)
		}
		if set[k] {
			continue
		}
		if err := fs.Set(k, values[k]); err != nil {
			return usagef("%s: %s: %v", path, k, err)
		}
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

// printUsage writes a command's flags with their env names.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "%s\n\nFlags (each also settable as VIGIL_<FLAG> or in --config-file):\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n      %s [%s]\n", f.Name, def, f.Usage, envName(f.Name))
	})
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/internal/testenv"
)

// The alerting rules parse (promtool check rules) and name only metrics the code registers.
func TestAlertRules(t *testing.T) {
	rules := filepath.Join("..", "..", "deploy", "prometheus", "vigil-alerts.yml")
	doc, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	// Every metric name registered by non-test Go code of the module.
	var src strings.Builder
	root := filepath.Join("..", "..")
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (d.Name() == "spec-tests" || d.Name() == "vaulttest" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	if len(code) < 100_000 {
		t.Fatalf("read only %d bytes of the module's code", len(code))
	}
	for _, m := range regexp.MustCompile(`vigil_[a-z_]+`).FindAllString(string(doc), -1) {
		name := m
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			name = strings.TrimSuffix(name, suf)
		}
		if !strings.Contains(code, `"`+name+`"`) && !strings.Contains(code, name+" ") {
			t.Errorf("%s uses %s, which no code registers", rules, m)
		}
	}
	promtool := testenv.LookPath(t, "promtool", "apt-get install prometheus")
	if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

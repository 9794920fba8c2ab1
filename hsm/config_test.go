package hsm

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{ModulePath: "/m.so", TokenLabel: "tok", PIN: "1234"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	d := ok.withDefaults()
	if d.KEKLabel != DefaultKEKLabel || d.Sessions != DefaultSessions || d.Application != DefaultApplication || d.Logger == nil {
		t.Fatalf("defaults not applied: %v", d)
	}
	for field, edit := range map[string]func(*Config){
		"ModulePath": func(c *Config) { c.ModulePath = "" },
		"TokenLabel": func(c *Config) { c.TokenLabel = "" },
		"PIN":        func(c *Config) { c.PIN = "" },
		"Sessions":   func(c *Config) { c.Sessions = -1 },
	} {
		c := ok
		edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("bad %s: Validate = %v; want an error naming it", field, err)
		}
	}
}

func TestConfigHidesPIN(t *testing.T) {
	c := Config{ModulePath: "/m.so", TokenLabel: "tok", PIN: "s3cret-pin"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String()} {
		if strings.Contains(s, "s3cret-pin") || !strings.Contains(s, "tok") {
			t.Errorf("rendering %q shows the PIN or lacks the token", s)
		}
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	noEnv := env(nil)

	if pin, err := ReadPIN(write("crlf", " 12 34\r\n\n"), noEnv); err != nil || pin != " 12 34" {
		t.Errorf("file with CRLF = %q, %v; want %q (only line ends trimmed)", pin, err, " 12 34")
	}
	if pin, err := ReadPIN("", env(map[string]string{PINEnv: "from-env"})); err != nil || pin != "from-env" {
		t.Errorf("env = %q, %v", pin, err)
	}
	if pin, err := ReadPIN(write("f", "from-file"), env(map[string]string{PINEnv: "from-env"})); err != nil || pin != "from-file" {
		t.Errorf("file over env = %q, %v", pin, err)
	}
	empty := write("empty", "\n")
	if _, err := ReadPIN(empty, noEnv); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file = %v; want an error naming it", err)
	}
	if _, err := ReadPIN("", noEnv); err == nil || !strings.Contains(err.Error(), PINEnv) {
		t.Errorf("nothing = %v; want an error naming %s", err, PINEnv)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := ReadPIN(missing, noEnv); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file = %v", err)
	}
	big := write("big", strings.Repeat("Q", maxPINFileSize+1))
	if _, err := ReadPIN(big, noEnv); err == nil || strings.Contains(err.Error(), "QQQ") {
		t.Errorf("oversized file = %v; want an error without the content", err)
	}
}

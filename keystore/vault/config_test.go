package vault

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestVaultConfigValidate(t *testing.T) {
	ok := Config{Address: "https://vault.example:8200", Token: "hvs.tok"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	d := ok.withDefaults()
	if d.Mount != "secret" || d.Prefix != "vigil/validators" || d.Field != "value" || d.AppRoleMount != "approle" || d.Timeout != 10*time.Second || d.Workers != 16 {
		t.Fatalf("defaults: %+v", d)
	}
	if d := (Config{Mount: "/kv/", Prefix: "/a/b/"}).withDefaults(); d.Mount != "kv" || d.Prefix != "a/b" {
		t.Fatalf("slashes not trimmed: %+v", d)
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Token: "t"}, "address is required"},
		{Config{Address: "vault:8200", Token: "t"}, "want https://"},
		{Config{Address: "ftp://vault", Token: "t"}, "want https://"},
		{Config{Address: "https://u:p@vault", Token: "t"}, "want https://"},
		{Config{Address: "https://vault/v1", Token: "t"}, "must not have a path"},
		{Config{Address: "https://vault", Token: "t", Mount: "a//b"}, "mount"},
		{Config{Address: "https://vault", Token: "t", Prefix: "a/../b"}, "prefix"},
		{Config{Address: "https://vault"}, "a token or AppRole"},
		{Config{Address: "https://vault", Token: "t", RoleID: "r", SecretID: "s"}, "mutually exclusive"},
		{Config{Address: "https://vault", RoleID: "r"}, "both a role ID and a secret ID"},
		{Config{Address: "https://vault", Token: "hvs.secret-token\n"}, "white space"},
		{Config{Address: "http://vault", Token: "t", CAFile: "ca.pem"}, "not https://"},
		{Config{Address: "https://vault", Token: "t", Timeout: -time.Second}, "timeout"},
		{Config{Address: "https://vault", Token: "t", Workers: -1}, "workers"},
	}
	for _, b := range bad {
		err := b.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want %q", b.cfg, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
	if _, err := Open(context.Background(), Config{Address: "https://vault"}); err == nil {
		t.Fatal("Open accepted an invalid config")
	}
}

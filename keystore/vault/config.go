package vault

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Config configures a Store. Exactly one authentication method is set: Token, or RoleID
// and SecretID.
type Config struct {
	// Address is the Vault API address, "https://vault.example:8200" (or http:// for tests).
	Address string
	// Mount is the path of the KV version 2 engine; default "secret".
	Mount string
	// Prefix is the folder under Mount holding one secret per key; default "vigil/validators".
	Prefix string
	// Field is the secret's field holding the hex secret key; default "value" (Web3Signer's
	// keyName default).
	Field string

	// Token is a Vault token (read by the caller from a file or the environment, never argv).
	Token string
	// RoleID and SecretID are AppRole credentials, used to log in at auth/<AppRoleMount>/login.
	RoleID, SecretID string
	// AppRoleMount is the path of the AppRole auth method; default "approle".
	AppRoleMount string
	// Namespace is the Vault Enterprise namespace; empty for none.
	Namespace string

	// CAFile is a PEM bundle of the CAs trusted for Vault's certificate; empty means the system
	// roots. Only with an https:// Address.
	CAFile string
	// TLSServerName overrides the name checked in Vault's certificate (and sent as SNI).
	TLSServerName string
	// Timeout bounds each request (with its retries); default 10s.
	Timeout time.Duration
	// Workers bounds the parallel secret reads of Load; default 16.
	Workers int

	// Logger receives renewal and re-login events; nil means none. Never given secrets.
	Logger *slog.Logger
}

// Config defaults.
const (
	DefaultMount        = "secret"
	DefaultPrefix       = "vigil/validators"
	DefaultField        = "value"
	DefaultAppRoleMount = "approle"
	DefaultTimeout      = 10 * time.Second
	DefaultWorkers      = 16
)

func (c Config) withDefaults() Config {
	c.Mount = strings.Trim(c.Mount, "/")
	c.Prefix = strings.Trim(c.Prefix, "/")
	c.AppRoleMount = strings.Trim(c.AppRoleMount, "/")
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Field == "" {
		c.Field = DefaultField
	}
	if c.AppRoleMount == "" {
		c.AppRoleMount = DefaultAppRoleMount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	return c
}

// Validate checks the configuration (after defaults) without contacting Vault; the error names
// the bad field and never quotes a credential.
func (c Config) Validate() error {
	c = c.withDefaults()
	u, err := url.Parse(c.Address)
	switch {
	case c.Address == "":
		return errors.New("vault: address is required")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("vault: address %q: want https://host[:port]", truncate(c.Address, 80))
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("vault: address %q: must not have a path", truncate(c.Address, 80))
	}
	for _, p := range []struct{ name, v string }{{"mount", c.Mount}, {"prefix", c.Prefix}, {"approle mount", c.AppRoleMount}} {
		if err := checkVaultPath(p.v); err != nil {
			return fmt.Errorf("vault: %s %q: %w", p.name, truncate(p.v, 80), err)
		}
	}
	if strings.ContainsAny(c.Field, "\x00\n") {
		return errors.New("vault: field: must be a plain name")
	}
	switch {
	case c.Token != "" && (c.RoleID != "" || c.SecretID != ""):
		return errors.New("vault: token and AppRole (role ID, secret ID) are mutually exclusive")
	case c.Token == "" && c.RoleID == "" && c.SecretID == "":
		return errors.New("vault: a token or AppRole credentials (role ID and secret ID) are required")
	case c.Token == "" && (c.RoleID == "" || c.SecretID == ""):
		return errors.New("vault: AppRole needs both a role ID and a secret ID")
	case strings.ContainsAny(c.Token, " \t\r\n"):
		return errors.New("vault: token contains white space (a trailing newline of the token file?)")
	}
	if c.CAFile != "" && u.Scheme != "https" {
		return errors.New("vault: a CA file is given but the address is not https://")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("vault: timeout must be > 0, got %s", c.Timeout)
	}
	if c.Workers < 0 {
		return fmt.Errorf("vault: workers must be ≥ 0, got %d", c.Workers)
	}
	return nil
}

// checkVaultPath accepts a relative path of non-empty segments without "." or "..".
func checkVaultPath(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "?#%\\ \t\r\n\x00") {
			return errors.New("must be a path of plain segments separated by /")
		}
	}
	return nil
}

package vaulttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keystoretest"
	"github.com/vigil-signer/vigil/keystore/vault"
	"github.com/vigil-signer/vigil/keystore/vaulttest/vaultcore"
)

// ---- helpers ----

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// open opens a store and closes it at the end of the test.
func open(t testing.TB, cfg vault.Config) *vault.Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := vault.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("vault.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rootConfig is a store config for srv with its root token.
func rootConfig(srv *vaultcore.Server, prefix string) vault.Config {
	return vault.Config{Address: srv.Addr, Token: srv.RootToken, CAFile: srv.CAFile, Prefix: prefix}
}

func rootClient(t testing.TB, srv *vaultcore.Server) *api.Client {
	t.Helper()
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secretHex(sk *keystore.SecretKey) string {
	b := sk.Bytes()
	defer clear(b)
	return hex.EncodeToString(b)
}

// mustUnavailable checks that err wraps ErrUnavailable, names the address and contains every
// part, and quotes none of the secrets.
func mustUnavailable(t testing.TB, err error, addr string, parts []string, secrets ...string) {
	t.Helper()
	if !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("error %v does not wrap ErrUnavailable", err)
	}
	msg := err.Error()
	if addr != "" && !strings.Contains(msg, addr) {
		t.Errorf("error %q does not name the address %s", msg, addr)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not say %q", msg, p)
		}
	}
	noSecrets(t, msg, secrets...)
}

func noSecrets(t testing.TB, msg string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			t.Fatalf("error %q contains a secret (%.8s…)", msg, s)
		}
	}
}

func loadKeys(t testing.TB, s keystore.Source) keystore.LoadResult {
	t.Helper()
	res, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

func pubsOf(res keystore.LoadResult) []keystore.PublicKey {
	var pubs []keystore.PublicKey
	for _, k := range res.Keys {
		pubs = append(pubs, k.PublicKey())
	}
	return pubs
}

func sortedPubs(sks ...*keystore.SecretKey) []keystore.PublicKey {
	var pubs []keystore.PublicKey
	for _, sk := range sks {
		pubs = append(pubs, sk.PublicKey())
	}
	slices.SortFunc(pubs, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return pubs
}

// putRaw writes a KV v2 secret with the root client, as an operator would with `vault kv put`.
func putRaw(t testing.TB, c *api.Client, mount, path string, data map[string]any) {
	t.Helper()
	if _, err := c.KVv2(mount).Put(context.Background(), path, data); err != nil {
		t.Fatalf("put %s/%s: %v", mount, path, err)
	}
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, name)
}

// ---- 1. the conformance suite ----

func TestStoreConformance(t *testing.T) {
	for _, mode := range []string{"token-http", "approle-https"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			srv := vaultcore.StartT(t, vaultcore.Options{TLS: mode == "approle-https"})
			var roleID, secretID string
			if mode == "approle-https" {
				if err := srv.PutPolicy(ctx, "vigil", vaultcore.StorePolicy("secret", "conformance")); err != nil {
					t.Fatal(err)
				}
				var err error
				roleID, secretID, err = srv.CreateAppRole(ctx, "vigil", map[string]any{"token_policies": "vigil", "token_ttl": "1h"})
				if err != nil {
					t.Fatal(err)
				}
			}
			keystoretest.RunStore(t, keystoretest.Backend{Open: func(t *testing.T) keystore.Store {
				cfg := rootConfig(srv, "conformance/"+sanitize(t.Name()))
				if roleID != "" {
					cfg.Token, cfg.RoleID, cfg.SecretID = "", roleID, secretID
				}
				return open(t, cfg)
			}})
		})
	}
}

// ---- 2. authentication, TLS, renewal ----

func TestAppRole(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	if err := srv.PutPolicy(ctx, "vigil", vaultcore.StorePolicy("secret", "approle")); err != nil {
		t.Fatal(err)
	}
	roleID, secretID, err := srv.CreateAppRole(ctx, "vigil", map[string]any{"token_policies": "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := vault.Config{Address: srv.Addr, RoleID: roleID, SecretID: secretID, Prefix: "approle"}
	s := open(t, cfg)
	sk := keystoretest.Key(t, 1)
	if err := s.Put(ctx, sk); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The policy is enforced: the same credentials cannot list outside the prefix.
	outside := cfg
	outside.Prefix = "elsewhere"
	_, err = open(t, outside).List(ctx)
	mustUnavailable(t, err, srv.Addr, []string{"LIST secret/metadata/elsewhere", "permission denied: the token's policies do not allow this request"}, secretID)

	t.Run("WrongSecretID", func(t *testing.T) {
		bad := cfg
		bad.SecretID = "0d4e6f0a-0000-0000-0000-000000000000"
		_, err := vault.Open(ctx, bad)
		mustUnavailable(t, err, srv.Addr, []string{"AppRole login at auth/approle/login", "rejected"}, bad.SecretID, roleID)
	})
	t.Run("WrongMount", func(t *testing.T) {
		bad := cfg
		bad.AppRoleMount = "nope"
		_, err := vault.Open(ctx, bad)
		mustUnavailable(t, err, srv.Addr, []string{"auth/nope/login"}, secretID)
	})
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{TLS: true})
	other := vaultcore.StartT(t, vaultcore.Options{TLS: true}) // a different CA
	plain := vaultcore.StartT(t, vaultcore.Options{})

	s := open(t, rootConfig(srv, "tls"))
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The address is an IP; the certificate also names srv.ServerName.
	named := rootConfig(srv, "tls")
	named.TLSServerName = srv.ServerName
	if err := open(t, named).Ping(ctx); err != nil {
		t.Fatalf("with TLSServerName: %v", err)
	}

	fail := []struct {
		name string
		cfg  func(c *vault.Config)
		want []string
	}{
		{"NoCA", func(c *vault.Config) { c.CAFile = "" }, []string{"TLS: cannot verify Vault's certificate", "unknown authority"}},
		{"WrongCA", func(c *vault.Config) { c.CAFile = other.CAFile }, []string{"TLS: cannot verify Vault's certificate", "unknown authority"}},
		{"WrongServerName", func(c *vault.Config) { c.TLSServerName = "other.test" }, []string{"TLS: cannot verify Vault's certificate", "other.test"}},
		{"HTTPSToPlainHTTP", func(c *vault.Config) {
			c.Address = strings.Replace(plain.Addr, "http://", "https://", 1)
			c.CAFile = srv.CAFile
		}, []string{"server gave HTTP response to HTTPS client"}},
		{"HTTPToTLS", func(c *vault.Config) {
			c.Address = strings.Replace(srv.Addr, "https://", "http://", 1)
			c.CAFile = ""
		}, []string{"400 Bad Request: the response is not from the Vault API"}},
	}
	for _, f := range fail {
		t.Run(f.name, func(t *testing.T) {
			cfg := rootConfig(srv, "tls")
			f.cfg(&cfg)
			_, err := vault.Open(ctx, cfg)
			t.Log(err)
			mustUnavailable(t, err, cfg.Address, f.want, srv.RootToken)
		})
	}
	t.Run("MissingCAFile", func(t *testing.T) {
		cfg := rootConfig(srv, "tls")
		cfg.CAFile = filepath.Join(t.TempDir(), "absent.pem")
		if _, err := vault.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("missing CA file: %v", err)
		}
	})
}

// TestTokenRenewal: a renewable token with a 3 s TTL is kept alive by the store; a non-renewable
// one expires (the control).
func TestTokenRenewal(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	if err := srv.PutPolicy(ctx, "vigil", vaultcore.StorePolicy("secret", "renew")); err != nil {
		t.Fatal(err)
	}
	sk := keystoretest.Key(t, 1)
	if err := open(t, rootConfig(srv, "renew")).Put(ctx, sk); err != nil {
		t.Fatal(err)
	}
	renewable, err := srv.CreateToken(ctx, []string{"vigil"}, 3*time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := srv.CreateToken(ctx, []string{"vigil"}, 3*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	renewed := open(t, vault.Config{Address: srv.Addr, Token: renewable, Prefix: "renew"})
	expiring := open(t, vault.Config{Address: srv.Addr, Token: fixed, Prefix: "renew"})

	time.Sleep(5 * time.Second) // > the TTL

	res := loadKeys(t, renewed)
	if len(res.Keys) != 1 || res.Keys[0].PublicKey() != sk.PublicKey() {
		t.Fatalf("renewed token: %d keys, errors %v", len(res.Keys), res.Errors)
	}
	if err := renewed.RenewalError(); err != nil {
		t.Fatalf("RenewalError: %v", err)
	}
	_, err = expiring.Load(ctx)
	t.Log(err)
	mustUnavailable(t, err, srv.Addr, []string{"token: invalid, expired or revoked"}, fixed)
	err = expiring.Ping(ctx)
	mustUnavailable(t, err, srv.Addr, []string{"invalid, expired or revoked"}, fixed)
}

// TestAppRoleRelogin: an AppRole token that reaches its max TTL, or is revoked, is replaced by a
// new login without reopening the store.
func TestAppRoleRelogin(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	if err := srv.PutPolicy(ctx, "vigil", vaultcore.StorePolicy("secret", "relogin")); err != nil {
		t.Fatal(err)
	}
	roleID, secretID, err := srv.CreateAppRole(ctx, "short", map[string]any{"token_policies": "vigil", "token_ttl": "2s", "token_max_ttl": "3s"})
	if err != nil {
		t.Fatal(err)
	}
	sk := keystoretest.Key(t, 2)
	if err := open(t, rootConfig(srv, "relogin")).Put(ctx, sk); err != nil {
		t.Fatal(err)
	}
	s := open(t, vault.Config{Address: srv.Addr, RoleID: roleID, SecretID: secretID, Prefix: "relogin"})

	time.Sleep(5 * time.Second) // > token_max_ttl
	if res := loadKeys(t, s); len(res.Keys) != 1 {
		t.Fatalf("after max TTL: %d keys, %v", len(res.Keys), res.Errors)
	}

	// Revoke every token of the role behind the store's back: the next call logs in again.
	c := rootClient(t, srv)
	acc, err := c.Logical().ListWithContext(ctx, "auth/token/accessors")
	if err != nil || acc == nil {
		t.Fatalf("list accessors: %v", err)
	}
	revoked := 0
	for _, a := range acc.Data["keys"].([]any) {
		info, err := c.Auth().Token().LookupAccessorWithContext(ctx, a.(string))
		if err != nil {
			continue
		}
		if pol, _ := info.TokenPolicies(); slices.Contains(pol, "vigil") {
			if err := c.Auth().Token().RevokeAccessorWithContext(ctx, a.(string)); err != nil {
				t.Fatal(err)
			}
			revoked++
		}
	}
	if revoked == 0 {
		t.Fatal("no AppRole token to revoke")
	}
	if res := loadKeys(t, s); len(res.Keys) != 1 {
		t.Fatalf("after revocation: %d keys, %v", len(res.Keys), res.Errors)
	}
}

// ---- 3. bad input and failures ----

func TestSealed(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	s := open(t, rootConfig(srv, "sealed"))
	sk := keystoretest.Key(t, 3)
	if err := s.Put(ctx, sk); err != nil {
		t.Fatal(err)
	}
	if err := srv.Seal(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(ctx)
	t.Log(err)
	mustUnavailable(t, err, srv.Addr, []string{"LIST secret/metadata/sealed", "sealed"}, srv.RootToken)
	err = s.Ping(ctx)
	mustUnavailable(t, err, srv.Addr, []string{"sealed"}, srv.RootToken)
	_, err = vault.Open(ctx, rootConfig(srv, "sealed"))
	mustUnavailable(t, err, srv.Addr, []string{"sealed"}, srv.RootToken)

	if err := srv.Unseal(); err != nil {
		t.Fatal(err)
	}
	res := loadKeys(t, s)
	if len(res.Keys) != 1 || res.Keys[0].PublicKey() != sk.PublicKey() {
		t.Fatalf("after unseal: %d keys, errors %v", len(res.Keys), res.Errors)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	_, err = vault.Open(context.Background(), vault.Config{Address: addr, Token: "hvs.not-a-real-token"})
	t.Log(err)
	mustUnavailable(t, err, addr, []string{"unreachable", "connection refused"}, "hvs.not-a-real-token")

	// A store whose Vault goes away.
	srv := vaultcore.StartT(t, vaultcore.Options{})
	s := open(t, rootConfig(srv, "gone"))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(context.Background())
	t.Log(err)
	mustUnavailable(t, err, srv.Addr, []string{"unreachable"}, srv.RootToken)
}

func TestTokenInvalid(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	_, err := vault.Open(ctx, vault.Config{Address: srv.Addr, Token: "hvs.CAESIbogusbogusbogus"})
	t.Log(err)
	mustUnavailable(t, err, srv.Addr, []string{"token: invalid, expired or revoked"}, "hvs.CAESIbogusbogusbogus")

	if err := srv.PutPolicy(ctx, "vigil", vaultcore.StorePolicy("secret", "revoked")); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.CreateToken(ctx, []string{"vigil"}, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, vault.Config{Address: srv.Addr, Token: tok, Prefix: "revoked"})
	if err := s.Put(ctx, keystoretest.Key(t, 4)); err != nil {
		t.Fatal(err)
	}
	if err := rootClient(t, srv).Auth().Token().RevokeTreeWithContext(ctx, tok); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(ctx)
	t.Log(err)
	mustUnavailable(t, err, srv.Addr, []string{"token: invalid, expired or revoked"}, tok)
	err = s.Put(ctx, keystoretest.Key(t, 5))
	mustUnavailable(t, err, srv.Addr, []string{"token: invalid, expired or revoked"}, tok)
	_, err = s.List(ctx)
	mustUnavailable(t, err, srv.Addr, []string{"token: invalid, expired or revoked"}, tok)
}

// TestBadSecrets: secrets that are not usable keys are LoadErrors naming the secret (never its
// value); the good keys still load.
func TestBadSecrets(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	c := rootClient(t, srv)
	key := func(i int) *keystore.SecretKey { return keystoretest.Key(t, 200+i) }
	name := func(i int) string { return "bad/" + key(i).PublicKey().String() }
	h := func(i int) string { return secretHex(key(i)) }

	putRaw(t, c, "secret", name(0), map[string]any{"value": "0x" + h(0)})
	putRaw(t, c, "secret", name(1), map[string]any{"value": strings.ToUpper(h(1)) + "\n", "note": "other fields are ignored"})
	putRaw(t, c, "secret", name(2), map[string]any{"private_key": "0x" + h(2)})
	putRaw(t, c, "secret", name(3), map[string]any{"value": "0x" + h(3)[:60] + "zzzz"})
	putRaw(t, c, "secret", name(4), map[string]any{"value": "0x" + h(4)[:62]})
	putRaw(t, c, "secret", name(5), map[string]any{"value": "0x" + strings.Repeat("ff", 32)})
	putRaw(t, c, "secret", name(6), map[string]any{"value": "0x" + h(7)}) // key 7's secret under key 6's name
	putRaw(t, c, "secret", name(8), map[string]any{"value": 12345})
	putRaw(t, c, "secret", name(9), map[string]any{"value": "0x" + h(9)})
	// Soft delete of the current version (`vault kv delete`): the key is simply absent.
	if err := c.KVv2("secret").Delete(ctx, name(9)); err != nil {
		t.Fatal(err)
	}
	putRaw(t, c, "secret", "bad/notakey", map[string]any{"value": "0x" + h(10)})
	putRaw(t, c, "secret", "bad/0x"+strings.ToUpper(key(11).PublicKey().String()[2:]), map[string]any{"value": "0x" + h(11)})
	putRaw(t, c, "secret", "bad/sub/"+key(12).PublicKey().String(), map[string]any{"value": "0x" + h(12)})
	putRaw(t, c, "secret", "bad/"+key(13).PublicKey().String()+"00", map[string]any{"value": "0x" + h(13)})

	s := open(t, rootConfig(srv, "bad"))
	res := loadKeys(t, s)
	if got, want := pubsOf(res), sortedPubs(key(0), key(1)); !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v; errors %v", got, want, res.Errors)
	}
	item := func(n string) string { return "vault:secret/" + n }
	expect := map[string]struct {
		pub  keystore.PublicKey
		is   error
		text string
	}{
		item(name(2)):         {key(2).PublicKey(), keystore.ErrMalformed, "value: missing from the secret"},
		item(name(3)):         {key(3).PublicKey(), keystore.ErrMalformed, "value: not hex"},
		item(name(4)):         {key(4).PublicKey(), keystore.ErrMalformed, "value: has 62 hex digits, want 64"},
		item(name(5)):         {key(5).PublicKey(), keystore.ErrInvalidKey, "not below the curve order"},
		item(name(6)):         {key(6).PublicKey(), keystore.ErrPubkeyMismatch, "public key is " + key(7).PublicKey().String()},
		item(name(8)):         {key(8).PublicKey(), keystore.ErrMalformed, "value: not a string"},
		item("bad/notakey"):   {keystore.PublicKey{}, keystore.ErrMalformed, "not a 0x-prefixed BLS public key"},
		item(name(13) + "00"): {keystore.PublicKey{}, keystore.ErrMalformed, "not a 0x-prefixed BLS public key"},
		item("bad/0x" + strings.ToUpper(key(11).PublicKey().String()[2:])): {keystore.PublicKey{}, keystore.ErrMalformed, "not in lowercase hex"},
	}
	if len(res.Errors) != len(expect) {
		t.Errorf("%d errors, want %d", len(res.Errors), len(expect))
	}
	var secrets []string
	for i := range 14 {
		secrets = append(secrets, h(i)[:32], strings.ToUpper(h(i)[:32]))
	}
	for _, e := range res.Errors {
		t.Log(e)
		x, ok := expect[e.Item]
		if !ok {
			t.Errorf("unexpected error %v", e)
			continue
		}
		if e.Pubkey != x.pub || (x.is != nil && !errors.Is(e, x.is)) || !strings.Contains(e.Error(), x.text) {
			t.Errorf("%s: %v (pubkey %s), want %q (pubkey %s)", e.Item, e.Err, e.Pubkey, x.text, x.pub)
		}
		noSecrets(t, e.Error(), secrets...)
	}
	// List names what is stored under a key's name, without reading it; folders and other names
	// are left out.
	pubs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := sortedPubs(key(0), key(1), key(2), key(3), key(4), key(5), key(6), key(8), key(9)); !slices.Equal(pubs, want) {
		t.Fatalf("List = %v, want %v", pubs, want)
	}
	// Put of a name whose current version is soft-deleted: the secret still exists.
	if err := s.Put(ctx, key(9)); !errors.Is(err, keystore.ErrDuplicate) {
		t.Fatalf("Put over a soft-deleted secret: %v", err)
	}

	t.Run("PermissionDeniedOnOneSecret", func(t *testing.T) {
		policy := vaultcore.StorePolicy("secret", "bad") + fmt.Sprintf("path \"secret/data/%s\" { capabilities = [\"deny\"] }\n", name(0))
		if err := srv.PutPolicy(ctx, "partial", policy); err != nil {
			t.Fatal(err)
		}
		tok, err := srv.CreateToken(ctx, []string{"partial"}, time.Hour, true)
		if err != nil {
			t.Fatal(err)
		}
		res := loadKeys(t, open(t, vault.Config{Address: srv.Addr, Token: tok, Prefix: "bad"}))
		if got := pubsOf(res); !slices.Equal(got, []keystore.PublicKey{key(1).PublicKey()}) {
			t.Fatalf("keys %v", got)
		}
		var denied *keystore.LoadError
		for i, e := range res.Errors {
			if e.Item == item(name(0)) {
				denied = &res.Errors[i]
			}
		}
		if denied == nil || denied.Pubkey != key(0).PublicKey() || !strings.Contains(denied.Error(), "permission denied") {
			t.Fatalf("denied secret: %+v", denied)
		}
		noSecrets(t, denied.Error(), tok)
	})
}

// TestLoadCanceled: a Load whose context ends returns the context's error and no keys.
func TestLoadCanceled(t *testing.T) {
	srv := vaultcore.StartT(t, vaultcore.Options{})
	s := open(t, rootConfig(srv, "cancel"))
	for i := range 50 {
		if err := s.Put(context.Background(), keystoretest.Key(t, 400+i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := s.Load(ctx)
	if !errors.Is(err, context.Canceled) || len(res.Keys) != 0 {
		t.Fatalf("Load with a cancelled context: %d keys, %v", len(res.Keys), err)
	}
	if errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("a cancelled Load is not an unavailable Vault: %v", err)
	}
}

func TestMounts(t *testing.T) {
	ctx := context.Background()
	srv := vaultcore.StartT(t, vaultcore.Options{})
	c := rootClient(t, srv)
	if err := c.Sys().MountWithContext(ctx, "kv1", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ mount, want string }{
		{"nope", "mount nope/: no such mount"},
		{"kv1", "mount kv1/: is KV version 1, not version 2"},
		{"secret/sub", "mount secret/sub/: no mount at this path (it lies inside mount secret/)"},
		{"cubbyhole", `is a "cubbyhole" engine`},
	} {
		cfg := rootConfig(srv, "m")
		cfg.Mount = x.mount
		_, err := vault.Open(ctx, cfg)
		t.Log(err)
		mustUnavailable(t, err, srv.Addr, []string{x.want}, srv.RootToken)
	}
	// A token that may use nothing under the mount cannot tell "missing" from "forbidden".
	if err := srv.PutPolicy(ctx, "other", vaultcore.StorePolicy("secret", "other")); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.CreateToken(ctx, []string{"other"}, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = vault.Open(ctx, vault.Config{Address: srv.Addr, Token: tok, Mount: "nope"})
	mustUnavailable(t, err, srv.Addr, []string{"mount nope/: no such mount, or the token's policies grant nothing under it"}, tok)

	// The mount disappears under an open store.
	if err := vaultcore.MountKVv2(ctx, c, "gone"); err != nil {
		t.Fatal(err)
	}
	cfg := rootConfig(srv, "m")
	cfg.Mount = "gone"
	s := open(t, cfg)
	if err := s.Put(ctx, keystoretest.Key(t, 6)); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().UnmountWithContext(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(ctx)
	t.Log(err)
	mustUnavailable(t, err, srv.Addr, []string{"mount gone/: no such mount"}, srv.RootToken)
}

// ---- 4. Web3Signer hashicorp key-config documents ----

func TestHashicorpKeyConfig(t *testing.T) {
	ctx := context.Background()
	plain := vaultcore.StartT(t, vaultcore.Options{})
	secure := vaultcore.StartT(t, vaultcore.Options{TLS: true})
	pc, sc := rootClient(t, plain), rootClient(t, secure)
	key := func(i int) *keystore.SecretKey { return keystoretest.Key(t, 300+i) }
	h := func(i int) string { return secretHex(key(i)) }

	putRaw(t, pc, "secret", "w3s/k0", map[string]any{"value": "0x" + h(0)})
	if err := pc.Sys().MountWithContext(ctx, "kv1", &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := pc.KVv1("kv1").Put(ctx, "k1", map[string]any{"privkey": h(1)}); err != nil {
		t.Fatal(err)
	}
	putRaw(t, pc, "secret", "w3s/nofield", map[string]any{"other": "0x" + h(5)})
	putRaw(t, sc, "secret", "w3s/k2", map[string]any{"value": "0x" + h(2)})
	putRaw(t, sc, "secret", "w3s/k3", map[string]any{"value": "0x" + h(3)})

	hostPort := func(addr string) (string, string) {
		u, _ := url.Parse(addr)
		return u.Hostname(), u.Port()
	}
	ph, pp := hostPort(plain.Addr)
	sh, sp := hostPort(secure.Addr)

	// The fingerprint of the TLS server's certificate, as `openssl x509 -fingerprint -sha256` shows it.
	conn, err := tls.Dial("tcp", net.JoinHostPort(sh, sp), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	var fp []string
	for _, b := range sum {
		fp = append(fp, fmt.Sprintf("%02X", b))
	}

	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("known_servers", fmt.Sprintf("# host:port fingerprint\n%s:%s %s\n", sh, sp, strings.Join(fp, ":")))
	write("wrong_servers", fmt.Sprintf("%s:%s %s\n", sh, sp, strings.Repeat("AB:", 31)+"AB"))
	write("ca.pem", string(must(os.ReadFile(secure.CAFile))))

	const wrongToken = "hvs.CAESIwrongwrongwrong"
	doc := func(host, port, path, token, extra string) string {
		return fmt.Sprintf("type: hashicorp\nkeyType: BLS\nserverHost: %s\nserverPort: %s\nkeyPath: %s\ntoken: %s\ntimeout: 5000\n%s", host, port, path, token, extra)
	}
	write("a.yaml", doc(ph, pp, "/v1/secret/data/w3s/k0", plain.RootToken, ""))
	write("b.yaml", doc(ph, pp, "/v1/kv1/k1", plain.RootToken, "keyName: privkey\n"))
	write("c.yaml", doc(sh, sp, "/v1/secret/data/w3s/k2", secure.RootToken, "tlsEnabled: true\ntlsCaFile: ca.pem\n"))
	write("d.yaml", doc(sh, sp, "/v1/secret/data/w3s/k3", secure.RootToken, "tlsEnabled: true\ntlsKnownServersPath: known_servers\nhttpProtocolVersion: HTTP_1_1\n")+
		"---\n"+doc(sh, sp, "/v1/secret/data/w3s/k3", secure.RootToken, "tlsEnabled: true\ntlsKnownServersPath: wrong_servers\n"))
	write("e.yaml", doc(ph, pp, "/v1/secret/data/w3s/k0", wrongToken, ""))
	write("f.yaml", doc(ph, pp, "/v1/secret/data/w3s/absent", plain.RootToken, ""))
	write("g.yaml", doc(ph, pp, "/v1/secret/data/w3s/nofield", plain.RootToken, ""))
	write("h.yaml", doc(sh, sp, "/v1/secret/data/w3s/k2", secure.RootToken, "tlsEnabled: true\n"))
	write("i.yaml", doc(ph, pp, "/v1/secret/data/w3s/k0", "", "authMethod: KUBERNETES\nkubernetesRole: vigil\n"))

	src, err := keystore.NewConfigSource(keystore.KeyConfig{
		Path:    dir,
		Loaders: map[string]keystore.KeyConfigLoader{keystore.KeyConfigHashicorp: vault.NewKeyConfigLoader()},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := loadKeys(t, src)
	if got, want := pubsOf(res), []keystore.PublicKey{key(0).PublicKey(), key(1).PublicKey(), key(2).PublicKey(), key(3).PublicKey()}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v; errors %v", got, want, res.Errors)
	}
	expect := []struct {
		file string
		is   error
		text string
	}{
		{"d.yaml", nil, "document 2: vault at " + secure.Addr + ": GET /v1/secret/data/w3s/k3: TLS: the certificate of " + net.JoinHostPort(sh, sp) + " (sha256 "},
		{"e.yaml", keystore.ErrUnavailable, "vault at " + plain.Addr + ": GET /v1/secret/data/w3s/k0: permission denied"},
		{"f.yaml", nil, "GET /v1/secret/data/w3s/absent: no secret at keyPath (404)"},
		{"g.yaml", keystore.ErrMalformed, "GET /v1/secret/data/w3s/nofield: malformed key file: value: missing from the secret"},
		{"h.yaml", keystore.ErrUnavailable, "TLS: cannot verify Vault's certificate"},
		{"i.yaml", keystore.ErrUnsupportedKeyConfig, "KUBERNETES is not supported"},
	}
	if len(res.Errors) != len(expect) {
		t.Errorf("%d errors, want %d", len(res.Errors), len(expect))
	}
	for i, e := range res.Errors {
		t.Log(e)
		noSecrets(t, e.Error(), plain.RootToken, secure.RootToken, wrongToken, h(0)[:32], h(1)[:32], h(2)[:32], h(3)[:32], h(5)[:32])
		if i >= len(expect) {
			continue
		}
		x := expect[i]
		if e.Item != filepath.Join(dir, x.file) || (x.is != nil && !errors.Is(e, x.is)) || !strings.Contains(e.Error(), x.text) {
			t.Errorf("error %d: %v, want %s: %q", i, e, x.file, x.text)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// ---- 5. bulk ----

// TestBulk10k stores 10,000 keys and loads them, logging the times (no assertion on them).
func TestBulk10k(t *testing.T) {
	if testing.Short() {
		t.Skip("bulk test skipped in -short mode")
	}
	const n = 10_000
	ctx := context.Background()
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			srv := vaultcore.StartT(t, vaultcore.Options{TLS: tlsOn})
			s := open(t, rootConfig(srv, "bulk"))

			keys := make([]*keystore.SecretKey, n)
			for i := range keys {
				keys[i] = keystoretest.Key(t, 1_000_000+i)
			}
			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, n)
			next := make(chan int)
			for range 16 {
				wg.Go(func() {
					for i := range next {
						errs[i] = s.Put(ctx, keys[i])
					}
				})
			}
			for i := range n {
				next <- i
			}
			close(next)
			wg.Wait()
			putTime := time.Since(start)
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}

			start = time.Now()
			pubs, err := s.List(ctx)
			listTime := time.Since(start)
			if err != nil || len(pubs) != n {
				t.Fatalf("List: %d, %v", len(pubs), err)
			}
			for i := range 2 {
				start = time.Now()
				res := loadKeys(t, s)
				loadTime := time.Since(start)
				if len(res.Keys) != n || len(res.Errors) != 0 {
					t.Fatalf("Load: %d keys, %d errors (%v)", len(res.Keys), len(res.Errors), errors.Join(func() []error {
						var es []error
						for _, e := range res.Errors[:min(3, len(res.Errors))] {
							es = append(es, e)
						}
						return es
					}()...))
				}
				t.Logf("Load %d of %d keys (16 workers): %v (%.0f keys/s)", i+1, n, loadTime.Round(time.Millisecond), n/loadTime.Seconds())
			}
			t.Logf("Put %d keys (16 goroutines): %v (%.0f keys/s); List: %v", n, putTime.Round(time.Millisecond), n/putTime.Seconds(), listTime.Round(time.Millisecond))
		})
	}
}

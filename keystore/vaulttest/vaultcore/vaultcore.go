// Package vaultcore runs a real HashiCorp Vault server (vault v1.21.4's core, in memory) inside
// the current process, for tests and for the vaultdev command. It is the Vault that Vigil's
// Vault key source is tested against: no mocks, the real HTTP API.
//
// What Start gives you:
//   - an initialized, unsealed core on in-memory storage (everything is lost on Close);
//   - an HTTP listener on 127.0.0.1 (a random port unless Options.Addr says otherwise), plain
//     HTTP or, with Options.TLS, HTTPS with a certificate from a freshly generated CA whose PEM
//     is written to Server.CAFile;
//   - a KV version 2 engine mounted at Options.KVMount ("secret", as in `vault server -dev`) and
//     the AppRole auth method enabled at Options.AppRoleMount ("approle");
//   - the root token (Server.RootToken) and the unseal key, so that tests can Seal and Unseal.
//
// Typical test use:
//
//	srv := vaultcore.StartT(t, vaultcore.Options{TLS: true})
//	// srv.Addr, srv.RootToken, srv.CAFile; srv.Seal(), srv.Unseal(); closed by t.Cleanup
//
// Concurrency: a Server is safe for concurrent use; Seal, Unseal and Close may be called from any
// goroutine. The core logs nothing unless Options.Logger is set.
package vaultcore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/helper/namespace"
	"github.com/hashicorp/vault/helper/testhelpers/corehelpers"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/physical/inmem"
	"github.com/hashicorp/vault/vault"
)

// Options configures Start. The zero value is a plain-HTTP server on a random port.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0" (a random free port).
	Addr string
	// TLS serves HTTPS with a server certificate (SANs 127.0.0.1, ::1, localhost and
	// ServerName) signed by a CA generated for this server; the CA's PEM goes to Server.CAFile.
	TLS bool
	// ServerName is an extra DNS name in the TLS certificate; default "vault.test".
	ServerName string
	// Dir receives the CA file; default a new temporary directory removed by Close.
	Dir string
	// KVMount is the path of the KV version 2 engine mounted at start; default "secret".
	KVMount string
	// AppRoleMount is the path of the AppRole auth method enabled at start; default "approle".
	AppRoleMount string
	// Logger receives the core's logs; default none.
	Logger hclog.Logger
}

// Server is a running in-process Vault.
type Server struct {
	// Addr is the API address for VAULT_ADDR: "http://127.0.0.1:<port>" or "https://…".
	Addr string
	// RootToken is a root token (VAULT_TOKEN).
	RootToken string
	// CAFile is the PEM file of the CA that signed the server certificate; "" without TLS.
	CAFile string
	// ServerName is a DNS name in the server certificate other than localhost; "" without TLS.
	ServerName string
	// KVMount and AppRoleMount are where the KV v2 engine and AppRole are mounted.
	KVMount, AppRoleMount string
	// Core is the Vault core itself, for what the HTTP API cannot do.
	Core *vault.Core

	unsealKey []byte
	srv       *http.Server
	tempDir   string
	closeOnce sync.Once
	closeErr  error
}

// Start starts a server. Close it when done.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	opts = opts.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	phys, err := inmem.NewInmem(nil, logger)
	if err != nil {
		return nil, fmt.Errorf("vaultcore: storage: %w", err)
	}
	core, err := vault.NewCore(&vault.CoreConfig{
		Physical:           phys,
		Logger:             logger,
		DisableMlock:       true,
		LogicalBackends:    map[string]logical.Factory{"kv": kv.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory},
		BuiltinRegistry:    corehelpers.NewMockBuiltinRegistry(),
	})
	if err != nil {
		return nil, fmt.Errorf("vaultcore: new core: %w", err)
	}
	s := &Server{Core: core, KVMount: opts.KVMount, AppRoleMount: opts.AppRoleMount}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	init, err := core.Initialize(namespace.RootContext(ctx), &vault.InitParams{
		BarrierConfig:  &vault.SealConfig{Type: "shamir", SecretShares: 1, SecretThreshold: 1, StoredShares: 1},
		RecoveryConfig: &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
	})
	if err != nil {
		return nil, fmt.Errorf("vaultcore: initialize: %w", err)
	}
	s.RootToken = init.RootToken
	s.unsealKey = init.SecretShares[0]
	if err := s.Unseal(); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("vaultcore: listen: %w", err)
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	handler := vaulthttp.Handler.Handler(&vault.HandlerProperties{
		Core: core,
		// The handler dereferences the listener config; without it, it panics.
		ListenerConfig: &configutil.Listener{Address: ln.Addr().String()},
	})
	s.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger.StandardLogger(nil)}
	scheme := "http"
	if opts.TLS {
		dir := opts.Dir
		if dir == "" {
			if s.tempDir, err = os.MkdirTemp("", "vaultcore-"); err != nil {
				ln.Close()
				return nil, fmt.Errorf("vaultcore: %w", err)
			}
			dir = s.tempDir
		}
		caPEM, cert, err := newCertificate(opts.ServerName)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("vaultcore: certificate: %w", err)
		}
		s.CAFile = filepath.Join(dir, "vault-ca.pem")
		if err := os.WriteFile(s.CAFile, caPEM, 0o644); err != nil {
			ln.Close()
			return nil, fmt.Errorf("vaultcore: %w", err)
		}
		s.ServerName = opts.ServerName
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
		scheme = "https"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s.Addr = scheme + "://" + host + ":" + port
	go func() { _ = s.srv.Serve(ln) }()

	c, err := s.Client()
	if err != nil {
		return nil, err
	}
	if err := MountKVv2(ctx, c, s.KVMount); err != nil {
		return nil, err
	}
	if err := c.Sys().EnableAuthWithOptionsWithContext(ctx, s.AppRoleMount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return nil, fmt.Errorf("vaultcore: enable approle at %s: %w", s.AppRoleMount, err)
	}
	return s, nil
}

// StartT starts a server for a test and closes it in t.Cleanup; it fails the test on error.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Logf("vaultcore: close: %v", err)
		}
	})
	return s
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.ServerName == "" {
		o.ServerName = "vault.test"
	}
	if o.KVMount == "" {
		o.KVMount = "secret"
	}
	if o.AppRoleMount == "" {
		o.AppRoleMount = "approle"
	}
	o.KVMount = strings.Trim(o.KVMount, "/")
	o.AppRoleMount = strings.Trim(o.AppRoleMount, "/")
	return o
}

// Client returns a new API client for Addr holding the root token (trusting CAFile with TLS).
func (s *Server) Client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	if s.CAFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CAFile}); err != nil {
			return nil, fmt.Errorf("vaultcore: client TLS: %w", err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vaultcore: client: %w", err)
	}
	c.SetToken(s.RootToken)
	return c, nil
}

// MountKVv2 mounts a KV version 2 engine at path and waits until it accepts requests (a new KV v2
// mount answers "upgrading" for a moment).
func MountKVv2(ctx context.Context, c *api.Client, path string) error {
	path = strings.Trim(path, "/")
	err := c.Sys().MountWithContext(ctx, path, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
	if err != nil {
		return fmt.Errorf("vaultcore: mount kv v2 at %s: %w", path, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Logical().ReadWithContext(ctx, path+"/config")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vaultcore: kv v2 at %s not ready: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// StorePolicy returns the HCL of the narrowest policy a Vigil Vault key store (vault.Store of
// package keystore/vault) needs for the KV v2 mount and key prefix: create and read the secrets,
// list, read and delete their metadata. Token lookup and renewal come from Vault's default policy.
func StorePolicy(mount, prefix string) string {
	mount, prefix = strings.Trim(mount, "/"), strings.Trim(prefix, "/")
	return fmt.Sprintf(`path "%[1]s/data/%[2]s/*" { capabilities = ["create", "read"] }
path "%[1]s/metadata/%[2]s" { capabilities = ["list"] }
path "%[1]s/metadata/%[2]s/*" { capabilities = ["list", "read", "delete"] }
`, mount, prefix)
}

// PutPolicy writes an ACL policy (HCL).
func (s *Server) PutPolicy(ctx context.Context, name, hcl string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	if err := c.Sys().PutPolicyWithContext(ctx, name, hcl); err != nil {
		return fmt.Errorf("vaultcore: policy %s: %w", name, err)
	}
	return nil
}

// CreateToken creates a token with the given policies and TTL (0: the mount's default) that is
// renewable or not.
func (s *Server) CreateToken(ctx context.Context, policies []string, ttl time.Duration, renewable bool) (string, error) {
	c, err := s.Client()
	if err != nil {
		return "", err
	}
	req := &api.TokenCreateRequest{Policies: policies, Renewable: &renewable}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	sec, err := c.Auth().Token().CreateWithContext(ctx, req)
	if err != nil {
		return "", fmt.Errorf("vaultcore: create token: %w", err)
	}
	return sec.Auth.ClientToken, nil
}

// CreateAppRole creates (or updates) the AppRole role with params (e.g. "token_policies",
// "token_ttl", "token_max_ttl") and returns its role ID and a new secret ID.
func (s *Server) CreateAppRole(ctx context.Context, role string, params map[string]any) (roleID, secretID string, err error) {
	c, err := s.Client()
	if err != nil {
		return "", "", err
	}
	base := "auth/" + s.AppRoleMount + "/role/" + role
	if _, err := c.Logical().WriteWithContext(ctx, base, params); err != nil {
		return "", "", fmt.Errorf("vaultcore: approle role %s: %w", role, err)
	}
	sec, err := c.Logical().ReadWithContext(ctx, base+"/role-id")
	if err != nil || sec == nil {
		return "", "", fmt.Errorf("vaultcore: approle role-id of %s: %v", role, err)
	}
	roleID, _ = sec.Data["role_id"].(string)
	sec, err = c.Logical().WriteWithContext(ctx, base+"/secret-id", nil)
	if err != nil || sec == nil {
		return "", "", fmt.Errorf("vaultcore: approle secret-id of %s: %v", role, err)
	}
	secretID, _ = sec.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		return "", "", fmt.Errorf("vaultcore: approle %s: empty role or secret ID", role)
	}
	return roleID, secretID, nil
}

// Seal seals the core (as `vault operator seal` would). Requests then fail with 503 "Vault is
// sealed" until Unseal.
func (s *Server) Seal() error {
	if err := s.Core.Seal(s.RootToken); err != nil {
		return fmt.Errorf("vaultcore: seal: %w", err)
	}
	return nil
}

// Unseal unseals the core with its unseal key and waits until it serves requests again.
func (s *Server) Unseal() error {
	key := append([]byte(nil), s.unsealKey...)
	if _, err := s.Core.Unseal(key); err != nil {
		return fmt.Errorf("vaultcore: unseal: %w", err)
	}
	if s.Core.Sealed() {
		return errors.New("vaultcore: still sealed after unseal")
	}
	return nil
}

// Close stops the listener and shuts the core down. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, s.srv.Shutdown(ctx))
			cancel()
		}
		errs = append(errs, s.Core.ShutdownWait())
		if s.tempDir != "" {
			errs = append(errs, os.RemoveAll(s.tempDir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// newCertificate generates a CA and a server certificate signed by it, valid for a day.
func newCertificate(serverName string) (caPEM []byte, cert tls.Certificate, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, cert, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vaultcore test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, cert, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, cert, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, cert, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: serverName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", serverName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, cert, err
	}
	cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), cert, nil
}

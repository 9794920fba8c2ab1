package keystore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// VaultStore is a Store over a HashiCorp Vault KV version 2 engine (`vigil keys import --to vault`,
// `serve` with a Vault source).
//
// Secret layout (one secret per key, the Web3Signer field layout):
//
//	<Mount>/data/<Prefix>/0x<96 lowercase hex digits of the public key>
//	    data: {<Field>: "0x<64 hex digits of the secret key>"}
//
// e.g. secret/data/vigil/validators/0xa99a…c0c with {"value": "0x25295f…"}. A value without the
// 0x prefix, with upper-case hex or with surrounding white space is accepted on read; Put writes
// the form above.
//
// Rules:
//   - Put writes with check-and-set 0, so Vault itself refuses a second write of the same public
//     key: concurrent Puts of one key (from any number of processes) leave exactly one winner,
//     the others get ErrDuplicate. A secret whose current version was soft-deleted (`vault kv
//     delete`) still exists for this purpose: Put reports ErrDuplicate.
//   - Delete removes the secret's metadata and every version (`vault kv metadata delete`);
//     ErrNotFound when there is no secret. Two concurrent Deletes of one key may both succeed.
//   - List is a LIST of <Mount>/metadata/<Prefix>: it reads no secret. Sub-folders are ignored;
//     entries whose name is not a lowercase 0x-prefixed public key are left out of List and
//     reported by Load as LoadErrors (so a misplaced secret is visible in health reports).
//   - Load lists, then reads every secret on Workers goroutines. A secret that is not a usable key
//     (field missing, not a string, not hex, wrong length, zero or not below the curve order,
//     current version deleted or destroyed, or a secret key whose public key differs from the
//     secret's name: ErrPubkeyMismatch) is one LoadError with Item "vault:<Mount>/<Prefix>/<name>"
//     and Pubkey the name's public key (zero for a deleted version, so that a reload drops the
//     key); the other keys still load. A secret that disappears between the LIST and its read is
//     skipped. Keys come back in public-key byte order, as *LocalKey.
//   - Whole-source failures (Vault unreachable, TLS failure, sealed, standby without forwarding,
//     token invalid, expired or revoked, permission denied on the LIST, mount missing or not KV
//     version 2) make Load, List, Put, Delete and Ping return an error wrapping ErrUnavailable
//     that names the Vault address, the request and the reason. A failure of that kind in the
//     middle of a Load aborts the Load (the keys built so far are zeroed). Retrying later may
//     succeed: the store needs no reopening after Vault is unsealed or comes back.
//   - Authentication: a token, or AppRole (login at auth/<AppRoleMount>/login). A renewable
//     token is renewed by an api.LifetimeWatcher for the store's lifetime; when an AppRole token
//     can no longer be renewed (max TTL) or a request gets 403 with it, the store logs in again.
//     A plain token that reaches its max TTL cannot be replaced: the failure is logged, and
//     later calls return ErrUnavailable ("token invalid, expired or revoked"). Close stops the
//     renewal and revokes a token the store obtained by AppRole login.
//   - The client ignores the VAULT_* environment variables (VAULT_TOKEN, VAULT_NAMESPACE,
//     VAULT_SKIP_VERIFY, …): everything comes from VaultConfig. Standard HTTP(S)_PROXY variables
//     are honoured.
//
// Secret hygiene: errors, logs and LoadErrors name addresses, paths and Vault's own error
// messages, never the token, the AppRole secret ID or a secret key. Secret responses are read
// into buffers that are zeroed after the key is built, and decoded without turning the secret
// into a Go string; the request body of a Put is zeroed after the request. Not wiped (outside
// this package's reach): the HTTP and TLS layers' internal buffers, and the token and secret ID
// strings of VaultConfig.
//
// Concurrency: all methods are safe for concurrent use. Close must be called once the store is
// no longer needed (it stops the token-renewal goroutine); it is safe to call twice.
type VaultStore struct {
	cfg    VaultConfig
	client *api.Client
	log    *slog.Logger

	authMu sync.Mutex // serializes AppRole logins

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	stateMu  sync.Mutex
	renewErr error // the last renewal or re-login failure; nil when healthy
	login    bool  // the current token was obtained by AppRole login (revoked on Close)
}

// VaultConfig configures a VaultStore. Exactly one authentication method is set: Token, or RoleID
// and SecretID.
type VaultConfig struct {
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

// VaultConfig defaults.
const (
	DefaultVaultMount        = "secret"
	DefaultVaultPrefix       = "vigil/validators"
	DefaultVaultField        = "value"
	DefaultVaultAppRoleMount = "approle"
	DefaultVaultTimeout      = 10 * time.Second
	DefaultVaultWorkers      = 16
)

func (c VaultConfig) withDefaults() VaultConfig {
	c.Mount = strings.Trim(c.Mount, "/")
	c.Prefix = strings.Trim(c.Prefix, "/")
	c.AppRoleMount = strings.Trim(c.AppRoleMount, "/")
	if c.Mount == "" {
		c.Mount = DefaultVaultMount
	}
	if c.Prefix == "" {
		c.Prefix = DefaultVaultPrefix
	}
	if c.Field == "" {
		c.Field = DefaultVaultField
	}
	if c.AppRoleMount == "" {
		c.AppRoleMount = DefaultVaultAppRoleMount
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultVaultTimeout
	}
	if c.Workers == 0 {
		c.Workers = DefaultVaultWorkers
	}
	return c
}

// Validate checks the configuration (after defaults) without contacting Vault; the error names
// the bad field and never quotes a credential.
func (c VaultConfig) Validate() error {
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

// OpenVault connects to Vault, authenticates and checks that cfg.Mount is a KV version 2 engine
// the credentials can use. Failures to reach or use Vault (unreachable, TLS, sealed, login or
// token refused, mount missing) wrap ErrUnavailable. Close the store when done.
func OpenVault(ctx context.Context, cfg VaultConfig) (*VaultStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tlsConf, err := vaultTLSConfig(cfg.CAFile, cfg.TLSServerName)
	if err != nil {
		return nil, err
	}
	client, err := newVaultClient(cfg.Address, tlsConf, cfg.Timeout, cfg.Workers)
	if err != nil {
		return nil, err
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &VaultStore{cfg: cfg, client: client, log: log, done: make(chan struct{})}
	auth, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkMount(ctx); err != nil {
		s.revokeLogin()
		return nil, err
	}
	var bg context.Context
	bg, s.stop = context.WithCancel(context.Background())
	go s.maintain(bg, auth)
	return s, nil
}

// Name implements Source.
func (s *VaultStore) Name() string { return "vault" }

// Close stops token renewal and revokes a token obtained by AppRole login. Safe to call twice.
func (s *VaultStore) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		s.revokeLogin()
	})
	return nil
}

// RenewalError returns the last failure to renew the token or to log in again, nil while
// renewal works (or is not needed). Health reports can show it before the token expires.
func (s *VaultStore) RenewalError() error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.renewErr
}

// Ping checks that Vault is reachable, initialized and unsealed, and that the token is valid.
// Its errors wrap ErrUnavailable.
func (s *VaultStore) Ping(ctx context.Context) error {
	h, err := s.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return s.failure(ctx, "GET sys/health", err)
	}
	switch {
	case !h.Initialized:
		return s.unavailable("GET sys/health", "not initialized")
	case h.Sealed:
		return s.unavailable("GET sys/health", "sealed")
	}
	err = s.call(ctx, func() error {
		_, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	if err != nil {
		return s.failure(ctx, "GET auth/token/lookup-self", err)
	}
	return nil
}

// secretPath returns the KV v2 path (under data/ or metadata/) of a key's secret.
func (s *VaultStore) secretPath(kind, name string) string {
	return s.cfg.Mount + "/" + kind + "/" + s.cfg.Prefix + "/" + name
}

// item names a secret in LoadErrors: "vault:<mount>/<prefix>/<name>".
func (s *VaultStore) item(name string) string {
	return "vault:" + s.cfg.Mount + "/" + s.cfg.Prefix + "/" + name
}

// Put implements Store.
func (s *VaultStore) Put(ctx context.Context, sk *SecretKey) error {
	pub := sk.PublicKey()
	path := s.secretPath("data", pub.String())
	field, _ := json.Marshal(s.cfg.Field) // a string always marshals
	const head, tail = `{"options":{"cas":0},"data":{`, `"}}`
	// Sized exactly, so that no append leaves a partial copy behind.
	body := make([]byte, 0, len(head)+len(field)+len(`:"0x`)+64+len(tail))
	defer func() { zero(body) }()
	body = append(body, head...)
	body = append(body, field...)
	body = append(body, `:"0x`...)
	b := sk.Bytes()
	body = hex.AppendEncode(body, b)
	zero(b)
	body = append(body, tail...)

	err := s.call(ctx, func() error {
		_, err := s.client.Logical().WriteBytesWithContext(ctx, path, body)
		return err
	})
	if err == nil {
		return nil
	}
	if st := vaultStatus(err); st == http.StatusBadRequest || st == http.StatusForbidden {
		// Check-and-set 0 failed (400), or a policy granting "create" but not "update" refused
		// to overwrite (403), or the request was bad: tell them apart by whether the secret
		// exists now. Vault's cas=0 check is atomic; this read only classifies.
		if exists, mErr := s.exists(ctx, pub.String()); mErr == nil && exists {
			return fmt.Errorf("%s: %w", s.item(pub.String()), ErrDuplicate)
		}
	}
	return s.failure(ctx, "PUT "+path, err)
}

// exists reports whether the metadata of a secret exists.
func (s *VaultStore) exists(ctx context.Context, name string) (bool, error) {
	path := s.secretPath("metadata", name)
	var sec *api.Secret
	err := s.call(ctx, func() error {
		var err error
		sec, err = s.client.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return false, s.failure(ctx, "GET "+path, err)
	}
	return sec != nil, nil
}

// Delete implements Store.
func (s *VaultStore) Delete(ctx context.Context, pub PublicKey) error {
	exists, err := s.exists(ctx, pub.String())
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%s: %w", s.item(pub.String()), ErrNotFound)
	}
	path := s.secretPath("metadata", pub.String())
	err = s.call(ctx, func() error {
		_, err := s.client.Logical().DeleteWithContext(ctx, path)
		return err
	})
	if err != nil {
		return s.failure(ctx, "DELETE "+path, err)
	}
	return nil
}

// List implements Store.
func (s *VaultStore) List(ctx context.Context) ([]PublicKey, error) {
	entries, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var pubs []PublicKey
	for _, e := range entries {
		if e.err == nil {
			pubs = append(pubs, e.pub)
		}
	}
	return pubs, nil
}

// vaultEntry is one secret name under the prefix: a public key, or err saying why not.
type vaultEntry struct {
	name string
	pub  PublicKey
	err  error
}

// list LISTs the prefix: entries sorted by public key (non-key names last, by name), folders
// left out. An empty or absent folder is checked against the mount (a missing mount also lists
// as nothing).
func (s *VaultStore) list(ctx context.Context) ([]vaultEntry, error) {
	path := s.cfg.Mount + "/metadata/" + s.cfg.Prefix
	var sec *api.Secret
	err := s.call(ctx, func() error {
		var err error
		sec, err = s.client.Logical().ListWithContext(ctx, path)
		return err
	})
	if err != nil {
		if vaultStatus(err) == http.StatusForbidden {
			if merr := s.checkMount(ctx); merr != nil {
				return nil, merr
			}
		}
		return nil, s.failure(ctx, "LIST "+path, err)
	}
	var names []string
	if sec != nil {
		raw, _ := sec.Data["keys"].([]any)
		for _, k := range raw {
			if n, ok := k.(string); ok && !strings.HasSuffix(n, "/") {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		if err := s.checkMount(ctx); err != nil {
			return nil, err
		}
	}
	entries := make([]vaultEntry, 0, len(names))
	for _, n := range names {
		// The name is only decoded, not checked to be a G1 point (that costs ~80 µs a key):
		// Load derives the public key from the secret and compares.
		e := vaultEntry{name: n}
		var pub PublicKey
		err := ErrMalformed
		if len(n) == 2+2*len(pub) && strings.HasPrefix(n, "0x") {
			_, err = hex.Decode(pub[:], []byte(n[2:]))
		}
		switch {
		case err != nil:
			e.err = fmt.Errorf("%w (%w): secret name is not a 0x-prefixed BLS public key (Vigil reads only secrets named 0x<96 hex digits> under %s/%s)", ErrMalformed, ErrStrayItem, s.cfg.Mount, s.cfg.Prefix)
		case pub.String() != n:
			e.err = fmt.Errorf("%w (%w): secret name is not in lowercase hex (want %s)", ErrMalformed, ErrStrayItem, pub)
		default:
			e.pub = pub
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b vaultEntry) int {
		switch {
		case a.err == nil && b.err == nil:
			return bytes.Compare(a.pub[:], b.pub[:])
		case a.err == nil:
			return -1
		case b.err == nil:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return entries, nil
}

// checkMount checks that the mount exists, is KV version 2 and is visible to the token.
func (s *VaultStore) checkMount(ctx context.Context) error {
	path := "sys/internal/ui/mounts/" + s.cfg.Mount
	var sec *api.Secret
	err := s.call(ctx, func() error {
		var err error
		sec, err = s.client.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		if vaultStatus(err) == http.StatusForbidden {
			if terr := s.tokenCheck(ctx); terr != nil {
				return terr
			}
			return s.unavailable("mount "+s.cfg.Mount+"/", "no such mount, or the token's policies grant nothing under it")
		}
		return s.failure(ctx, "GET "+path, err)
	}
	if sec == nil || sec.Data == nil {
		return s.unavailable("mount "+s.cfg.Mount+"/", "no such mount")
	}
	typ, _ := sec.Data["type"].(string)
	mpath, _ := sec.Data["path"].(string)
	opts, _ := sec.Data["options"].(map[string]any)
	version, _ := opts["version"].(string)
	switch {
	case mpath != "" && strings.Trim(mpath, "/") != s.cfg.Mount:
		return s.unavailable("mount "+s.cfg.Mount+"/", fmt.Sprintf("no mount at this path (it lies inside mount %s)", truncate(mpath, 80)))
	case typ != "kv" && typ != "generic":
		return s.unavailable("mount "+s.cfg.Mount+"/", fmt.Sprintf("is a %q engine, not KV version 2", truncate(typ, 40)))
	case version != "2":
		return s.unavailable("mount "+s.cfg.Mount+"/", "is KV version 1, not version 2")
	}
	return nil
}

// Load implements Source.
func (s *VaultStore) Load(ctx context.Context) (LoadResult, error) {
	entries, err := s.list(ctx)
	if err != nil {
		return LoadResult{}, err
	}
	// A failure of Vault itself (not of one secret) cancels the whole load with its cause.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var forbidden sync.Once // the first 403 of a read checks the token once
	var tokenErr error
	jobs := make([]loadJob, len(entries))
	for i, e := range entries {
		jobs[i] = loadJob{item: s.item(e.name), load: func() (*SecretKey, error) {
			if e.err != nil {
				return nil, e.err // a stray name: no public key to name
			}
			sk, itemErr, fatal := s.readKey(ctx, e)
			if fatal != nil && vaultStatus(fatal) == http.StatusForbidden {
				// Expired token (abort) or a policy that hides this one secret (item error)?
				forbidden.Do(func() { tokenErr = s.tokenCheck(ctx) })
				if tokenErr == nil {
					fatal, itemErr = nil, fmt.Errorf("permission denied: the token's policies do not allow reading %s", s.secretPath("data", e.name))
				}
			}
			switch {
			case fatal != nil:
				cancel(s.failure(ctx, "GET "+s.secretPath("data", e.name), fatal))
				return nil, errSkipItem
			case errors.Is(itemErr, errVaultVersionDeleted), sk == nil && itemErr == nil:
				// `vault kv delete` (current version soft-deleted or destroyed), or gone since the
				// LIST: the operator deleted the key, so it is absent.
				return nil, errSkipItem
			}
			return sk, withPubkey(&e.pub, itemErr)
		}}
	}
	return runJobs(ctx, s.cfg.Workers, jobs)
}

// errVaultVersionDeleted: the current version of a KV v2 secret is deleted or destroyed.
var errVaultVersionDeleted = errors.New("the current version of the secret is deleted or destroyed (undelete it, or delete the secret's metadata)")

// maxVaultResponse bounds the response to a secret read.
const maxVaultResponse = 1 << 20

// readKey reads and checks one secret. itemErr is a problem of this secret; fatal one of Vault or
// the token (it aborts the Load); both nil and sk nil when the secret vanished.
func (s *VaultStore) readKey(ctx context.Context, e vaultEntry) (sk *SecretKey, itemErr, fatal error) {
	path := s.secretPath("data", e.name)
	var body []byte
	var status int
	err := s.call(ctx, func() error {
		zero(body)
		var err error
		body, status, err = s.rawGet(ctx, "/v1/"+path, "")
		return err
	})
	defer zero(body)
	if err != nil {
		return nil, nil, err
	}
	if status == http.StatusNotFound {
		if vaultDeletedVersion(body) {
			return nil, errVaultVersionDeleted, nil
		}
		return nil, nil, nil
	}
	sk, err = vaultSecretKey(body, s.cfg.Field, true)
	if err != nil {
		return nil, err, nil
	}
	if sk.PublicKey() != e.pub {
		sk.Zero()
		return nil, fmt.Errorf("%w: the secret key's public key is %s", ErrPubkeyMismatch, sk.PublicKey()), nil
	}
	return sk, nil, nil
}

// rawGet GETs an absolute API path ("/v1/…") into a buffer the caller zeroes. A 404 is returned
// as a status with the (non-secret) body; other error statuses as the client's error. token, when
// set, replaces the client's token for this request.
func (s *VaultStore) rawGet(ctx context.Context, path, token string) ([]byte, int, error) {
	return vaultRawGet(ctx, s.client, path, token)
}

func vaultRawGet(ctx context.Context, c *api.Client, path, token string) ([]byte, int, error) {
	r := c.NewRequest(http.MethodGet, path)
	if token != "" {
		r.ClientToken = token
	}
	ctx, cancel := context.WithTimeout(ctx, c.ClientTimeout())
	defer cancel()
	//nolint:staticcheck // RawRequestWithContext is the only way to GET an arbitrary /v1 path raw.
	resp, err := c.RawRequestWithContext(ctx, r)
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		b, rerr := readAllInto(make([]byte, 0, 512), io.LimitReader(resp.Body, maxVaultResponse))
		if rerr != nil {
			zero(b)
			return nil, 0, rerr
		}
		return b, http.StatusNotFound, nil
	}
	if err != nil {
		return nil, 0, err
	}
	b, err := readAllInto(make([]byte, 0, 1024), io.LimitReader(resp.Body, maxVaultResponse+1))
	if err == nil && len(b) > maxVaultResponse {
		err = fmt.Errorf("response larger than %d bytes", maxVaultResponse)
	}
	if err != nil {
		zero(b)
		return nil, 0, fmt.Errorf("reading the response: %w", err)
	}
	return b, resp.StatusCode, nil
}

// vaultDeletedVersion reports whether a KV v2 404 body describes a deleted or destroyed current
// version (rather than no secret at all).
func vaultDeletedVersion(body []byte) bool {
	var r struct {
		Data *struct {
			Metadata *struct {
				DeletionTime string `json:"deletion_time"`
				Destroyed    bool   `json:"destroyed"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &r) != nil || r.Data == nil || r.Data.Metadata == nil {
		return false
	}
	return r.Data.Metadata.DeletionTime != "" || r.Data.Metadata.Destroyed
}

// vaultSecretKey extracts field from a read response and builds the key. kv2Only: the secret is
// under data.data (KV v2); otherwise data.data (when it holds field) or data (KV v1). Every copy
// of the secret made here is a []byte that is zeroed; none is a string.
func vaultSecretKey(body []byte, field string, kv2Only bool) (*SecretKey, error) {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	defer func() { zero(env.Data) }()
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, &MalformedError{Reason: "the response is not JSON"}
	}
	outer := map[string]json.RawMessage{}
	defer zeroRaw(outer)
	if len(env.Data) == 0 || json.Unmarshal(env.Data, &outer) != nil {
		return nil, &MalformedError{Field: "data", Reason: "missing or not an object"}
	}
	inner := map[string]json.RawMessage{}
	defer zeroRaw(inner)
	v, ok := json.RawMessage(nil), false
	if d, has := outer["data"]; has && len(d) > 0 && d[0] == '{' && json.Unmarshal(d, &inner) == nil {
		v, ok = inner[field]
	}
	if !ok && !kv2Only {
		v, ok = outer[field]
	}
	if !ok {
		if kv2Only && (len(outer["data"]) == 0 || string(outer["data"]) == "null") {
			return nil, &MalformedError{Field: "data.data", Reason: "missing (is the mount KV version 2?)"}
		}
		return nil, &MalformedError{Field: field, Reason: "missing from the secret"}
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, &MalformedError{Field: field, Reason: "not a string"}
	}
	h := trimJSONSpace(v[1 : len(v)-1])
	if bytes.HasPrefix(h, []byte("0x")) || bytes.HasPrefix(h, []byte("0X")) {
		h = h[2:]
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return nil, &MalformedError{Field: field, Reason: "not hex"}
		}
	}
	if len(h) != 64 {
		return nil, &MalformedError{Field: field, Reason: fmt.Sprintf("has %d hex digits, want 64 (0x followed by 32 bytes)", len(h))}
	}
	var b [32]byte
	defer zero(b[:])
	if _, err := hex.Decode(b[:], h); err != nil {
		return nil, &MalformedError{Field: field, Reason: "not hex"}
	}
	sk, err := NewSecretKey(b[:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return sk, nil
}

// trimJSONSpace trims white space, written as is or as the JSON escapes \n, \r and \t, from both
// ends of the inside of a JSON string (a key file stored with its trailing newline).
func trimJSONSpace(b []byte) []byte {
	for {
		n := len(b)
		b = bytes.TrimSpace(b)
		for _, esc := range []string{`\n`, `\r`, `\t`} {
			b = bytes.TrimPrefix(b, []byte(esc))
			if bytes.HasSuffix(b, []byte(esc)) && !bytes.HasSuffix(b, []byte(`\`+esc)) {
				b = b[:len(b)-len(esc)]
			}
		}
		if len(b) == n {
			return b
		}
	}
}

func zeroRaw(m map[string]json.RawMessage) {
	for _, v := range m {
		zero(v)
	}
}

// ---- authentication and token lifetime ----

// authenticate sets the client's token (checking it) or logs in with AppRole. It returns the auth
// information the lifetime watcher needs, nil when there is nothing to renew.
func (s *VaultStore) authenticate(ctx context.Context) (*api.Secret, error) {
	if s.cfg.Token == "" {
		return s.loginAppRole(ctx)
	}
	s.client.SetToken(s.cfg.Token)
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		if vaultStatus(err) == http.StatusForbidden {
			return nil, s.unavailable("token", "invalid, expired or revoked (lookup-self: permission denied)")
		}
		return nil, s.failure(ctx, "GET auth/token/lookup-self", err)
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	if ttl > 0 && !renewable {
		s.log.Warn("vault token is not renewable; it will expire", "ttl", ttl.String())
	}
	if ttl <= 0 || !renewable {
		return nil, nil
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: s.cfg.Token, Renewable: true, LeaseDuration: int(ttl / time.Second)}}, nil
}

// loginAppRole logs in and installs the new token.
func (s *VaultStore) loginAppRole(ctx context.Context) (*api.Secret, error) {
	path := "auth/" + s.cfg.AppRoleMount + "/login"
	// The login request carries no token (an expired one would only be noise).
	s.client.ClearToken()
	sec, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"role_id":   s.cfg.RoleID,
		"secret_id": s.cfg.SecretID,
	})
	if err != nil {
		switch vaultStatus(err) {
		case http.StatusBadRequest, http.StatusForbidden:
			return nil, s.unavailable("AppRole login at "+path, "rejected: "+vaultMessages(err, "invalid role ID or secret ID"))
		case http.StatusNotFound:
			return nil, s.unavailable("AppRole login at "+path, "no AppRole auth method at auth/"+s.cfg.AppRoleMount+"/")
		}
		return nil, s.failure(ctx, "PUT "+path, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, s.unavailable("AppRole login at "+path, "no token in the response (is it an AppRole mount?)")
	}
	s.client.SetToken(sec.Auth.ClientToken)
	s.stateMu.Lock()
	s.login = true
	s.stateMu.Unlock()
	if sec.Auth.LeaseDuration <= 0 {
		return nil, nil // a token without TTL needs no renewal
	}
	return sec, nil
}

// call runs fn; when it fails with 403, the store uses AppRole and the token is no longer valid,
// it logs in again (once for all concurrent callers holding the same stale token) and retries fn
// once.
func (s *VaultStore) call(ctx context.Context, fn func() error) error {
	stale := s.client.Token()
	err := fn()
	if err == nil || s.cfg.RoleID == "" || vaultStatus(err) != http.StatusForbidden || ctx.Err() != nil {
		return err
	}
	if s.client.Token() == stale && s.tokenCheck(ctx) == nil {
		return err // a valid token lacking a policy: logging in again would not help
	}
	if lerr := s.relogin(ctx, stale); lerr != nil {
		return err
	}
	return fn()
}

// relogin logs in with AppRole unless another goroutine already replaced the stale token.
func (s *VaultStore) relogin(ctx context.Context, stale string) error {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.client.Token() != stale && s.client.Token() != "" {
		return nil
	}
	_, err := s.loginAppRole(ctx)
	if err != nil {
		s.setRenewErr(err)
		return err
	}
	s.log.Info("vault: logged in again with AppRole after a permission-denied response")
	return nil
}

// maintain renews the token while it can; for AppRole it logs in again when the token reaches its
// max TTL. It runs until ctx is cancelled (Close).
func (s *VaultStore) maintain(ctx context.Context, auth *api.Secret) {
	defer close(s.done)
	for auth != nil {
		w, err := s.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: auth})
		if err != nil {
			s.setRenewErr(fmt.Errorf("vault: token renewal: %w", err))
			s.log.Error("vault: cannot watch the token lifetime", "error", err)
			return
		}
		finished := make(chan struct{})
		go func() { defer close(finished); w.Start() }()
		var doneErr error
	watch:
		for {
			select {
			case <-ctx.Done():
				w.Stop()
				<-finished
				return
			case r := <-w.RenewCh():
				s.setRenewErr(nil)
				if r != nil && r.Secret != nil && r.Secret.Auth != nil {
					s.log.Debug("vault: token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
				}
			case <-finished:
				select {
				case doneErr = <-w.DoneCh():
				default:
				}
				break watch
			}
		}
		if s.cfg.RoleID == "" {
			err := fmt.Errorf("%w: vault at %s: token can no longer be renewed (max TTL reached or renewal refused); it will expire", ErrUnavailable, s.cfg.Address)
			if doneErr != nil {
				err = fmt.Errorf("%w: %s", err, vaultReason(doneErr))
			}
			s.setRenewErr(err)
			s.log.Warn("vault: token renewal ended; restart with a new token before it expires", "error", err)
			return
		}
		auth = s.reloginLoop(ctx)
	}
}

// reloginLoop logs in with AppRole until it succeeds or ctx ends (nil then).
func (s *VaultStore) reloginLoop(ctx context.Context) *api.Secret {
	wait := time.Second
	for {
		s.authMu.Lock()
		auth, err := s.loginAppRole(ctx)
		s.authMu.Unlock()
		if err == nil {
			s.setRenewErr(nil)
			s.log.Info("vault: logged in again with AppRole (token reached its max TTL)")
			if auth == nil {
				// No TTL: nothing to watch; stay until Close.
				<-ctx.Done()
			}
			return auth
		}
		s.setRenewErr(err)
		s.log.Error("vault: AppRole login failed; retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

func (s *VaultStore) setRenewErr(err error) {
	s.stateMu.Lock()
	s.renewErr = err
	s.stateMu.Unlock()
}

// revokeLogin revokes the token of an AppRole login (best effort).
func (s *VaultStore) revokeLogin() {
	s.stateMu.Lock()
	login := s.login
	s.stateMu.Unlock()
	if !login {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		s.log.Debug("vault: revoking the AppRole token failed", "error", vaultReason(err))
	}
}

// ---- errors ----

// vaultError is an error of the Vault backend; its message is built here (address, request,
// reason) and never holds a credential or a secret.
type vaultError struct {
	msg  string
	errs []error
}

func (e *vaultError) Error() string   { return e.msg }
func (e *vaultError) Unwrap() []error { return e.errs }

// unavailable is ErrUnavailable for op with reason.
func (s *VaultStore) unavailable(op, reason string) error {
	return &vaultError{msg: fmt.Sprintf("%s: vault at %s: %s: %s", ErrUnavailable, s.cfg.Address, op, reason), errs: []error{ErrUnavailable}}
}

// failure turns an error of the Vault client for request op into one wrapping ErrUnavailable (or
// the context's error when the caller gave up), with a reason an operator can act on.
func (s *VaultStore) failure(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("vault at %s: %s: %w", s.cfg.Address, op, cerr)
	}
	var ve *vaultError
	if errors.As(err, &ve) {
		return err
	}
	reason := vaultReason(err)
	switch vaultStatus(err) {
	case http.StatusServiceUnavailable:
		if st, serr := s.client.Sys().SealStatusWithContext(ctx); serr == nil && st.Sealed {
			reason = "sealed"
		}
	case http.StatusForbidden:
		if terr := s.tokenCheck(ctx); terr != nil {
			return terr
		}
		reason = "permission denied: the token's policies do not allow this request"
	}
	e := s.unavailable(op, reason).(*vaultError)
	e.errs = append(e.errs, err)
	return e
}

// tokenCheck looks the token up; an error wrapping ErrUnavailable when it is invalid, expired or
// revoked (or Vault cannot be asked), nil when it is valid.
func (s *VaultStore) tokenCheck(ctx context.Context) error {
	_, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	switch {
	case err == nil:
		return nil
	case vaultStatus(err) == http.StatusForbidden:
		return s.unavailable("token", "invalid, expired or revoked")
	}
	var ve *vaultError
	if errors.As(err, &ve) {
		return err
	}
	e := s.unavailable("GET auth/token/lookup-self", vaultReason(err)).(*vaultError)
	e.errs = append(e.errs, err)
	return e
}

// vaultStatus is the HTTP status of a Vault error response, 0 for other errors.
func vaultStatus(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// vaultMessages returns Vault's own error messages (joined, shortened), or def when none.
func vaultMessages(err error, def string) string {
	var re *api.ResponseError
	if !errors.As(err, &re) || len(re.Errors) == 0 || re.RawError {
		return def
	}
	var msgs []string
	for _, m := range re.Errors {
		if m = strings.TrimSpace(m); m != "" {
			msgs = append(msgs, truncate(m, 200))
		}
	}
	if len(msgs) == 0 {
		return def
	}
	return strings.Join(msgs, "; ")
}

// vaultReason describes a client error without the request URL (already named) or any body that
// is not Vault's JSON error list.
func vaultReason(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		def := "no error message"
		if re.RawError {
			// The body is not quoted: it did not come from Vault's API and could echo anything.
			def = "the response is not from the Vault API (wrong address or scheme, or a proxy in between?)"
		}
		return fmt.Sprintf("%d %s: %s", re.StatusCode, http.StatusText(re.StatusCode), vaultMessages(err, def))
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recErr     tls.RecordHeaderError
		pinErr     *pinError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &pinErr):
		return "TLS: " + pinErr.msg
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return "TLS: cannot verify Vault's certificate (check the CA file and server name): " + err.Error()
	case errors.As(err, &recErr):
		return "TLS: the server did not answer with TLS (is the address http://?): " + err.Error()
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return "timed out: " + err.Error()
	case errors.As(err, &netErr):
		return "unreachable: " + err.Error()
	}
	return err.Error()
}

// ---- client construction ----

// newVaultClient builds an API client that takes nothing from VAULT_* environment variables.
func newVaultClient(address string, tlsConf *tls.Config, timeout time.Duration, conns int) (*api.Client, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   max(conns, 2) + 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tlsConf,
	}
	hc := &http.Client{
		Transport: tr,
		// The API client follows Vault's redirects itself (at most one, never to http).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c, err := api.NewClient(&api.Config{
		Address:      address,
		HttpClient:   hc,
		Timeout:      timeout,
		MaxRetries:   2,
		MinRetryWait: 500 * time.Millisecond,
		MaxRetryWait: 1500 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("vault: client for %s: %w", address, err)
	}
	// NewClient picks these up from the environment; this client must not.
	c.ClearToken()
	c.ClearNamespace()
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	return c, nil
}

// vaultTLSConfig trusts caFile (system roots when empty) and checks serverName when set.
func vaultTLSConfig(caFile, serverName string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile == "" {
		return conf, nil
	}
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("vault: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("vault: CA file %s: no PEM certificate in it", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

var _ Store = (*VaultStore)(nil)

// ---- Web3Signer "hashicorp" key-config documents ----

// hashicorpDoc is a checked Web3Signer `type: hashicorp` document.
type hashicorpDoc struct {
	address  string // scheme://host:port
	keyPath  string // absolute API path, "/v1/…"
	keyName  string
	token    string
	timeout  time.Duration
	tls      *tls.Config // nil for http
	tlsIdent string      // what distinguishes the TLS settings in the client cache
}

// parseHashicorpDoc checks the fields of a hashicorp document. Errors name fields, never values
// of token.
func parseHashicorpDoc(d keyConfigDoc, resolve func(string) string) (*hashicorpDoc, error) {
	get := func(name string) string { v, _ := d.get(name); return strings.TrimSpace(v) }
	h := &hashicorpDoc{keyName: "value", timeout: 10 * time.Second}

	host := get("serverHost")
	if host == "" {
		return nil, &MalformedError{Field: "serverHost", Reason: "missing"}
	}
	if strings.ContainsAny(host, "/?#@ \t") {
		return nil, &MalformedError{Field: "serverHost", Reason: "must be a host name or IP address (no scheme, port or path)"}
	}
	port := "8200"
	if p := get("serverPort"); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, &MalformedError{Field: "serverPort", Reason: "must be a port number (1-65535)"}
		}
		port = p
	}
	h.keyPath = get("keyPath")
	switch {
	case h.keyPath == "":
		return nil, &MalformedError{Field: "keyPath", Reason: "missing"}
	case !strings.HasPrefix(h.keyPath, "/v1/") || strings.ContainsAny(h.keyPath, "?# \t") || strings.Contains(h.keyPath, "/../") || strings.HasSuffix(h.keyPath, "/.."):
		return nil, &MalformedError{Field: "keyPath", Reason: "must be an absolute Vault API path such as /v1/secret/data/<name>"}
	}
	if v, ok := d.get("keyName"); ok && strings.TrimSpace(v) != "" {
		h.keyName = strings.TrimSpace(v)
	}
	if t := get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 32)
		if err != nil || ms < 1 {
			return nil, &MalformedError{Field: "timeout", Reason: "must be a positive number of milliseconds"}
		}
		h.timeout = time.Duration(ms) * time.Millisecond
	}
	if v := get("httpProtocolVersion"); v != "" && !strings.EqualFold(v, "HTTP_2") && !strings.EqualFold(v, "HTTP_1_1") {
		return nil, &MalformedError{Field: "httpProtocolVersion", Reason: "must be HTTP_2 or HTTP_1_1"}
	}
	switch m := strings.ToUpper(get("authMethod")); m {
	case "", "TOKEN":
	case "KUBERNETES":
		return nil, fmt.Errorf("%w: hashicorp authMethod KUBERNETES is not supported (use TOKEN, or the Vault key source with AppRole)", ErrUnsupportedKeyConfig)
	default:
		return nil, &MalformedError{Field: "authMethod", Reason: "must be TOKEN"}
	}
	h.token = get("token")
	if h.token == "" {
		return nil, &MalformedError{Field: "token", Reason: "missing (required for authMethod TOKEN)"}
	}

	tlsOn := false
	switch v := strings.ToLower(get("tlsEnabled")); v {
	case "", "false":
	case "true":
		tlsOn = true
	default:
		return nil, &MalformedError{Field: "tlsEnabled", Reason: "must be true or false"}
	}
	known, caFile := get("tlsKnownServersPath"), get("tlsCaFile")
	if !tlsOn && (known != "" || caFile != "") {
		return nil, &MalformedError{Field: "tlsEnabled", Reason: "is false but TLS settings (tlsKnownServersPath, tlsCaFile) are given"}
	}
	if known != "" && caFile != "" {
		return nil, &MalformedError{Field: "tlsCaFile", Reason: "cannot be combined with tlsKnownServersPath"}
	}
	scheme := "http"
	if tlsOn {
		scheme = "https"
		var err error
		switch {
		case known != "":
			path := resolve(known)
			h.tls, err = knownServersTLS(path, host, port)
			h.tlsIdent = "known:" + path
		case caFile != "":
			path := resolve(caFile)
			h.tls, err = vaultTLSConfig(path, "")
			h.tlsIdent = "ca:" + path
		default:
			h.tls, err = vaultTLSConfig("", "")
			h.tlsIdent = "system"
		}
		if err != nil {
			return nil, err
		}
	}
	h.address = scheme + "://" + net.JoinHostPort(host, port)
	return h, nil
}

// knownServersTLS implements Web3Signer's tlsKnownServersPath: a file of lines
// "<host>:<port> <SHA-256 fingerprint of the server certificate>" (hex, colons allowed; "#"
// starts a comment). The server must be listed under host:port with the fingerprint of the
// certificate it presents; CA signatures are not consulted (Web3Signer's allowlist does not
// accept CA-signed certificates either).
func knownServersTLS(path, host, port string) (*tls.Config, error) {
	data, err := readLimited(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("tlsKnownServersPath: %w", err)
	}
	want := net.JoinHostPort(host, port)
	var pins [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, &MalformedError{Field: "tlsKnownServersPath", Reason: fmt.Sprintf("%s line %d: want \"<host>:<port> <sha256 fingerprint>\"", path, i+1)}
		}
		fp, err := hex.DecodeString(strings.ReplaceAll(f[1], ":", ""))
		if err != nil || len(fp) != sha256.Size {
			return nil, &MalformedError{Field: "tlsKnownServersPath", Reason: fmt.Sprintf("%s line %d: the fingerprint is not 32 bytes of hex", path, i+1)}
		}
		if strings.EqualFold(f[0], want) || strings.EqualFold(f[0], host+":"+port) {
			pins = append(pins, fp)
		}
	}
	if len(pins) == 0 {
		return nil, &MalformedError{Field: "tlsKnownServersPath", Reason: fmt.Sprintf("%s lists no fingerprint for %s", path, want)}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Chain verification is replaced by the pin check below.
		InsecureSkipVerify: true, //nolint:gosec // the certificate is pinned by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("vault: no server certificate")
			}
			sum := sha256.Sum256(raw[0])
			for _, p := range pins {
				if bytes.Equal(p, sum[:]) {
					return nil
				}
			}
			return &pinError{fmt.Sprintf("the certificate of %s (sha256 %X) is not in the known-servers file", want, sum)}
		},
	}, nil
}

// pinError: the server's certificate is not in the known-servers file.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }

// vaultClients caches API clients by address and TLS settings, so that the documents of a
// key-config directory share connections (tokens are set per request, not per client).
type vaultClients struct {
	mu sync.Mutex
	m  map[string]*api.Client
}

func (vc *vaultClients) get(h *hashicorpDoc) (*api.Client, error) {
	key := h.address + "|" + h.tlsIdent + "|" + h.timeout.String()
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if c, ok := vc.m[key]; ok {
		return c, nil
	}
	c, err := newVaultClient(h.address, h.tls, h.timeout, 4)
	if err != nil {
		return nil, err
	}
	if vc.m == nil {
		vc.m = map[string]*api.Client{}
	}
	vc.m[key] = c
	return c, nil
}

// hashicorpKeyLoader checks a hashicorp document and returns the function that reads its key.
func (vc *vaultClients) hashicorpKeyLoader(d keyConfigDoc, resolve func(string) string) (func() (*SecretKey, error), error) {
	h, err := parseHashicorpDoc(d, resolve)
	if err != nil {
		return nil, err
	}
	return func() (*SecretKey, error) {
		c, err := vc.get(h)
		if err != nil {
			return nil, err
		}
		where := "vault at " + h.address + ": GET " + h.keyPath
		body, status, err := vaultRawGet(context.Background(), c, h.keyPath, h.token)
		defer zero(body)
		if err != nil {
			reason := vaultReason(err)
			switch vaultStatus(err) {
			case http.StatusForbidden:
				reason = "permission denied (token invalid, expired or revoked, or no read access to keyPath)"
			case http.StatusServiceUnavailable:
				reason = "Vault is sealed or unavailable (" + reason + ")"
			}
			if vaultStatus(err) == 0 || vaultStatus(err) >= 500 || vaultStatus(err) == http.StatusForbidden || vaultStatus(err) == http.StatusTooManyRequests {
				return nil, fmt.Errorf("%s: %s: %w", where, reason, ErrUnavailable)
			}
			return nil, fmt.Errorf("%s: %s", where, reason)
		}
		if status == http.StatusNotFound {
			if vaultDeletedVersion(body) {
				return nil, fmt.Errorf("%s: %w", where, errVaultVersionDeleted)
			}
			return nil, fmt.Errorf("%s: no secret at keyPath (404)", where)
		}
		sk, err := vaultSecretKey(body, h.keyName, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return sk, nil
	}, nil
}

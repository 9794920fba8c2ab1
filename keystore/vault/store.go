package vault

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
	"github.com/vigil-signer/vigil/keystore"
)

// Store is a keystore.Store over a HashiCorp Vault KV version 2 engine (`vigil keys import
// --to vault`, `serve` with a Vault source).
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
//     the others get keystore.ErrDuplicate. A secret whose current version was soft-deleted
//     (`vault kv delete`) still exists for this purpose: Put reports keystore.ErrDuplicate.
//   - Delete removes the secret's metadata and every version (`vault kv metadata delete`);
//     keystore.ErrNotFound when there is no secret. Two concurrent Deletes of one key may both
//     succeed.
//   - List is a LIST of <Mount>/metadata/<Prefix>: it reads no secret. Sub-folders are ignored;
//     entries whose name is not a lowercase 0x-prefixed public key are left out of List and
//     reported by Load as LoadErrors (so a misplaced secret is visible in health reports).
//   - Load lists, then reads every secret on Workers goroutines. A secret that is not a usable key
//     (field missing, not a string, not hex, wrong length, zero or not below the curve order,
//     current version deleted or destroyed, or a secret key whose public key differs from the
//     secret's name: keystore.ErrPubkeyMismatch) is one keystore.LoadError with Item
//     "vault:<Mount>/<Prefix>/<name>" and Pubkey the name's public key (zero for a deleted
//     version, so that a reload drops the key); the other keys still load. A secret that disappears between the LIST and its read is
//     skipped. Keys come back in public-key byte order, as *keystore.LocalKey.
//   - Whole-source failures (Vault unreachable, TLS failure, sealed, standby without forwarding,
//     token invalid, expired or revoked, permission denied on the LIST, mount missing or not KV
//     version 2) make Load, List, Put, Delete and Ping return an error wrapping
//     keystore.ErrUnavailable that names the Vault address, the request and the reason. A failure of that kind in the
//     middle of a Load aborts the Load (the keys built so far are zeroed). Retrying later may
//     succeed: the store needs no reopening after Vault is unsealed or comes back.
//   - Authentication: a token, or AppRole (login at auth/<AppRoleMount>/login). A renewable
//     token is renewed by an api.LifetimeWatcher for the store's lifetime; when an AppRole token
//     can no longer be renewed (max TTL) or a request gets 403 with it, the store logs in again.
//     A plain token that reaches its max TTL cannot be replaced: the failure is logged, and
//     later calls return keystore.ErrUnavailable ("token invalid, expired or revoked"). Close
//     stops the renewal and revokes a token the store obtained by AppRole login.
//   - The client ignores the VAULT_* environment variables (VAULT_TOKEN, VAULT_NAMESPACE,
//     VAULT_SKIP_VERIFY, …): everything comes from Config. Standard HTTP(S)_PROXY variables
//     are honoured.
//
// Secret hygiene: errors, logs and LoadErrors name addresses, paths and Vault's own error
// messages, never the token, the AppRole secret ID or a secret key. Secret responses are read
// into buffers that are zeroed after the key is built, and decoded without turning the secret
// into a Go string; the request body of a Put is zeroed after the request. Not wiped (outside
// this package's reach): the HTTP and TLS layers' internal buffers, and the token and secret ID
// strings of Config.
//
// Concurrency: all methods are safe for concurrent use. Close must be called once the store is
// no longer needed (it stops the token-renewal goroutine); it is safe to call twice.
type Store struct {
	cfg    Config
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

// Open connects to Vault, authenticates and checks that cfg.Mount is a KV version 2 engine
// the credentials can use. Failures to reach or use Vault (unreachable, TLS, sealed, login or
// token refused, mount missing) wrap keystore.ErrUnavailable. Close the store when done.
func Open(ctx context.Context, cfg Config) (*Store, error) {
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
	s := &Store{cfg: cfg, client: client, log: log, done: make(chan struct{})}
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

// Name implements keystore.Source.
func (s *Store) Name() string { return "vault" }

// Close stops token renewal and revokes a token obtained by AppRole login. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		s.revokeLogin()
	})
	return nil
}

// RenewalError returns the last failure to renew the token or to log in again, nil while
// renewal works (or is not needed). Health reports can show it before the token expires.
func (s *Store) RenewalError() error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.renewErr
}

// Ping checks that Vault is reachable, initialized and unsealed, and that the token is valid.
// Its errors wrap keystore.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
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
func (s *Store) secretPath(kind, name string) string {
	return s.cfg.Mount + "/" + kind + "/" + s.cfg.Prefix + "/" + name
}

// item names a secret in LoadErrors: "vault:<mount>/<prefix>/<name>".
func (s *Store) item(name string) string {
	return "vault:" + s.cfg.Mount + "/" + s.cfg.Prefix + "/" + name
}

// Put implements keystore.Store.
func (s *Store) Put(ctx context.Context, sk *keystore.SecretKey) error {
	pub := sk.PublicKey()
	path := s.secretPath("data", pub.String())
	field, _ := json.Marshal(s.cfg.Field) // a string always marshals
	const head, tail = `{"options":{"cas":0},"data":{`, `"}}`
	// Sized exactly, so that no append leaves a partial copy behind.
	body := make([]byte, 0, len(head)+len(field)+len(`:"0x`)+64+len(tail))
	defer func() { clear(body) }()
	body = append(body, head...)
	body = append(body, field...)
	body = append(body, `:"0x`...)
	b := sk.Bytes()
	body = hex.AppendEncode(body, b)
	clear(b)
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
			return fmt.Errorf("%s: %w", s.item(pub.String()), keystore.ErrDuplicate)
		}
	}
	return s.failure(ctx, "PUT "+path, err)
}

// exists reports whether the metadata of a secret exists.
func (s *Store) exists(ctx context.Context, name string) (bool, error) {
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

// Delete implements keystore.Store.
func (s *Store) Delete(ctx context.Context, pub keystore.PublicKey) error {
	exists, err := s.exists(ctx, pub.String())
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%s: %w", s.item(pub.String()), keystore.ErrNotFound)
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

// List implements keystore.Store.
func (s *Store) List(ctx context.Context) ([]keystore.PublicKey, error) {
	entries, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var pubs []keystore.PublicKey
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
	pub  keystore.PublicKey
	err  error
}

// list LISTs the prefix: entries sorted by public key (non-key names last, by name), folders
// left out. An empty or absent folder is checked against the mount (a missing mount also lists
// as nothing).
func (s *Store) list(ctx context.Context) ([]vaultEntry, error) {
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
		var pub keystore.PublicKey
		err := keystore.ErrMalformed
		if len(n) == 2+2*len(pub) && strings.HasPrefix(n, "0x") {
			_, err = hex.Decode(pub[:], []byte(n[2:]))
		}
		switch {
		case err != nil:
			e.err = fmt.Errorf("%w (%w): secret name is not a 0x-prefixed BLS public key (Vigil reads only secrets named 0x<96 hex digits> under %s/%s)", keystore.ErrMalformed, keystore.ErrStrayItem, s.cfg.Mount, s.cfg.Prefix)
		case pub.String() != n:
			e.err = fmt.Errorf("%w (%w): secret name is not in lowercase hex (want %s)", keystore.ErrMalformed, keystore.ErrStrayItem, pub)
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
func (s *Store) checkMount(ctx context.Context) error {
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

// Load implements keystore.Source.
func (s *Store) Load(ctx context.Context) (keystore.LoadResult, error) {
	entries, err := s.list(ctx)
	if err != nil {
		return keystore.LoadResult{}, err
	}
	// A failure of Vault itself (not of one secret) cancels the whole load with its cause.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var forbidden sync.Once // the first 403 of a read checks the token once
	var tokenErr error
	jobs := make([]keystore.LoadJob, len(entries))
	for i, e := range entries {
		jobs[i] = keystore.LoadJob{Item: s.item(e.name), Load: func() (*keystore.SecretKey, error) {
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
				return nil, keystore.ErrSkipItem
			case errors.Is(itemErr, errVaultVersionDeleted), sk == nil && itemErr == nil:
				// `vault kv delete` (current version soft-deleted or destroyed), or gone since the
				// LIST: the operator deleted the key, so it is absent.
				return nil, keystore.ErrSkipItem
			}
			return sk, keystore.WithPubkey(e.pub, itemErr)
		}}
	}
	return keystore.RunLoadJobs(ctx, s.cfg.Workers, jobs)
}

// readKey reads and checks one secret. itemErr is a problem of this secret; fatal one of Vault or
// the token (it aborts the Load); both nil and sk nil when the secret vanished.
func (s *Store) readKey(ctx context.Context, e vaultEntry) (sk *keystore.SecretKey, itemErr, fatal error) {
	path := s.secretPath("data", e.name)
	var body []byte
	var status int
	err := s.call(ctx, func() error {
		clear(body)
		var err error
		body, status, err = s.rawGet(ctx, "/v1/"+path, "")
		return err
	})
	defer clear(body)
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
		return nil, fmt.Errorf("%w: the secret key's public key is %s", keystore.ErrPubkeyMismatch, sk.PublicKey()), nil
	}
	return sk, nil, nil
}

var _ keystore.Store = (*Store)(nil)

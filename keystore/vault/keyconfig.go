package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/vigil-signer/vigil/keystore"
)

// KeyConfigLoader reads Web3Signer `type: hashicorp` key-config documents for
// keystore.ConfigSource (register it in keystore.KeyConfig.Loaders under
// keystore.KeyConfigHashicorp): one secret read from HashiCorp Vault per document.
//
//	type: hashicorp
//	serverHost: vault.example   # required
//	serverPort: 8200            # default 8200
//	keyPath: /v1/secret/data/validator_1    # required; KV v2 (data.data) or KV v1 (data)
//	keyName: value              # the secret's field holding the hex key; default "value"
//	token: hvs.…                # required (authMethod TOKEN, the default)
//	timeout: 10000              # per request, in ms; default 10000
//	tlsEnabled: true            # default false (http)
//	tlsKnownServersPath: known_servers      # optional: "<host>:<port> <sha256 fingerprint>" lines
//	tlsCaFile: vault-ca.pem     # optional, not in Web3Signer: a PEM CA bundle to trust
//
// Rules:
//   - The secret is read with the token at Load (each document is one request; documents for
//     the same server share connections). Relative paths resolve against the key-config
//     directory.
//   - Without tlsKnownServersPath or tlsCaFile, TLS trusts the system roots. With
//     tlsKnownServersPath (Web3Signer's allowlist) the server must be listed under
//     serverHost:serverPort with the SHA-256 fingerprint of its certificate; CA signatures are
//     then not consulted. TLS settings with tlsEnabled false are an error, never silently
//     ignored.
//   - httpProtocolVersion (HTTP_2 or HTTP_1_1) is accepted; the protocol is negotiated.
//     authMethod KUBERNETES is not supported (a LoadError wrapping
//     keystore.ErrUnsupportedKeyConfig).
//   - Errors name the server and keyPath, never the token or the secret; an unreachable or
//     sealed Vault, or a refused token, wraps keystore.ErrUnavailable. A bad field is a
//     *keystore.MalformedError naming it.
//
// The zero value is ready to use; it is safe for concurrent use. One loader caches the API
// clients of one key-config directory (give each ConfigSource its own).
type KeyConfigLoader struct {
	clients vaultClients
}

// NewKeyConfigLoader returns a loader of hashicorp documents.
func NewKeyConfigLoader() *KeyConfigLoader { return &KeyConfigLoader{} }

// hashicorpFields are the fields of a hashicorp document.
var hashicorpFields = []string{
	"serverHost", "serverPort", "keyPath", "keyName",
	"token", "timeout", "tlsEnabled", "tlsKnownServersPath",
	"tlsCaFile", "httpProtocolVersion", "authMethod",
}

// Fields implements keystore.KeyConfigLoader.
func (l *KeyConfigLoader) Fields() []string { return hashicorpFields }

// Loader implements keystore.KeyConfigLoader: it checks a hashicorp document and returns the
// function that reads its key.
func (l *KeyConfigLoader) Loader(d keystore.KeyConfigDoc, resolve func(string) string) (func() (*keystore.SecretKey, error), error) {
	return l.clients.hashicorpKeyLoader(d, resolve)
}

var _ keystore.KeyConfigLoader = (*KeyConfigLoader)(nil)

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
func parseHashicorpDoc(d keystore.KeyConfigDoc, resolve func(string) string) (*hashicorpDoc, error) {
	get := func(name string) string { v, _ := d.Get(name); return strings.TrimSpace(v) }
	h := &hashicorpDoc{keyName: "value", timeout: 10 * time.Second}

	host := get("serverHost")
	if host == "" {
		return nil, &keystore.MalformedError{Field: "serverHost", Reason: "missing"}
	}
	if strings.ContainsAny(host, "/?#@ \t") {
		return nil, &keystore.MalformedError{Field: "serverHost", Reason: "must be a host name or IP address (no scheme, port or path)"}
	}
	port := "8200"
	if p := get("serverPort"); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, &keystore.MalformedError{Field: "serverPort", Reason: "must be a port number (1-65535)"}
		}
		port = p
	}
	h.keyPath = get("keyPath")
	switch {
	case h.keyPath == "":
		return nil, &keystore.MalformedError{Field: "keyPath", Reason: "missing"}
	case !strings.HasPrefix(h.keyPath, "/v1/") || strings.ContainsAny(h.keyPath, "?# \t") || strings.Contains(h.keyPath, "/../") || strings.HasSuffix(h.keyPath, "/.."):
		return nil, &keystore.MalformedError{Field: "keyPath", Reason: "must be an absolute Vault API path such as /v1/secret/data/<name>"}
	}
	if v, ok := d.Get("keyName"); ok && strings.TrimSpace(v) != "" {
		h.keyName = strings.TrimSpace(v)
	}
	if t := get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 32)
		if err != nil || ms < 1 {
			return nil, &keystore.MalformedError{Field: "timeout", Reason: "must be a positive number of milliseconds"}
		}
		h.timeout = time.Duration(ms) * time.Millisecond
	}
	if v := get("httpProtocolVersion"); v != "" && !strings.EqualFold(v, "HTTP_2") && !strings.EqualFold(v, "HTTP_1_1") {
		return nil, &keystore.MalformedError{Field: "httpProtocolVersion", Reason: "must be HTTP_2 or HTTP_1_1"}
	}
	switch m := strings.ToUpper(get("authMethod")); m {
	case "", "TOKEN":
	case "KUBERNETES":
		return nil, fmt.Errorf("%w: hashicorp authMethod KUBERNETES is not supported (use TOKEN, or the Vault key source with AppRole)", keystore.ErrUnsupportedKeyConfig)
	default:
		return nil, &keystore.MalformedError{Field: "authMethod", Reason: "must be TOKEN"}
	}
	h.token = get("token")
	if h.token == "" {
		return nil, &keystore.MalformedError{Field: "token", Reason: "missing (required for authMethod TOKEN)"}
	}

	tlsOn := false
	switch v := strings.ToLower(get("tlsEnabled")); v {
	case "", "false":
	case "true":
		tlsOn = true
	default:
		return nil, &keystore.MalformedError{Field: "tlsEnabled", Reason: "must be true or false"}
	}
	known, caFile := get("tlsKnownServersPath"), get("tlsCaFile")
	if !tlsOn && (known != "" || caFile != "") {
		return nil, &keystore.MalformedError{Field: "tlsEnabled", Reason: "is false but TLS settings (tlsKnownServersPath, tlsCaFile) are given"}
	}
	if known != "" && caFile != "" {
		return nil, &keystore.MalformedError{Field: "tlsCaFile", Reason: "cannot be combined with tlsKnownServersPath"}
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
			return nil, &keystore.MalformedError{Field: "tlsKnownServersPath", Reason: fmt.Sprintf("%s line %d: want \"<host>:<port> <sha256 fingerprint>\"", path, i+1)}
		}
		fp, err := hex.DecodeString(strings.ReplaceAll(f[1], ":", ""))
		if err != nil || len(fp) != sha256.Size {
			return nil, &keystore.MalformedError{Field: "tlsKnownServersPath", Reason: fmt.Sprintf("%s line %d: the fingerprint is not 32 bytes of hex", path, i+1)}
		}
		if strings.EqualFold(f[0], want) || strings.EqualFold(f[0], host+":"+port) {
			pins = append(pins, fp)
		}
	}
	if len(pins) == 0 {
		return nil, &keystore.MalformedError{Field: "tlsKnownServersPath", Reason: fmt.Sprintf("%s lists no fingerprint for %s", path, want)}
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
func (vc *vaultClients) hashicorpKeyLoader(d keystore.KeyConfigDoc, resolve func(string) string) (func() (*keystore.SecretKey, error), error) {
	h, err := parseHashicorpDoc(d, resolve)
	if err != nil {
		return nil, err
	}
	return func() (*keystore.SecretKey, error) {
		c, err := vc.get(h)
		if err != nil {
			return nil, err
		}
		where := "vault at " + h.address + ": GET " + h.keyPath
		body, status, err := vaultRawGet(context.Background(), c, h.keyPath, h.token)
		defer clear(body)
		if err != nil {
			reason := vaultReason(err)
			switch vaultStatus(err) {
			case http.StatusForbidden:
				reason = "permission denied (token invalid, expired or revoked, or no read access to keyPath)"
			case http.StatusServiceUnavailable:
				reason = "Vault is sealed or unavailable (" + reason + ")"
			}
			if vaultStatus(err) == 0 || vaultStatus(err) >= 500 || vaultStatus(err) == http.StatusForbidden || vaultStatus(err) == http.StatusTooManyRequests {
				return nil, fmt.Errorf("%s: %s: %w", where, reason, keystore.ErrUnavailable)
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

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := readAllInto(make([]byte, 0, 512), io.LimitReader(f, limit+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		clear(b)
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

package keystore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// ConfigSource loads a Web3Signer key-config directory (--key-config-path):
// YAML files (".yaml" or ".yml", any case; subdirectories are not entered),
// each holding one or more documents separated by "---", one key per document:
//
//	type: file-raw              # the secret in the file itself
//	keyType: BLS                # optional; BLS is the only key type supported
//	privateKey: "0x<64 hex digits>"
//	---
//	type: file-keystore         # an EIP-2335 keystore
//	keystoreFile: validator_1.json          # relative paths resolve against
//	keystorePasswordFile: validator_1.txt   # the key-config directory
//	---
//	type: hashicorp             # one secret read from HashiCorp Vault
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
//   - The password of a file-keystore is the first line of its password file
//     (without the "\n" or "\r\n" ending it).
//   - hashicorp: the secret is read with the token at Load (each document is
//     one request; documents for the same server share connections). Without
//     tlsKnownServersPath or tlsCaFile, TLS trusts the system roots. With
//     tlsKnownServersPath (Web3Signer's allowlist) the server must be listed
//     under serverHost:serverPort with the SHA-256 fingerprint of its
//     certificate; CA signatures are then not consulted. TLS settings with
//     tlsEnabled false are an error, never silently ignored.
//     httpProtocolVersion (HTTP_2 or HTTP_1_1) is accepted; the protocol is
//     negotiated. authMethod KUBERNETES is not supported (a LoadError).
//     Errors name the server and keyPath, never the token or the secret; an
//     unreachable or sealed Vault, or a refused token, wraps ErrUnavailable.
//   - Any other type (aws-secret, azure-secret, …), a missing or unparsable
//     field, an unreadable file, invalid YAML or a file larger than 1 MiB is a
//     LoadError whose Item is the YAML file's path (the message says which
//     document); it never stops the other files. Unknown fields are ignored.
//   - Keystores are decrypted, and Vault secrets read, in parallel (Workers,
//     default GOMAXPROCS). A reload decrypts only keystores whose file bytes or
//     password changed (decryptCache, as DirSource).
//   - Duplicate public keys: the first in (file name, document) order wins.
//   - Keys are *LocalKey. YAML error messages are never quoted (they can
//     contain source lines, hence a private key); only positions are reported.
//   - The file buffer is zeroed after parsing. The YAML parser's own copies of
//     a raw privateKey or a Vault token are Go strings and cannot be wiped:
//     prefer keystores, or Vault with a short-lived token.
type ConfigSource struct {
	cfg   KeyConfig
	vault vaultClients // Vault API clients of hashicorp documents, by server

	mu    sync.Mutex // one Load at a time (the keystore cache is rebuilt by each)
	cache decryptCache
}

// KeyConfig configures a ConfigSource.
type KeyConfig struct {
	// Path is the key-config directory (--key-config-path).
	Path string
	// Workers bounds parallel keystore decryption; 0 means runtime.GOMAXPROCS(0).
	Workers int
}

// Validate checks the configuration without touching the file system.
func (c KeyConfig) Validate() error {
	if c.Path == "" {
		return errors.New("key config: --key-config-path is required")
	}
	if c.Workers < 0 {
		return fmt.Errorf("key config: workers must be ≥ 0, got %d", c.Workers)
	}
	return nil
}

// NewConfigSource validates cfg and returns the source. Nothing is read until Load.
func NewConfigSource(cfg KeyConfig) (*ConfigSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &ConfigSource{cfg: cfg}, nil
}

// Name implements Source.
func (s *ConfigSource) Name() string { return "key-config" }

// Key-config types.
const (
	KeyConfigFileRaw      = "file-raw"
	KeyConfigFileKeystore = "file-keystore"
	KeyConfigHashicorp    = "hashicorp"
)

// ErrUnsupportedKeyConfig: a key-config document has a type (aws-secret,
// azure-secret, …) or an option (hashicorp authMethod KUBERNETES) this build
// does not load.
var ErrUnsupportedKeyConfig = errors.New("unsupported key config type")

// maxKeyConfigSize bounds one key-config YAML file.
const maxKeyConfigSize = 1 << 20

// Load implements Source.
func (s *ConfigSource) Load(ctx context.Context) (LoadResult, error) {
	files, err := listFiles(s.cfg.Path, ".yaml", ".yml")
	if err != nil {
		return LoadResult{}, fmt.Errorf("key config: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.begin()
	defer s.cache.end()
	var jobs []loadJob
	for _, name := range files {
		path := filepath.Join(s.cfg.Path, name)
		docs, err := readKeyConfigFile(path)
		if err != nil {
			jobs = append(jobs, failedJob(path, err))
			continue
		}
		for _, d := range docs {
			var load func() (*SecretKey, error)
			err := d.err
			if err == nil {
				load, err = s.keyLoader(d)
			}
			if len(docs) > 1 {
				load, err = inDocument(d.n, load, err)
			}
			if err != nil {
				jobs = append(jobs, failedJob(path, err))
				continue
			}
			jobs = append(jobs, loadJob{item: path, load: load})
		}
	}
	return runJobs(ctx, s.cfg.Workers, jobs)
}

// inDocument prefixes the errors of document n (1-based) of a multi-document file.
func inDocument(n int, load func() (*SecretKey, error), err error) (func() (*SecretKey, error), error) {
	if err != nil {
		return nil, fmt.Errorf("document %d: %w", n, err)
	}
	return func() (*SecretKey, error) {
		sk, err := load()
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		return sk, nil
	}, nil
}

func failedJob(item string, err error) loadJob {
	return loadJob{item: item, load: func() (*SecretKey, error) { return nil, err }}
}

// keyConfigDoc is one YAML document reduced to the scalar fields this package
// reads; an absent (or null) field has no entry. err is set when the document
// itself is unusable (the file's other documents still load).
type keyConfigDoc struct {
	n      int // 1-based position of the document in its file
	fields map[string]string
	err    error
}

func (d keyConfigDoc) get(name string) (string, bool) {
	v, ok := d.fields[name]
	return v, ok
}

// keyLoader checks one document and returns the function that builds its key.
func (s *ConfigSource) keyLoader(d keyConfigDoc) (func() (*SecretKey, error), error) {
	typ, ok := d.get("type")
	if !ok || typ == "" {
		return nil, &MalformedError{Field: "type", Reason: "missing (want file-raw, file-keystore or hashicorp)"}
	}
	if kt, ok := d.get("keyType"); ok && !strings.EqualFold(kt, "BLS") {
		return nil, &MalformedError{Field: "keyType", Reason: fmt.Sprintf("unsupported key type %q (only BLS)", truncate(kt, 40))}
	}
	switch strings.ToLower(typ) {
	case KeyConfigFileRaw:
		priv, ok := d.get("privateKey")
		if !ok {
			return nil, &MalformedError{Field: "privateKey", Reason: "missing"}
		}
		if err := checkRawKeyHex(priv); err != nil {
			return nil, err
		}
		return func() (*SecretKey, error) { return rawSecretKey(priv) }, nil
	case KeyConfigFileKeystore:
		ksFile, ok := d.get("keystoreFile")
		if !ok || ksFile == "" {
			return nil, &MalformedError{Field: "keystoreFile", Reason: "missing"}
		}
		pwFile, ok := d.get("keystorePasswordFile")
		if !ok || pwFile == "" {
			return nil, &MalformedError{Field: "keystorePasswordFile", Reason: "missing"}
		}
		ksPath, pwPath := s.resolve(ksFile), s.resolve(pwFile)
		return func() (*SecretKey, error) {
			data, err := readLimited(ksPath, maxKeystoreSize)
			if err != nil {
				return nil, fmt.Errorf("keystoreFile: %w", err)
			}
			ks, err := ParseKeystore(data)
			if err != nil {
				return nil, fmt.Errorf("keystoreFile: %w", err)
			}
			pw, err := readPasswordFirstLine(pwPath)
			if err != nil {
				return nil, fmt.Errorf("keystorePasswordFile: %w", err)
			}
			defer zero(pw)
			sk, err := s.cache.decrypt(ksPath, data, pw, ks)
			if err != nil {
				return nil, withPubkey(ks.PublicKey, fmt.Errorf("keystore %s: %w", ksPath, err))
			}
			return sk, nil
		}, nil
	case KeyConfigHashicorp:
		return s.vault.hashicorpKeyLoader(d, s.resolve)
	default:
		return nil, fmt.Errorf("%w %q (supported: file-raw, file-keystore, hashicorp)", ErrUnsupportedKeyConfig, truncate(typ, 40))
	}
}

func (s *ConfigSource) resolve(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.cfg.Path, p)
}

// checkRawKeyHex validates the shape of a raw private key without quoting it.
func checkRawKeyHex(s string) error {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(h) != 64 {
		return &MalformedError{Field: "privateKey", Reason: fmt.Sprintf("has %d hex digits, want 64 (0x followed by 32 bytes)", len(h))}
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return &MalformedError{Field: "privateKey", Reason: "not hex"}
		}
	}
	return nil
}

// rawSecretKey decodes a checked 0x-hex private key and zeroes the bytes.
func rawSecretKey(s string) (*SecretKey, error) {
	var b [32]byte
	defer zero(b[:])
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return nil, &MalformedError{Field: "privateKey", Reason: "not hex"}
	}
	sk, err := NewSecretKey(b[:])
	if err != nil {
		return nil, fmt.Errorf("privateKey: %w", err)
	}
	return sk, nil
}

// readKeyConfigFile reads one YAML file into its non-empty documents.
func readKeyConfigFile(path string) ([]keyConfigDoc, error) {
	data, err := readLimited(path, maxKeyConfigSize)
	if err != nil {
		return nil, err
	}
	defer zero(data)
	return parseKeyConfig(data)
}

// yamlPos extracts the "[line:column]" position go-yaml puts at the start of
// its messages; the rest of a go-yaml message may quote the source.
var yamlPos = regexp.MustCompile(`\[(\d+):(\d+)\]`)

func yamlError(err error) error {
	if m := yamlPos.FindStringSubmatch(err.Error()); m != nil {
		return &MalformedError{Reason: fmt.Sprintf("invalid YAML at line %s, column %s", m[1], m[2])}
	}
	return &MalformedError{Reason: "invalid YAML"}
}

// parseKeyConfig splits YAML into documents of scalar fields. Empty documents
// (only comments, or nothing between two "---") are skipped; a file without
// any document, or that is not valid YAML as a whole, is an error. A document
// that is not a mapping of scalar fields is returned with its err set.
func parseKeyConfig(data []byte) (docs []keyConfigDoc, err error) {
	defer func() {
		// The YAML parser is third-party code fed untrusted input.
		if r := recover(); r != nil {
			docs, err = nil, &MalformedError{Reason: "invalid YAML (parser failure)"}
		}
	}()
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(err)
	}
	for i, d := range f.Docs {
		body := d.Body
		for {
			inner, ok := body.(*ast.DocumentNode)
			if !ok {
				break
			}
			body = inner.Body
		}
		if body == nil {
			continue
		}
		doc, err := yamlFields(body)
		doc.n, doc.err = i+1, err
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, &MalformedError{Reason: "no key definition in file"}
	}
	return docs, nil
}

// yamlFields reads the top-level scalar fields of a mapping. Non-scalar
// values are recorded only when they belong to a field this package reads.
func yamlFields(body ast.Node) (keyConfigDoc, error) {
	var values []*ast.MappingValueNode
	switch b := body.(type) {
	case *ast.MappingNode:
		values = b.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{b}
	default:
		return keyConfigDoc{}, &MalformedError{Reason: "document is not a mapping of fields"}
	}
	doc := keyConfigDoc{fields: make(map[string]string, len(values))}
	for _, mv := range values {
		k, ok := mv.Key.(*ast.StringNode)
		if !ok {
			continue
		}
		name := k.Value
		if !knownKeyConfigField[name] {
			continue // unknown fields are ignored
		}
		if _, dup := doc.fields[name]; dup {
			return keyConfigDoc{}, &MalformedError{Field: name, Reason: "given twice"}
		}
		v, present, err := yamlScalar(mv.Value)
		if err != nil {
			return keyConfigDoc{}, &MalformedError{Field: name, Reason: err.Error()}
		}
		if present {
			doc.fields[name] = v
		}
	}
	return doc, nil
}

var knownKeyConfigField = map[string]bool{
	"type": true, "keyType": true, "privateKey": true,
	"keystoreFile": true, "keystorePasswordFile": true,
	// hashicorp
	"serverHost": true, "serverPort": true, "keyPath": true, "keyName": true,
	"token": true, "timeout": true, "tlsEnabled": true, "tlsKnownServersPath": true,
	"tlsCaFile": true, "httpProtocolVersion": true, "authMethod": true,
}

// yamlScalar returns the text of a scalar value as written (so an unquoted
// 0x… private key is not turned into a number). A null or empty value is
// "not present".
func yamlScalar(n ast.Node) (string, bool, error) {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "", false, nil
	case *ast.StringNode:
		return v.Value, true, nil
	case *ast.LiteralNode:
		return strings.TrimRight(v.Value.Value, "\n"), true, nil
	case ast.ScalarNode:
		return v.GetToken().Value, true, nil
	}
	return "", false, errors.New("must be a single value")
}

var _ Source = (*ConfigSource)(nil)

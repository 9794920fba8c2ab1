package keystore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
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
//	…                           # (fields: see keystore/vault.KeyConfigLoader)
//
// Rules:
//   - The password of a file-keystore is the first line of its password file
//     (without the "\n" or "\r\n" ending it).
//   - Other types are read by the KeyConfigLoader registered for them in
//     KeyConfig.Loaders: cmd/vigil registers keystore/vault's for hashicorp,
//     which keeps the Vault client out of this package. The loader is given
//     the document's type-specific fields (those it lists in Fields) and its
//     errors become the document's LoadErrors, as for the built-in types.
//   - Any other type (aws-secret, azure-secret, …), a missing or unparsable
//     field, an unreadable file, invalid YAML or a file larger than 1 MiB is a
//     LoadError whose Item is the YAML file's path (the message says which
//     document); it never stops the other files. Unknown fields are ignored.
//   - Keystores are decrypted, and the keys of loaders read (Vault secrets),
//     in parallel (Workers, default GOMAXPROCS). A reload decrypts only
//     keystores whose file bytes or password changed (decryptCache, as
//     DirSource).
//   - Duplicate public keys: the first in (file name, document) order wins.
//   - Keys are *LocalKey. YAML error messages are never quoted (they can
//     contain source lines, hence a private key); only positions are reported.
//   - The file buffer is zeroed after parsing. The YAML parser's own copies of
//     a raw privateKey or a Vault token are Go strings and cannot be wiped:
//     prefer keystores, or Vault with a short-lived token.
type ConfigSource struct {
	cfg    KeyConfig
	fields map[string]bool // the document fields read: the built-in ones and the loaders'
	types  []string        // the supported types: the built-in ones, then the loaders' (sorted)

	mu    sync.Mutex // one Load at a time (the keystore cache is rebuilt by each)
	cache decryptCache
}

// KeyConfig configures a ConfigSource.
type KeyConfig struct {
	// Path is the key-config directory (--key-config-path).
	Path string
	// Workers bounds parallel keystore decryption; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Loaders reads the key-config types this package does not know itself, by type name in
	// lower case (matched case-insensitively): cmd/vigil sets KeyConfigHashicorp to
	// keystore/vault's loader. A document of a type with no loader is a LoadError wrapping
	// ErrUnsupportedKeyConfig.
	Loaders map[string]KeyConfigLoader
}

// KeyConfigLoader loads the documents of one key-config type that ConfigSource does not read
// itself (keystore/vault.KeyConfigLoader reads type hashicorp).
type KeyConfigLoader interface {
	// Fields names the document fields the loader reads, besides type and keyType (which
	// ConfigSource checks). Other fields are not in the KeyConfigDoc the loader is given.
	Fields() []string
	// Loader checks one document when the directory is loaded and returns the function that
	// builds its key; that function runs on a worker goroutine, concurrently with other
	// documents' (of any loader). Either error becomes the document's LoadError: it names
	// fields and servers, never a secret. resolve turns a path given in the document into one
	// that is relative to the key-config directory (absolute paths are kept).
	Loader(doc KeyConfigDoc, resolve func(path string) string) (func() (*SecretKey, error), error)
}

// Validate checks the configuration without touching the file system.
func (c KeyConfig) Validate() error {
	if c.Path == "" {
		return errors.New("key config: --key-config-path is required")
	}
	if c.Workers < 0 {
		return fmt.Errorf("key config: workers must be ≥ 0, got %d", c.Workers)
	}
	for typ, l := range c.Loaders {
		switch {
		case typ == "" || typ != strings.ToLower(typ):
			return fmt.Errorf("key config: loader type %q: must be a lower-case type name", truncate(typ, 40))
		case typ == KeyConfigFileRaw || typ == KeyConfigFileKeystore:
			return fmt.Errorf("key config: loader type %q: built in, cannot be replaced", typ)
		case l == nil:
			return fmt.Errorf("key config: loader type %q: nil loader", typ)
		}
	}
	return nil
}

// NewConfigSource validates cfg and returns the source. Nothing is read until Load.
func NewConfigSource(cfg KeyConfig) (*ConfigSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &ConfigSource{cfg: cfg, fields: maps.Clone(builtinKeyConfigFields)}
	for _, typ := range slices.Sorted(maps.Keys(cfg.Loaders)) {
		s.types = append(s.types, typ)
		for _, f := range cfg.Loaders[typ].Fields() {
			s.fields[f] = true
		}
	}
	s.types = append([]string{KeyConfigFileRaw, KeyConfigFileKeystore}, s.types...)
	return s, nil
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
// azure-secret, …, or one without a registered KeyConfigLoader) or an option
// (hashicorp authMethod KUBERNETES) this build does not load.
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
		docs, err := readKeyConfigFile(path, s.fields)
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

// KeyConfigDoc is one YAML document of a key-config file reduced to the scalar
// fields the source reads (the built-in ones and the loaders' Fields); an
// absent (or null) field has no entry. Values are the text as written (an
// unquoted 0x… is not turned into a number; a literal block loses its
// trailing newlines).
type KeyConfigDoc struct {
	n      int // 1-based position of the document in its file
	fields map[string]string
	err    error // set when the document itself is unusable (the file's other documents still load)
}

// Get returns the value of a field and whether the document has it.
func (d KeyConfigDoc) Get(name string) (string, bool) {
	v, ok := d.fields[name]
	return v, ok
}

// keyLoader checks one document and returns the function that builds its key.
func (s *ConfigSource) keyLoader(d KeyConfigDoc) (func() (*SecretKey, error), error) {
	typ, ok := d.Get("type")
	if !ok || typ == "" {
		want := strings.Join(s.types[:len(s.types)-1], ", ") + " or " + s.types[len(s.types)-1]
		return nil, &MalformedError{Field: "type", Reason: "missing (want " + want + ")"}
	}
	if kt, ok := d.Get("keyType"); ok && !strings.EqualFold(kt, "BLS") {
		return nil, &MalformedError{Field: "keyType", Reason: fmt.Sprintf("unsupported key type %q (only BLS)", truncate(kt, 40))}
	}
	switch strings.ToLower(typ) {
	case KeyConfigFileRaw:
		priv, ok := d.Get("privateKey")
		if !ok {
			return nil, &MalformedError{Field: "privateKey", Reason: "missing"}
		}
		if err := checkRawKeyHex(priv); err != nil {
			return nil, err
		}
		return func() (*SecretKey, error) { return rawSecretKey(priv) }, nil
	case KeyConfigFileKeystore:
		ksFile, ok := d.Get("keystoreFile")
		if !ok || ksFile == "" {
			return nil, &MalformedError{Field: "keystoreFile", Reason: "missing"}
		}
		pwFile, ok := d.Get("keystorePasswordFile")
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
	default:
		if l, ok := s.cfg.Loaders[strings.ToLower(typ)]; ok {
			return l.Loader(d, s.resolve)
		}
		return nil, fmt.Errorf("%w %q (supported: %s)", ErrUnsupportedKeyConfig, truncate(typ, 40), strings.Join(s.types, ", "))
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

// readKeyConfigFile reads one YAML file into its non-empty documents, keeping
// the given fields.
func readKeyConfigFile(path string, fields map[string]bool) ([]KeyConfigDoc, error) {
	data, err := readLimited(path, maxKeyConfigSize)
	if err != nil {
		return nil, err
	}
	defer zero(data)
	return parseKeyConfigFields(data, fields)
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

// parseKeyConfig is parseKeyConfigFields with the built-in fields only.
func parseKeyConfig(data []byte) ([]KeyConfigDoc, error) {
	return parseKeyConfigFields(data, builtinKeyConfigFields)
}

// parseKeyConfigFields splits YAML into documents of scalar fields, keeping
// the fields named in known. Empty documents (only comments, or nothing
// between two "---") are skipped; a file without any document, or that is not
// valid YAML as a whole, is an error. A document that is not a mapping of
// scalar fields is returned with its err set.
func parseKeyConfigFields(data []byte, known map[string]bool) (docs []KeyConfigDoc, err error) {
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
		doc, err := yamlFields(body, known)
		doc.n, doc.err = i+1, err
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, &MalformedError{Reason: "no key definition in file"}
	}
	return docs, nil
}

// yamlFields reads the top-level scalar fields of a mapping that are named in
// known; other fields are ignored (a non-scalar value is an error only for a
// field in known).
func yamlFields(body ast.Node, known map[string]bool) (KeyConfigDoc, error) {
	var values []*ast.MappingValueNode
	switch b := body.(type) {
	case *ast.MappingNode:
		values = b.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{b}
	default:
		return KeyConfigDoc{}, &MalformedError{Reason: "document is not a mapping of fields"}
	}
	doc := KeyConfigDoc{fields: make(map[string]string, len(values))}
	for _, mv := range values {
		k, ok := mv.Key.(*ast.StringNode)
		if !ok {
			continue
		}
		name := k.Value
		if !known[name] {
			continue // unknown fields are ignored
		}
		if _, dup := doc.fields[name]; dup {
			return KeyConfigDoc{}, &MalformedError{Field: name, Reason: "given twice"}
		}
		v, present, err := yamlScalar(mv.Value)
		if err != nil {
			return KeyConfigDoc{}, &MalformedError{Field: name, Reason: err.Error()}
		}
		if present {
			doc.fields[name] = v
		}
	}
	return doc, nil
}

// builtinKeyConfigFields are the fields of the built-in types (and of every
// document: type, keyType).
var builtinKeyConfigFields = map[string]bool{
	"type": true, "keyType": true, "privateKey": true,
	"keystoreFile": true, "keystorePasswordFile": true,
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

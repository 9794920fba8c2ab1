package keystore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/vigil-signer/vigil/internal/jsonfield"
	"github.com/vigil-signer/vigil/internal/strictjson"
)

// EIP-2335 (BLS12-381 keystore, version 4).
//
// Decryption of a keystore with password P:
//
//	P'       = NormalizePassword(P)
//	DK       = KDF(P', salt, dklen = 32)                 // scrypt or pbkdf2-hmac-sha256
//	checksum = SHA256(DK[16:32] || cipher.message)       // must equal crypto.checksum.message
//	secret   = AES-128-CTR(key = DK[0:16], iv).decrypt(cipher.message)
//
// Invariants of this file:
//   - ParseKeystore never runs the KDF and never allocates more than a small
//     multiple of its input; every field is checked there (supported function
//     names, dklen = 32, hex lengths, KDF cost limits), so Decrypt can only fail
//     on the password, the secret's validity or the declared public key.
//   - Every rejection wraps ErrMalformed through a *MalformedError naming the
//     offending JSON field.
//   - Secrets and passwords never appear in errors. Password, derived key and
//     plaintext buffers are zeroed before Decrypt/Encrypt return.

// KeystoreVersion is the only keystore version supported.
const KeystoreVersion = 4

// Function names of the checksum and cipher modules and of the pbkdf2 PRF.
const (
	checksumSHA256 = "sha256"
	cipherAES128   = "aes-128-ctr"
	prfHMACSHA256  = "hmac-sha256"
)

// MalformedError is returned (wrapped or directly) for a key file that is not
// in a supported format. It unwraps to ErrMalformed.
type MalformedError struct {
	// Field is the offending field as a dotted JSON/YAML path, e.g.
	// "crypto.kdf.params.dklen"; empty when the document as a whole is bad
	// (not JSON, truncated).
	Field string
	// Reason says what is wrong. It never contains secret material.
	Reason string
}

func (e *MalformedError) Error() string {
	if e.Field == "" {
		return ErrMalformed.Error() + ": " + e.Reason
	}
	return ErrMalformed.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(field, format string, args ...any) error {
	return &MalformedError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Keystore is a parsed, validated EIP-2335 keystore. It holds only public and
// encrypted material and is safe for concurrent use (Decrypt does not modify it).
type Keystore struct {
	// PublicKey is the declared "pubkey", or nil when the keystore has none.
	PublicKey *PublicKey
	// Path is the EIP-2334 derivation path ("" when unknown).
	Path string
	// UUID and Description are informational and not validated.
	UUID        string
	Description string
	// KDF holds the key-derivation function and its parameters (read-only).
	KDF KDFParams

	checksum   []byte // 32 bytes
	iv         []byte // 16 bytes
	ciphertext []byte // 32 bytes
}

// JSON shapes. Pointers and RawMessage distinguish "missing" from "zero".
type jsonKeystore struct {
	Crypto      *jsonCrypto     `json:"crypto"`
	Description *string         `json:"description"`
	Pubkey      *string         `json:"pubkey"`
	Path        *string         `json:"path"`
	UUID        *string         `json:"uuid"`
	Version     json.RawMessage `json:"version"`
}

type jsonCrypto struct {
	KDF      *jsonModule `json:"kdf"`
	Checksum *jsonModule `json:"checksum"`
	Cipher   *jsonModule `json:"cipher"`
}

type jsonModule struct {
	Function *string         `json:"function"`
	Params   json.RawMessage `json:"params"`
	Message  *string         `json:"message"`
}

type jsonKDFParams struct {
	DKLen *uint64 `json:"dklen"`
	N     *uint64 `json:"n"`
	R     *uint64 `json:"r"`
	P     *uint64 `json:"p"`
	C     *uint64 `json:"c"`
	PRF   *string `json:"prf"`
	Salt  *string `json:"salt"`
}

type jsonCipherParams struct {
	IV *string `json:"iv"`
}

// keystoreSchema is the known field names of jsonKeystore and of the params of each module,
// for strictjson.Check.
var keystoreSchema = func() *strictjson.Schema {
	type fields = map[string]*strictjson.Schema
	module := func(params *strictjson.Schema) *strictjson.Schema {
		return strictjson.Object(fields{"function": nil, "params": params, "message": nil})
	}
	return strictjson.Object(fields{
		"crypto": strictjson.Object(fields{
			"kdf":      module(strictjson.Of[jsonKDFParams]()),
			"checksum": module(strictjson.Object(nil)),
			"cipher":   module(strictjson.Of[jsonCipherParams]()),
		}),
		"description": nil, "pubkey": nil, "path": nil, "uuid": nil, "version": nil,
	})
}()

// maxKeystoreSize bounds a keystore file; real ones are about 1 KiB.
const maxKeystoreSize = 1 << 20

// ParseKeystore parses and validates an EIP-2335 version-4 keystore. Unknown
// fields are ignored. It returns a *MalformedError (errors.Is(err,
// ErrMalformed)) naming the first field that is missing, of the wrong type,
// unsupported or out of the limits; fields are checked in the order version,
// crypto, kdf, checksum, cipher, pubkey.
func ParseKeystore(data []byte) (*Keystore, error) {
	if len(data) > maxKeystoreSize {
		return nil, malformed("", "keystore is %d bytes, limit is %d", len(data), maxKeystoreSize)
	}
	// Tolerate a UTF-8 byte-order mark (some Windows editors write one).
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if len(trimmed) == 0 {
		return nil, malformed("", "empty file")
	}
	if trimmed[0] != '{' {
		return nil, malformed("", "not a JSON object")
	}
	// Exact field names, each once: a keystore another tool reads differently is refused.
	var strict *strictjson.Error
	if err := strictjson.Check(trimmed, keystoreSchema); errors.As(err, &strict) {
		return nil, malformed(strict.Path, "%s", strict.Problem())
	}
	var j jsonKeystore
	if err := json.Unmarshal(trimmed, &j); err != nil {
		return nil, jsonError("", err)
	}

	ks := &Keystore{}
	if err := parseVersion(j.Version); err != nil {
		return nil, err
	}
	if j.Crypto == nil {
		return nil, malformed("crypto", "missing")
	}
	if err := parseKDF(j.Crypto.KDF, &ks.KDF); err != nil {
		return nil, err
	}
	var err error
	if ks.checksum, err = parseChecksum(j.Crypto.Checksum); err != nil {
		return nil, err
	}
	if ks.iv, ks.ciphertext, err = parseCipher(j.Crypto.Cipher); err != nil {
		return nil, err
	}
	if j.Pubkey != nil && *j.Pubkey != "" {
		pk, err := ParsePublicKey(*j.Pubkey)
		if err != nil {
			return nil, malformed("pubkey", "%v", err)
		}
		ks.PublicKey = &pk
	}
	if j.Path != nil {
		ks.Path = *j.Path
	}
	if j.UUID != nil {
		ks.UUID = *j.UUID
	}
	if j.Description != nil {
		ks.Description = *j.Description
	}
	return ks, nil
}

// jsonError turns an encoding/json error into a MalformedError. prefix is the
// dotted path of the value being decoded ("" for the document).
func jsonError(prefix string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		field := typ.Field
		switch {
		case field == "":
			field = prefix
		case prefix != "":
			field = prefix + "." + field
		}
		want := "another type"
		if typ.Type != nil {
			want = jsonKind(typ.Type.Kind())
		}
		return malformed(field, "wrong type: got JSON %s, want %s", truncate(typ.Value, 40), want)
	case errors.As(err, &syn):
		if strings.Contains(syn.Error(), "unexpected end of JSON input") {
			return malformed(prefix, "invalid JSON: unexpected end of input (truncated file?)")
		}
		return malformed(prefix, "invalid JSON at byte %d: %v", syn.Offset, syn)
	}
	return malformed(prefix, "invalid JSON: %v", err)
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Bool:
		return "a boolean"
	}
	return k.String()
}

func parseVersion(raw json.RawMessage) error {
	if jsonfield.Absent(raw) {
		return malformed("version", "missing")
	}
	var v json.Number
	if err := json.Unmarshal(raw, &v); err != nil {
		return malformed("version", "not a number")
	}
	if v.String() != "4" {
		return malformed("version", "keystore version %s is not supported (want 4)", truncate(v.String(), 20))
	}
	return nil
}

func parseKDF(m *jsonModule, out *KDFParams) error {
	const at = "crypto.kdf"
	if m == nil {
		return malformed(at, "missing")
	}
	if m.Function == nil {
		return malformed(at+".function", "missing")
	}
	fn := strings.ToLower(*m.Function)
	if fn != KDFScrypt && fn != KDFPBKDF2 {
		return malformed(at+".function", "unsupported kdf %q (supported: scrypt, pbkdf2)", truncate(*m.Function, 40))
	}
	if len(m.Params) == 0 || string(m.Params) == "null" {
		return malformed(at+".params", "missing")
	}
	var p jsonKDFParams
	if err := json.Unmarshal(m.Params, &p); err != nil {
		return jsonError(at+".params", err)
	}
	if p.DKLen == nil {
		return malformed(at+".params.dklen", "missing")
	}
	if *p.DKLen != derivedKeyLen {
		return malformed(at+".params.dklen", "dklen %d is not supported (must be 32)", *p.DKLen)
	}
	out.Function = fn
	required := func(name string, v *uint64) (uint64, error) {
		if v == nil {
			return 0, malformed(at+".params."+name, "missing")
		}
		return *v, nil
	}
	var err error
	switch fn {
	case KDFScrypt:
		if out.N, err = required("n", p.N); err != nil {
			return err
		}
		if out.R, err = required("r", p.R); err != nil {
			return err
		}
		if out.P, err = required("p", p.P); err != nil {
			return err
		}
	case KDFPBKDF2:
		if out.C, err = required("c", p.C); err != nil {
			return err
		}
		if p.PRF == nil {
			return malformed(at+".params.prf", "missing")
		}
		if !strings.EqualFold(*p.PRF, prfHMACSHA256) {
			return malformed(at+".params.prf", "unsupported prf %q (supported: hmac-sha256)", truncate(*p.PRF, 40))
		}
	}
	if p.Salt == nil {
		return malformed(at+".params.salt", "missing")
	}
	if out.Salt, err = parseHex(at+".params.salt", *p.Salt, -1); err != nil {
		return err
	}
	if field, reason := out.check(); field != "" {
		return malformed(at+"."+field, "%s", reason)
	}
	return nil
}

func parseChecksum(m *jsonModule) ([]byte, error) {
	const at = "crypto.checksum"
	if m == nil {
		return nil, malformed(at, "missing")
	}
	if m.Function == nil {
		return nil, malformed(at+".function", "missing")
	}
	if !strings.EqualFold(*m.Function, checksumSHA256) {
		return nil, malformed(at+".function", "unsupported checksum function %q (supported: sha256)", truncate(*m.Function, 40))
	}
	if m.Message == nil {
		return nil, malformed(at+".message", "missing")
	}
	return parseHex(at+".message", *m.Message, sha256.Size)
}

func parseCipher(m *jsonModule) (iv, ciphertext []byte, err error) {
	const at = "crypto.cipher"
	if m == nil {
		return nil, nil, malformed(at, "missing")
	}
	if m.Function == nil {
		return nil, nil, malformed(at+".function", "missing")
	}
	if !strings.EqualFold(*m.Function, cipherAES128) {
		return nil, nil, malformed(at+".function", "unsupported cipher %q (supported: aes-128-ctr)", truncate(*m.Function, 40))
	}
	if len(m.Params) == 0 || string(m.Params) == "null" {
		return nil, nil, malformed(at+".params", "missing")
	}
	var p jsonCipherParams
	if err := json.Unmarshal(m.Params, &p); err != nil {
		return nil, nil, jsonError(at+".params", err)
	}
	if p.IV == nil {
		return nil, nil, malformed(at+".params.iv", "missing")
	}
	if iv, err = parseHex(at+".params.iv", *p.IV, aes.BlockSize); err != nil {
		return nil, nil, err
	}
	if m.Message == nil {
		return nil, nil, malformed(at+".message", "missing")
	}
	// The plaintext is a 32-byte BLS secret; CTR keeps the length.
	if ciphertext, err = parseHex(at+".message", *m.Message, 32); err != nil {
		return nil, nil, err
	}
	return iv, ciphertext, nil
}

// parseHex decodes hex (optionally 0x-prefixed). want < 0 accepts any length
// up to MaxSaltLen.
func parseHex(field, s string, want int) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if want < 0 && len(s) > 2*MaxSaltLen {
		return nil, malformed(field, "%d hex digits, limit is %d", len(s), 2*MaxSaltLen)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, malformed(field, "bad hex: %v", err)
	}
	if want >= 0 && len(b) != want {
		return nil, malformed(field, "has %d bytes, want %d", len(b), want)
	}
	return b, nil
}

// truncate shortens untrusted strings quoted in error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Decrypt derives the key from password (EIP-2335 processing is applied here,
// pass the raw password), verifies the checksum and decrypts the secret.
//
// Errors: ErrPasswordEncoding (password not UTF-8), ErrWrongPassword (checksum
// mismatch: wrong password or corrupted ciphertext), ErrInvalidKey (the
// plaintext is zero or not below the curve order), ErrPubkeyMismatch (the
// keystore declares a pubkey and the secret's public key differs). The
// password is not modified; every intermediate buffer is zeroed.
func (ks *Keystore) Decrypt(password []byte) (*SecretKey, error) {
	// KDF is an exported field: re-check the limits in case it was edited.
	if field, reason := ks.KDF.check(); field != "" {
		return nil, malformed("crypto.kdf."+field, "%s", reason)
	}
	pw, err := NormalizePassword(password)
	if err != nil {
		return nil, err
	}
	dk, err := ks.KDF.derive(pw)
	zero(pw)
	if err != nil {
		return nil, fmt.Errorf("keystore kdf: %w", err)
	}
	defer zero(dk)

	h := sha256.New()
	h.Write(dk[16:32])
	h.Write(ks.ciphertext)
	var sum [sha256.Size]byte
	if subtle.ConstantTimeCompare(h.Sum(sum[:0]), ks.checksum) != 1 {
		return nil, ErrWrongPassword
	}

	secret := make([]byte, len(ks.ciphertext))
	defer zero(secret)
	if err := aesCTR(dk[:16], ks.iv, secret, ks.ciphertext); err != nil {
		return nil, err
	}
	sk, err := NewSecretKey(secret)
	if err != nil {
		return nil, fmt.Errorf("decrypted secret: %w", err)
	}
	if ks.PublicKey != nil && sk.PublicKey() != *ks.PublicKey {
		got := sk.PublicKey()
		sk.Zero()
		return nil, fmt.Errorf("%w: keystore declares %s, secret belongs to %s", ErrPubkeyMismatch, ks.PublicKey, got)
	}
	return sk, nil
}

// DecryptKeystore is ParseKeystore followed by Decrypt.
func DecryptKeystore(data, password []byte) (*SecretKey, error) {
	ks, err := ParseKeystore(data)
	if err != nil {
		return nil, err
	}
	return ks.Decrypt(password)
}

func aesCTR(key, iv, dst, src []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("keystore cipher: %w", err)
	}
	cipher.NewCTR(block, iv).XORKeyStream(dst, src)
	return nil
}

// Encrypt writes sk as an EIP-2335 version-4 keystore encrypted under
// password (raw; EIP-2335 processing is applied) with the given KDF, an
// AES-128-CTR cipher with a random IV, a SHA-256 checksum, a random UUID v4,
// the public key and the EIP-2334 path (may be ""). When kdf.Salt is empty a
// random 32-byte salt is used. The parameters must pass KDFParams.Validate.
// Intermediate buffers are zeroed.
func Encrypt(sk *SecretKey, password []byte, kdf KDFParams, path string) ([]byte, error) {
	if sk == nil {
		return nil, errors.New("keystore: nil secret key")
	}
	if err := kdf.Validate(); err != nil {
		return nil, err
	}
	if len(kdf.Salt) == 0 {
		kdf.Salt = make([]byte, 32)
		rand.Read(kdf.Salt) // never returns an error (crypto/rand, Go ≥ 1.24)
	}
	iv := make([]byte, aes.BlockSize)
	rand.Read(iv)
	return encrypt(sk, password, kdf, path, iv)
}

// encrypt is Encrypt with a given salt (in kdf) and IV.
func encrypt(sk *SecretKey, password []byte, kdf KDFParams, path string, iv []byte) ([]byte, error) {
	pw, err := NormalizePassword(password)
	if err != nil {
		return nil, err
	}
	dk, err := kdf.derive(pw)
	zero(pw)
	if err != nil {
		return nil, fmt.Errorf("keystore kdf: %w", err)
	}
	defer zero(dk)

	secret := sk.Bytes()
	ciphertext := make([]byte, len(secret))
	err = aesCTR(dk[:16], iv, ciphertext, secret)
	zero(secret)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(dk[16:32])
	h.Write(ciphertext)

	kdfParams := map[string]any{"dklen": derivedKeyLen, "salt": hex.EncodeToString(kdf.Salt)}
	switch kdf.Function {
	case KDFScrypt:
		kdfParams["n"], kdfParams["r"], kdfParams["p"] = kdf.N, kdf.R, kdf.P
	case KDFPBKDF2:
		kdfParams["c"], kdfParams["prf"] = kdf.C, prfHMACSHA256
	}
	pub := sk.PublicKey()
	out := struct {
		Crypto  map[string]any `json:"crypto"`
		Pubkey  string         `json:"pubkey"`
		Path    string         `json:"path"`
		UUID    string         `json:"uuid"`
		Version int            `json:"version"`
	}{
		Crypto: map[string]any{
			"kdf":      map[string]any{"function": kdf.Function, "params": kdfParams, "message": ""},
			"checksum": map[string]any{"function": checksumSHA256, "params": map[string]any{}, "message": hex.EncodeToString(h.Sum(nil))},
			"cipher": map[string]any{
				"function": cipherAES128,
				"params":   map[string]any{"iv": hex.EncodeToString(iv)},
				"message":  hex.EncodeToString(ciphertext),
			},
		},
		Pubkey:  hex.EncodeToString(pub[:]),
		Path:    path,
		UUID:    newUUIDv4(),
		Version: KeystoreVersion,
	}
	return json.MarshalIndent(out, "", "  ")
}

// newUUIDv4 returns a random (version 4, RFC 9562) UUID from crypto/rand.
func newUUIDv4() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

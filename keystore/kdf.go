package keystore

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/scrypt"
)

// KDF function names as they appear in an EIP-2335 keystore ("crypto.kdf.function").
const (
	KDFScrypt = "scrypt"
	KDFPBKDF2 = "pbkdf2"
)

// Limits on the cost parameters of a keystore's key-derivation function.
//
// A keystore file is untrusted input: without limits, "n": 4294967296 would
// make the loader allocate 4 TiB, and "c": 1e15 would hang it for days. The
// limits are far above what any real tool writes (EIP-2335 recommends scrypt
// n=2^18 r=8 p=1, i.e. 256 MiB and ~2^21 work units; pbkdf2 c=2^18) and low
// enough that one keystore cannot take more than about 1 GiB or a few tens of
// seconds on a current core. Parameters outside them are rejected by
// ParseKeystore (ErrMalformed) and by Encrypt.
const (
	// MaxScryptN is the largest accepted scrypt cost parameter n (a power of two ≥ 2).
	MaxScryptN = 1 << 20
	// MaxScryptMemory bounds the scrypt working memory 128·n·r, in bytes.
	MaxScryptMemory = 1 << 30
	// MaxScryptWork bounds n·r·p, which scrypt's running time is proportional to
	// (the EIP-2335 recommendation is 2^21).
	MaxScryptWork = 1 << 25
	// MaxPBKDF2Iterations bounds the pbkdf2 iteration count c.
	MaxPBKDF2Iterations = 1 << 24
	// MaxSaltLen bounds the KDF salt length in bytes (tools write 32).
	MaxSaltLen = 1024
)

// derivedKeyLen is the only "dklen" EIP-2335 allows: 16 bytes of AES-128 key
// and 16 bytes that enter the checksum.
const derivedKeyLen = 32

// KDFParams selects and parameterises the password-based key-derivation
// function of a keystore.
//
// Function is KDFScrypt (which uses N, R, P) or KDFPBKDF2 (which uses C, with
// HMAC-SHA256 as its PRF, the only PRF EIP-2335 defines). Salt is the KDF salt;
// Encrypt draws 32 random bytes when it is empty. The derived key length is
// always 32 bytes.
type KDFParams struct {
	Function string
	N, R, P  uint64 // scrypt
	C        uint64 // pbkdf2 iteration count
	Salt     []byte
}

// StandardScrypt returns the EIP-2335 recommended scrypt parameters
// (n=2^18, r=8, p=1: 256 MiB and about a second per keystore).
func StandardScrypt() KDFParams { return KDFParams{Function: KDFScrypt, N: 1 << 18, R: 8, P: 1} }

// StandardPBKDF2 returns the pbkdf2 parameters the deposit CLI uses (c=2^18, HMAC-SHA256).
func StandardPBKDF2() KDFParams { return KDFParams{Function: KDFPBKDF2, C: 1 << 18} }

// check validates the parameters against the limits above. It returns the JSON
// field name (relative to "crypto.kdf") and a reason; field is "" when valid.
func (p KDFParams) check() (field, reason string) {
	if len(p.Salt) > MaxSaltLen {
		return "params.salt", fmt.Sprintf("salt has %d bytes, limit is %d", len(p.Salt), MaxSaltLen)
	}
	switch p.Function {
	case KDFScrypt:
		switch {
		case p.N < 2 || p.N&(p.N-1) != 0:
			return "params.n", fmt.Sprintf("n=%d is not a power of two ≥ 2", p.N)
		case p.N > MaxScryptN:
			return "params.n", fmt.Sprintf("n=%d exceeds the limit %d (2^20)", p.N, MaxScryptN)
		case p.R == 0:
			return "params.r", "r must be at least 1"
		case p.P == 0:
			return "params.p", "p must be at least 1"
		case p.R > MaxScryptMemory/128/p.N:
			return "params.r", fmt.Sprintf("n=%d, r=%d needs more than %d MiB of memory (limit)", p.N, p.R, MaxScryptMemory>>20)
		case p.P > MaxScryptWork/(p.N*p.R):
			return "params.p", fmt.Sprintf("n·r·p = %d·%d·%d exceeds the work limit 2^25", p.N, p.R, p.P)
		}
	case KDFPBKDF2:
		switch {
		case p.C == 0:
			return "params.c", "c must be at least 1"
		case p.C > MaxPBKDF2Iterations:
			return "params.c", fmt.Sprintf("c=%d exceeds the limit %d (2^24)", p.C, MaxPBKDF2Iterations)
		}
	default:
		return "function", fmt.Sprintf("unsupported kdf %q (supported: scrypt, pbkdf2)", p.Function)
	}
	return "", ""
}

// Validate reports whether the parameters are usable (supported function,
// cost within the limits). The salt may be empty (Encrypt then draws one).
func (p KDFParams) Validate() error {
	if field, reason := p.check(); field != "" {
		return fmt.Errorf("keystore kdf %s: %s", field, reason)
	}
	return nil
}

// String describes the parameters without the salt, e.g. "scrypt(n=262144,r=8,p=1)".
func (p KDFParams) String() string {
	switch p.Function {
	case KDFScrypt:
		return fmt.Sprintf("scrypt(n=%d,r=%d,p=%d)", p.N, p.R, p.P)
	case KDFPBKDF2:
		return fmt.Sprintf("pbkdf2-hmac-sha256(c=%d)", p.C)
	}
	return strings.ToValidUTF8(p.Function, "?")
}

// derive runs the KDF over the processed password and returns the 32-byte
// decryption key. The parameters must have passed check. The caller zeroes the
// result; the KDF libraries' internal buffers cannot be zeroed.
func (p KDFParams) derive(password []byte) ([]byte, error) {
	switch p.Function {
	case KDFScrypt:
		return scrypt.Key(password, p.Salt, int(p.N), int(p.R), int(p.P), derivedKeyLen)
	case KDFPBKDF2:
		return pbkdf2.Key(password, p.Salt, int(p.C), derivedKeyLen, sha256.New), nil
	}
	return nil, fmt.Errorf("unsupported kdf %q", p.Function)
}

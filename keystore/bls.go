package keystore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	blst "github.com/supranational/blst/bindings/go"
)

// The Ethereum consensus BLS ciphersuite: minimal-pubkey-size, proof of possession.
var dst = []byte("BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_")

// PublicKey is a compressed 48-byte BLS12-381 G1 public key.
type PublicKey [48]byte

// Signature is a compressed 96-byte BLS12-381 G2 signature.
type Signature [96]byte

// String renders the key as lowercase 0x-prefixed hex, the form every API uses.
func (p PublicKey) String() string { return "0x" + hex.EncodeToString(p[:]) }

// String renders the signature as lowercase 0x-prefixed hex.
func (s Signature) String() string { return "0x" + hex.EncodeToString(s[:]) }

// ErrInvalidKey reports bytes that are not a valid BLS secret or public key.
var ErrInvalidKey = errors.New("invalid BLS key")

// ParsePublicKey parses 0x-prefixed (or bare) hex into a public key and checks
// that it is a valid, non-infinity G1 point.
func ParsePublicKey(s string) (PublicKey, error) {
	var pk PublicKey
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	if err != nil {
		return pk, fmt.Errorf("%w: public key is not hex", ErrInvalidKey)
	}
	if len(b) != len(pk) {
		return pk, fmt.Errorf("%w: public key has %d bytes, want 48", ErrInvalidKey, len(b))
	}
	copy(pk[:], b)
	if p := new(blst.P1Affine).Uncompress(pk[:]); p == nil || !p.KeyValidate() {
		return pk, fmt.Errorf("%w: public key is not a valid G1 point", ErrInvalidKey)
	}
	return pk, nil
}

// SecretKey is a BLS secret key held in process memory.
// It is safe for concurrent use; Zero must not race with Sign.
type SecretKey struct {
	sk  *blst.SecretKey
	pub PublicKey
}

// NewSecretKey builds a key from 32 big-endian bytes. It rejects zero and
// values not below the curve order. The caller keeps ownership of b and should
// zero it.
func NewSecretKey(b []byte) (*SecretKey, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: secret key has %d bytes, want 32", ErrInvalidKey, len(b))
	}
	sk := new(blst.SecretKey).Deserialize(b)
	if sk == nil {
		return nil, fmt.Errorf("%w: secret key is zero or not below the curve order", ErrInvalidKey)
	}
	k := &SecretKey{sk: sk}
	copy(k.pub[:], new(blst.P1Affine).From(sk).Compress())
	return k, nil
}

// PublicKey returns the key's public key.
func (k *SecretKey) PublicKey() PublicKey { return k.pub }

// SignRoot signs a 32-byte signing root (with the root's hashed point from hashcache.go).
func (k *SecretKey) SignRoot(root [32]byte) Signature {
	var s Signature
	copy(s[:], hashedRoots.point(root).Mult(k.sk).ToAffine().Compress())
	return s
}

// Bytes returns a copy of the 32-byte big-endian secret; the caller must zero it.
func (k *SecretKey) Bytes() []byte { return k.sk.Serialize() }

// Zero wipes the secret from memory. The key must not be used afterwards.
func (k *SecretKey) Zero() { k.sk.Zeroize() }

// Verify reports whether sig is a valid signature of msg by pub.
func Verify(pub PublicKey, msg []byte, sig Signature) bool {
	p := new(blst.P1Affine).Uncompress(pub[:])
	if p == nil {
		return false
	}
	s := new(blst.P2Affine).Uncompress(sig[:])
	if s == nil {
		return false
	}
	return s.Verify(true, p, true, msg, dst)
}

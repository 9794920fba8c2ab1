package keystore

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// EIP-2333 (BLS12-381 key derivation): a tree of secret keys derived from a
// seed with HKDF-SHA256, hardened at every level through a Lamport one-time
// public key built from the parent secret.
//
//	derive_master_SK(seed)          = HKDF_mod_r(seed)                     (len(seed) ≥ 32)
//	derive_child_SK(parent, index)  = HKDF_mod_r(parent_SK_to_lamport_PK(parent, index))
//	HKDF_mod_r(IKM)                 : salt = "BLS-SIG-KEYGEN-SALT-"; repeat { salt = SHA256(salt);
//	                                  OKM = HKDF(SHA256, IKM || 0x00, salt, info = I2OSP(48, 2), L = 48);
//	                                  SK = OS2IP(OKM) mod r } until SK ≠ 0
//	parent_SK_to_lamport_PK(SK, i)  : salt = I2OSP(i, 4); IKM = I2OSP(SK, 32);
//	                                  lamport_0 = HKDF(SHA256, IKM, salt, "", 255·32) split in 32-byte chunks,
//	                                  lamport_1 likewise from the bit-flipped IKM;
//	                                  return SHA256(SHA256(l0[0]) || … || SHA256(l0[254]) || SHA256(l1[0]) || … )
//
// Secret keys are [32]byte big-endian integers, always in [1, r). Derived
// values are zeroed after use where Go allows (math/big's limbs are cleared
// explicitly; the hash and HKDF internals cannot be).

// blsOrder is r, the order of the BLS12-381 G1/G2 subgroups.
var blsOrder, _ = new(big.Int).SetString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)

// ErrInvalidPath: a derivation path is not of the form m/<uint32>/… .
var ErrInvalidPath = errors.New("invalid derivation path")

// MinSeedLen is the minimum seed length EIP-2333 allows for the master key.
const MinSeedLen = 32

const (
	lamportChunks = 255
	lamportChunk  = sha256.Size
	hkdfModRLen   = 48 // ceil(3 · ceil(log2 r) / 16)
)

// DeriveMasterSK derives the EIP-2333 master secret key from a seed of at
// least 32 bytes (e.g. a BIP-39 seed).
func DeriveMasterSK(seed []byte) ([32]byte, error) {
	if len(seed) < MinSeedLen {
		return [32]byte{}, fmt.Errorf("eip-2333: seed has %d bytes, need at least %d", len(seed), MinSeedLen)
	}
	return hkdfModR(seed), nil
}

// DeriveChildSK derives child number index of the parent secret key
// (every EIP-2333 derivation is hardened).
func DeriveChildSK(parent [32]byte, index uint32) [32]byte {
	pk := parentSKToLamportPK(parent, index)
	defer zero(pk[:])
	return hkdfModR(pk[:])
}

// DerivePath derives the secret key at an EIP-2334 style path such as
// "m/12381/3600/0/0/0" from seed. "m" alone is the master key. Components are
// decimal uint32 values; the "'" hardened marker is not used by EIP-2333 and is
// rejected.
func DerivePath(seed []byte, path string) ([32]byte, error) {
	indices, err := ParsePath(path)
	if err != nil {
		return [32]byte{}, err
	}
	sk, err := DeriveMasterSK(seed)
	if err != nil {
		return sk, err
	}
	for _, i := range indices {
		child := DeriveChildSK(sk, i)
		zero(sk[:])
		sk = child
	}
	return sk, nil
}

// DeriveSecretKey is DerivePath returning a ready-to-use SecretKey.
func DeriveSecretKey(seed []byte, path string) (*SecretKey, error) {
	b, err := DerivePath(seed, path)
	if err != nil {
		return nil, err
	}
	defer zero(b[:])
	return NewSecretKey(b[:])
}

// ParsePath parses "m/a/b/…" into its indices.
func ParsePath(path string) ([]uint32, error) {
	parts := strings.Split(path, "/")
	if parts[0] != "m" {
		return nil, fmt.Errorf("%w %q: must start with \"m\"", ErrInvalidPath, truncate(path, 80))
	}
	out := make([]uint32, 0, len(parts)-1)
	for _, p := range parts[1:] {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') || p[0] == '+' {
			return nil, fmt.Errorf("%w %q: component %q is not a decimal uint32", ErrInvalidPath, truncate(path, 80), truncate(p, 20))
		}
		out = append(out, uint32(v))
	}
	return out, nil
}

// hkdfModR is HKDF_mod_r with empty key_info.
func hkdfModR(ikm []byte) [32]byte {
	ikm0 := make([]byte, len(ikm)+1) // IKM || I2OSP(0, 1)
	copy(ikm0, ikm)
	defer zero(ikm0)
	info := string([]byte{0, hkdfModRLen}) // key_info || I2OSP(L, 2)

	salt := []byte("BLS-SIG-KEYGEN-SALT-")
	sk := new(big.Int)
	defer zeroBig(sk)
	for {
		s := sha256.Sum256(salt)
		salt = s[:]
		prk, err := hkdf.Extract(sha256.New, ikm0, salt)
		if err != nil {
			panic("eip-2333: hkdf extract: " + err.Error()) // cannot happen for SHA-256
		}
		okm, err := hkdf.Expand(sha256.New, prk, info, hkdfModRLen)
		zero(prk)
		if err != nil {
			panic("eip-2333: hkdf expand: " + err.Error()) // L = 48 ≤ 255·32
		}
		sk.SetBytes(okm)
		zero(okm)
		sk.Mod(sk, blsOrder)
		if sk.Sign() != 0 {
			var out [32]byte
			sk.FillBytes(out[:])
			return out
		}
	}
}

// ikmToLamportSK returns the 255 32-byte chunks of a Lamport secret key,
// concatenated. The caller zeroes the result.
func ikmToLamportSK(ikm, salt []byte) []byte {
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		panic("eip-2333: hkdf extract: " + err.Error())
	}
	defer zero(prk)
	okm, err := hkdf.Expand(sha256.New, prk, "", lamportChunks*lamportChunk)
	if err != nil {
		panic("eip-2333: hkdf expand: " + err.Error()) // 255·32 is exactly HKDF's limit
	}
	return okm
}

// parentSKToLamportPK returns the compressed Lamport public key of parent at index.
func parentSKToLamportPK(parent [32]byte, index uint32) [32]byte {
	var salt [4]byte
	binary.BigEndian.PutUint32(salt[:], index)
	l0 := ikmToLamportSK(parent[:], salt[:])
	defer zero(l0)
	var flipped [32]byte
	for i := range parent {
		flipped[i] = ^parent[i]
	}
	l1 := ikmToLamportSK(flipped[:], salt[:])
	zero(flipped[:])
	defer zero(l1)

	h := sha256.New()
	for _, l := range [][]byte{l0, l1} {
		for i := 0; i < lamportChunks; i++ {
			c := sha256.Sum256(l[i*lamportChunk : (i+1)*lamportChunk])
			h.Write(c[:])
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// zeroBig clears the limbs of x (math/big offers no other way to wipe a value).
func zeroBig(x *big.Int) {
	clear(x.Bits())
	x.SetInt64(0)
}

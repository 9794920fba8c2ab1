package keystore

import (
	"crypto/sha256"
	"encoding/binary"
	"math/big"
	"slices"
)

// InteropSecretKey returns interop (a.k.a. "mocked start", "insecure") key i,
// the deterministic keys every consensus client uses for local devnets:
//
//	secret_i = int_le(SHA256(uint256_le(i))) mod r
//
// serialised as 32 big-endian bytes. These keys are public knowledge: use them
// only on throwaway test networks. Key 0's public key is
// 0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c.
func InteropSecretKey(i uint64) (*SecretKey, error) {
	var preimage [32]byte
	binary.LittleEndian.PutUint64(preimage[:8], i)
	h := sha256.Sum256(preimage[:])
	slices.Reverse(h[:]) // little-endian → big-endian for math/big
	x := new(big.Int).SetBytes(h[:])
	defer zeroBig(x)
	zero(h[:])
	x.Mod(x, blsOrder)
	var b [32]byte
	x.FillBytes(b[:])
	defer zero(b[:])
	return NewSecretKey(b[:])
}

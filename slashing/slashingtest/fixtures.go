package slashingtest

import (
	"bytes"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// Key returns a deterministic test public key (not a valid BLS point: stores
// must not care).
func Key(n int) phase0.BLSPubKey {
	var pk phase0.BLSPubKey
	for i := range pk {
		pk[i] = 0x5a
	}
	pk[0] = 0x80 | byte(n>>8)
	pk[1] = byte(n)
	return pk
}

// Root returns a deterministic test root; Root(0) is the zero root.
func Root(n byte) phase0.Root {
	var r phase0.Root
	if n != 0 {
		for i := range r {
			r[i] = n
		}
	}
	return r
}

// GVR is the genesis validators root the suite signs with unless a step says
// otherwise.
var GVR = Root(0xee)

// OtherGVR is a second network's genesis validators root.
var OtherGVR = Root(0xdd)

// B and A build interchange messages for import steps; root 0 means "no
// signing_root" (unknown).
func B(slot uint64, root byte) slashing.SignedBlock {
	b := slashing.SignedBlock{Slot: phase0.Slot(slot)}
	if root != 0 {
		r := Root(root)
		b.SigningRoot = &r
	}
	return b
}

// A is an imported attestation (root 0: unknown).
func A(source, target uint64, root byte) slashing.SignedAttestation {
	a := slashing.SignedAttestation{SourceEpoch: phase0.Epoch(source), TargetEpoch: phase0.Epoch(target)}
	if root != 0 {
		r := Root(root)
		a.SigningRoot = &r
	}
	return a
}

// H is one validator's history for an import step.
func H(key int, blocks []slashing.SignedBlock, atts []slashing.SignedAttestation) slashing.ValidatorHistory {
	if blocks == nil {
		blocks = []slashing.SignedBlock{}
	}
	if atts == nil {
		atts = []slashing.SignedAttestation{}
	}
	return slashing.ValidatorHistory{Pubkey: Key(key), SignedBlocks: blocks, SignedAttestations: atts}
}

// Document encodes an interchange document.
func Document(gvr phase0.Root, hs ...slashing.ValidatorHistory) []byte {
	var buf bytes.Buffer
	enc, err := slashing.NewEncoder(&buf, slashing.Metadata{GenesisValidatorsRoot: gvr})
	if err != nil {
		panic(err)
	}
	for _, h := range hs {
		if err := enc.Encode(h); err != nil {
			panic(err)
		}
	}
	if err := enc.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

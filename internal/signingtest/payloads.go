package signingtest

import (
	"encoding/hex"
	"strconv"

	"github.com/attestantio/go-eth2-client/spec/altair"
	"github.com/attestantio/go-eth2-client/spec/electra"
	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Hex is b as lowercase 0x hex, the API's encoding of bytes.
func Hex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// Dec is v in decimal, the API's encoding of a uint64 (slots, epochs, indices, amounts).
func Dec[T ~uint64](v T) string { return strconv.FormatUint(uint64(v), 10) }

// Pattern is n deterministic bytes derived from seed (byte i is seed+7i).
func Pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// Root32 is the 32-byte Pattern of seed as a root.
func Root32(seed byte) phase0.Root { return phase0.Root(Pattern(32, seed)) }

// Sig96 is the 96-byte Pattern of seed as a (non-verifying) signature.
func Sig96(seed byte) phase0.BLSSignature { return phase0.BLSSignature(Pattern(96, seed)) }

// AttestationData is a vote at slot from source to target, committee index 3, with the block,
// source and target roots Root32(seed), Root32(seed+1) and Root32(seed+2).
func AttestationData(slot phase0.Slot, source, target phase0.Epoch, seed byte) *phase0.AttestationData {
	return &phase0.AttestationData{
		Slot: slot, Index: 3, BeaconBlockRoot: Root32(seed),
		Source: &phase0.Checkpoint{Epoch: source, Root: Root32(seed + 1)},
		Target: &phase0.Checkpoint{Epoch: target, Root: Root32(seed + 2)},
	}
}

// BlockHeader is a header at slot of proposer 17 with roots Root32(seed), (seed+1), (seed+2).
func BlockHeader(slot phase0.Slot, seed byte) *phase0.BeaconBlockHeader {
	return &phase0.BeaconBlockHeader{
		Slot: slot, ProposerIndex: 17, ParentRoot: Root32(seed), StateRoot: Root32(seed + 1), BodyRoot: Root32(seed + 2),
	}
}

// Phase0Body is a body with one element in every list, so every list hashes non-trivially.
func Phase0Body(seed byte) *phase0.BeaconBlockBody {
	proof := make([][]byte, 33)
	for i := range proof {
		proof[i] = Pattern(32, seed+byte(i))
	}
	var graffiti [32]byte
	copy(graffiti[:], "vigil e2e")
	return &phase0.BeaconBlockBody{
		RANDAOReveal: Sig96(seed),
		ETH1Data:     &phase0.ETH1Data{DepositRoot: Root32(seed + 1), DepositCount: 4242, BlockHash: Pattern(32, seed+2)},
		Graffiti:     graffiti,
		ProposerSlashings: []*phase0.ProposerSlashing{{
			SignedHeader1: &phase0.SignedBeaconBlockHeader{Message: BlockHeader(9, seed), Signature: Sig96(seed + 3)},
			SignedHeader2: &phase0.SignedBeaconBlockHeader{Message: BlockHeader(9, seed+1), Signature: Sig96(seed + 4)},
		}},
		AttesterSlashings: []*phase0.AttesterSlashing{{
			Attestation1: &phase0.IndexedAttestation{AttestingIndices: []uint64{1, 5, 9}, Data: AttestationData(40, 0, 1, seed), Signature: Sig96(seed + 5)},
			Attestation2: &phase0.IndexedAttestation{AttestingIndices: []uint64{5}, Data: AttestationData(40, 0, 1, seed+9), Signature: Sig96(seed + 6)},
		}},
		Attestations: []*phase0.Attestation{{AggregationBits: []byte{0x0d, 0x01}, Data: AttestationData(41, 0, 1, seed+3), Signature: Sig96(seed + 7)}},
		Deposits: []*phase0.Deposit{{Proof: proof, Data: &phase0.DepositData{
			PublicKey: phase0.BLSPubKey(Pattern(48, seed)), WithdrawalCredentials: Pattern(32, seed+4), Amount: 32_000_000_000, Signature: Sig96(seed + 8),
		}}},
		VoluntaryExits: []*phase0.SignedVoluntaryExit{{Message: &phase0.VoluntaryExit{Epoch: 7, ValidatorIndex: 99}, Signature: Sig96(seed + 9)}},
	}
}

// Phase0Block is a phase0 block at slot of proposer 21 with the Phase0Body of seed.
func Phase0Block(slot phase0.Slot, seed byte) *phase0.BeaconBlock {
	return &phase0.BeaconBlock{Slot: slot, ProposerIndex: 21, ParentRoot: Root32(seed), StateRoot: Root32(seed + 1), Body: Phase0Body(seed)}
}

// AltairBlock is an Altair block at slot of proposer 22: the Phase0Body of seed plus a
// mainnet-sized (512-bit) sync aggregate.
func AltairBlock(slot phase0.Slot, seed byte) *altair.BeaconBlock {
	b := Phase0Body(seed)
	return &altair.BeaconBlock{Slot: slot, ProposerIndex: 22, ParentRoot: Root32(seed), StateRoot: Root32(seed + 1), Body: &altair.BeaconBlockBody{
		RANDAOReveal: b.RANDAOReveal, ETH1Data: b.ETH1Data, Graffiti: b.Graffiti,
		ProposerSlashings: b.ProposerSlashings, AttesterSlashings: b.AttesterSlashings, Attestations: b.Attestations,
		Deposits: b.Deposits, VoluntaryExits: b.VoluntaryExits,
		SyncAggregate: &altair.SyncAggregate{SyncCommitteeBits: Pattern(64, seed), SyncCommitteeSignature: Sig96(seed + 10)},
	}}
}

// Phase0Aggregate is aggregator 12's pre-Electra aggregate of a vote at slot (source the
// previous epoch, target slot's epoch).
func Phase0Aggregate(slot phase0.Slot, seed byte) *phase0.AggregateAndProof {
	return &phase0.AggregateAndProof{
		AggregatorIndex: 12,
		Aggregate:       &phase0.Attestation{AggregationBits: []byte{0xff, 0x03}, Data: AttestationData(slot, EpochOf(slot)-1, EpochOf(slot), seed), Signature: Sig96(seed)},
		SelectionProof:  Sig96(seed + 1),
	}
}

// ElectraAggregate is aggregator 13's Electra (EIP-7549) aggregate of a vote at slot: index 0,
// the committees in mainnet-sized (64-bit) committee_bits.
func ElectraAggregate(slot phase0.Slot, seed byte) *electra.AggregateAndProof {
	data := AttestationData(slot, EpochOf(slot)-1, EpochOf(slot), seed)
	data.Index = 0 // EIP-7549: the committees are in committee_bits
	return &electra.AggregateAndProof{
		AggregatorIndex: 13,
		Aggregate: &electra.Attestation{
			AggregationBits: []byte{0xb5, 0x6e, 0x01}, Data: data, Signature: Sig96(seed),
			CommitteeBits: []byte{0x05, 0, 0, 0x80, 0, 0, 0, 0},
		},
		SelectionProof: Sig96(seed + 1),
	}
}

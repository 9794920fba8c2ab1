package signer

import (
	"encoding/binary"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Message is what the signer learned from a request: the signing root it computed and the facts
// slashing protection and the far-future guard need.
type Message struct {
	Root phase0.Root
	// Slashable is true for block proposals and attestations.
	Slashable bool
	Slot      phase0.Slot  // block proposals
	Source    phase0.Epoch // attestations
	Target    phase0.Epoch // attestations
	// Epoch is the epoch whose fork version signs the message (zero for fork-less types).
	Epoch phase0.Epoch
}

// SigningRoot is the spec's compute_signing_root over an object root.
func SigningRoot(objectRoot phase0.Root, domain phase0.Domain) (phase0.Root, error) {
	return (&phase0.SigningData{ObjectRoot: objectRoot, Domain: domain}).HashTreeRoot()
}

// hash is hash_tree_root of a go-eth2-client spec object with this network's preset sizes (list
// and vector limits differ between the mainnet and minimal presets).
func (n *Network) hash(obj any) (phase0.Root, error) {
	r, err := n.ssz.HashTreeRoot(obj)
	if err != nil {
		return phase0.Root{}, err
	}
	return r, nil
}

// Compute recomputes the signing root of a request from its typed payload, its fork_info and the
// network. It never looks at the caller's signing root. Errors wrap ErrInvalidRequest.
func (n *Network) Compute(r *Request) (Message, error) {
	var (
		m       Message
		dt      phase0.DomainType
		obj     any
		objRoot *phase0.Root
		what    string
	)
	if err := n.checkBitfields(r); err != nil {
		return m, err
	}
	switch r.Type {
	case TypeBlock, TypeBlockV2:
		dt, what, m.Slashable = DomainBeaconProposer, "block", true
		switch {
		case r.BlockHeader != nil:
			m.Slot, obj = r.BlockHeader.Slot, r.BlockHeader
		case r.AltairBlock != nil:
			m.Slot, obj = r.AltairBlock.Slot, r.AltairBlock
		case r.Block != nil:
			m.Slot, obj = r.Block.Slot, r.Block
		}
		m.Epoch = n.EpochOf(m.Slot)
	case TypeAttestation:
		a := r.Attestation
		if a.Source == nil || a.Target == nil {
			return m, invalid("attestation source and target are required")
		}
		dt, what, obj, m.Slashable = DomainBeaconAttester, "attestation", a, true
		m.Source, m.Target, m.Epoch = a.Source.Epoch, a.Target.Epoch, a.Target.Epoch
	case TypeAggregationSlot:
		dt, what, m.Epoch = DomainSelectionProof, "aggregation slot", n.EpochOf(*r.Slot)
		root := uint64Root(uint64(*r.Slot))
		objRoot = &root
	case TypeAggregateAndProof, TypeAggregateAndProofV2:
		dt, what = DomainAggregateAndProof, "aggregate and proof"
		if r.AggregateElectra != nil {
			if r.AggregateElectra.Aggregate == nil || r.AggregateElectra.Aggregate.Data == nil {
				return m, invalid("aggregate_and_proof.aggregate.data is required")
			}
			m.Epoch, obj = n.EpochOf(r.AggregateElectra.Aggregate.Data.Slot), r.AggregateElectra
		} else {
			if r.Aggregate.Aggregate == nil || r.Aggregate.Aggregate.Data == nil {
				return m, invalid("aggregate_and_proof.aggregate.data is required")
			}
			m.Epoch, obj = n.EpochOf(r.Aggregate.Aggregate.Data.Slot), r.Aggregate
		}
	case TypeRandaoReveal:
		dt, what, m.Epoch = DomainRandao, "randao reveal", *r.Epoch
		root := uint64Root(uint64(*r.Epoch))
		objRoot = &root
	case TypeVoluntaryExit:
		dt, what, m.Epoch, obj = DomainVoluntaryExit, "voluntary exit", r.VoluntaryExit.Epoch, r.VoluntaryExit
	case TypeSyncCommitteeMessage:
		dt, what, m.Epoch = DomainSyncCommittee, "sync committee message", n.EpochOf(r.SyncMessage.Slot)
		root := r.SyncMessage.BeaconBlockRoot
		objRoot = &root
	case TypeSyncCommitteeSelection:
		dt, what, m.Epoch, obj = DomainSyncCommitteeSelectionProof, "sync committee selection", n.EpochOf(r.SyncSelection.Slot), r.SyncSelection
	case TypeSyncCommitteeContribution:
		c := r.Contribution
		if c.Contribution == nil {
			return m, invalid("contribution_and_proof.contribution is required")
		}
		dt, what, m.Epoch, obj = DomainContributionAndProof, "contribution and proof", n.EpochOf(c.Contribution.Slot), c
	case TypeDeposit:
		return n.depositRoot(r.Deposit)
	case TypeValidatorRegistration:
		return n.registrationRoot(r)
	default:
		return m, invalid("unsupported type %s", r.Type)
	}

	if objRoot == nil {
		root, err := n.hash(obj)
		if err != nil {
			return m, invalid("%s cannot be hashed with the %s preset: %v", what, n.Preset, err)
		}
		objRoot = &root
	}
	version, err := n.forkVersion(r, m.Epoch)
	if err != nil {
		return m, err
	}
	if dt == DomainSyncCommittee || dt == DomainSyncCommitteeSelectionProof || dt == DomainContributionAndProof {
		if version == n.GenesisForkVersion() {
			return m, invalid("%s needs ALTAIR or later, but fork version %#x at epoch %d is the genesis (PHASE0) version", what, version[:], m.Epoch)
		}
	}
	domain, err := ComputeDomain(dt, version, r.ForkInfo.GenesisValidatorsRoot)
	if err != nil {
		return m, fmt.Errorf("compute domain: %w", err)
	}
	if m.Root, err = SigningRoot(*objRoot, domain); err != nil {
		return m, fmt.Errorf("compute signing root: %w", err)
	}
	return m, nil
}

// depositRoot signs for the deposit's own genesis_fork_version, whichever network this signer
// serves: a deposit message is not slashable, and operators sign deposits for the network the
// deposit goes to (as Web3Signer does). The domain binds the signature to that fork version.
func (n *Network) depositRoot(d *Deposit) (Message, error) {
	obj, err := n.hash(&phase0.DepositMessage{
		PublicKey: d.Pubkey, WithdrawalCredentials: d.WithdrawalCredentials[:], Amount: d.Amount,
	})
	if err != nil {
		return Message{}, invalid("deposit cannot be hashed: %v", err)
	}
	domain, err := ComputeDomain(DomainDeposit, d.GenesisForkVersion, phase0.Root{})
	if err != nil {
		return Message{}, err
	}
	root, err := SigningRoot(obj, domain)
	return Message{Root: root}, err
}

func (n *Network) registrationRoot(r *Request) (Message, error) {
	reg := r.Registration
	ts := reg.Timestamp.Unix()
	if ts < 0 {
		return Message{}, invalid("validator_registration.timestamp is before 1970")
	}
	obj, err := n.hash(&registrationSSZ{
		FeeRecipient: reg.FeeRecipient, GasLimit: reg.GasLimit, Timestamp: uint64(ts), Pubkey: reg.Pubkey,
	})
	if err != nil {
		return Message{}, invalid("validator_registration cannot be hashed: %v", err)
	}
	// The builder domain uses the network's GENESIS_FORK_VERSION and a zero root, never fork_info.
	domain, err := ComputeDomain(DomainApplicationBuilder, n.GenesisForkVersion(), phase0.Root{})
	if err != nil {
		return Message{}, err
	}
	root, err := SigningRoot(obj, domain)
	return Message{Root: root}, err
}

// registrationSSZ is ValidatorRegistrationV1 with the timestamp as the uint64 the spec hashes.
type registrationSSZ struct {
	FeeRecipient [20]byte `ssz-size:"20"`
	GasLimit     uint64
	Timestamp    uint64
	Pubkey       [48]byte `ssz-size:"48"`
}

// uint64Root is hash_tree_root(uint64): the little-endian value padded to 32 bytes.
func uint64Root(v uint64) phase0.Root {
	var r phase0.Root
	binary.LittleEndian.PutUint64(r[:8], v)
	return r
}

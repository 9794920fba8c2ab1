package signer

import (
	"encoding/binary"
	"fmt"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Domain types (consensus specs).
var (
	DomainBeaconProposer              = phase0.DomainType{0x00, 0x00, 0x00, 0x00}
	DomainBeaconAttester              = phase0.DomainType{0x01, 0x00, 0x00, 0x00}
	DomainRandao                      = phase0.DomainType{0x02, 0x00, 0x00, 0x00}
	DomainDeposit                     = phase0.DomainType{0x03, 0x00, 0x00, 0x00}
	DomainVoluntaryExit               = phase0.DomainType{0x04, 0x00, 0x00, 0x00}
	DomainSelectionProof              = phase0.DomainType{0x05, 0x00, 0x00, 0x00}
	DomainAggregateAndProof           = phase0.DomainType{0x06, 0x00, 0x00, 0x00}
	DomainSyncCommittee               = phase0.DomainType{0x07, 0x00, 0x00, 0x00}
	DomainSyncCommitteeSelectionProof = phase0.DomainType{0x08, 0x00, 0x00, 0x00}
	DomainContributionAndProof        = phase0.DomainType{0x09, 0x00, 0x00, 0x00}
	DomainApplicationBuilder          = phase0.DomainType{0x00, 0x00, 0x00, 0x01}
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

// ComputeDomain is the spec's compute_domain.
func (n *Network) ComputeDomain(dt phase0.DomainType, version phase0.Version, gvr phase0.Root) (phase0.Domain, error) {
	fdr, err := n.HashTreeRoot(&phase0.ForkData{CurrentVersion: version, GenesisValidatorsRoot: gvr})
	if err != nil {
		return phase0.Domain{}, err
	}
	var d phase0.Domain
	copy(d[:4], dt[:])
	copy(d[4:], fdr[:28])
	return d, nil
}

// SigningRoot is the spec's compute_signing_root over an object root.
func (n *Network) SigningRoot(objectRoot phase0.Root, domain phase0.Domain) (phase0.Root, error) {
	return n.HashTreeRoot(&phase0.SigningData{ObjectRoot: objectRoot, Domain: domain})
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
		root, err := n.HashTreeRoot(obj)
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
	domain, err := n.ComputeDomain(dt, version, r.ForkInfo.GenesisValidatorsRoot)
	if err != nil {
		return m, fmt.Errorf("compute domain: %w", err)
	}
	if m.Root, err = n.SigningRoot(*objRoot, domain); err != nil {
		return m, fmt.Errorf("compute signing root: %w", err)
	}
	return m, nil
}

// checkBitfields refuses bitfields of the wrong size. go-eth2-client's JSON decoders do not check
// bitvector lengths and the SSZ hasher zero-pads a short bitvector, so a truncated committee_bits,
// sync_committee_bits or contribution aggregation_bits would otherwise be signed as a different
// (padded) object than the one sent. An empty bitlist lacks its length bit and is not valid SSZ
// either (a zero last byte is already refused by the hasher).
func (n *Network) checkBitfields(r *Request) error {
	syncBits := n.syncCommitteeSize
	vector := func(field string, b []byte, bits uint64) error {
		if want := int((bits + 7) / 8); len(b) != want {
			return invalid("%s: want %d bytes (%d bits), got %d", field, want, bits, len(b))
		}
		return nil
	}
	list := func(field string, b []byte) error {
		if len(b) == 0 {
			return invalid("%s: a bitlist needs at least one byte (its length bit)", field)
		}
		return nil
	}
	var atts []*phase0.Attestation
	switch {
	case r.Block != nil && r.Block.Body != nil:
		atts = r.Block.Body.Attestations
	case r.AltairBlock != nil && r.AltairBlock.Body != nil:
		atts = r.AltairBlock.Body.Attestations
		if sa := r.AltairBlock.Body.SyncAggregate; sa != nil {
			if err := vector("sync_aggregate.sync_committee_bits", sa.SyncCommitteeBits, syncBits); err != nil {
				return err
			}
		}
	case r.Aggregate != nil && r.Aggregate.Aggregate != nil:
		atts = []*phase0.Attestation{r.Aggregate.Aggregate}
	case r.AggregateElectra != nil && r.AggregateElectra.Aggregate != nil:
		a := r.AggregateElectra.Aggregate
		if err := list("aggregate.aggregation_bits", a.AggregationBits); err != nil {
			return err
		}
		return vector("aggregate.committee_bits", a.CommitteeBits, n.maxCommitteesPerSlot)
	case r.Contribution != nil && r.Contribution.Contribution != nil:
		// SYNC_COMMITTEE_SIZE / SYNC_COMMITTEE_SUBNET_COUNT (4) bits.
		return vector("contribution.aggregation_bits", r.Contribution.Contribution.AggregationBits, syncBits/4)
	}
	for i, a := range atts {
		if a != nil {
			if err := list(fmt.Sprintf("attestations[%d].aggregation_bits", i), a.AggregationBits); err != nil {
				return err
			}
		}
	}
	return nil
}

// forkVersion picks the fork_info version that applies at epoch (previous before fork.epoch,
// current from it on) and checks that it is one of this network's versions, so a request meant
// for another chain is refused rather than signed for the wrong domain.
func (n *Network) forkVersion(r *Request, epoch phase0.Epoch) (phase0.Version, error) {
	f := r.ForkInfo.Fork
	v := f.CurrentVersion
	if epoch < f.Epoch {
		v = f.PreviousVersion
	}
	if _, ok := n.KnowsVersion(v); !ok {
		return v, invalid("fork version %#x (fork_info at epoch %d) is not a fork of network %s", v[:], epoch, n.Name)
	}
	return v, nil
}

// depositRoot signs for the deposit's own genesis_fork_version, whichever network this signer
// serves: a deposit message is not slashable, and operators sign deposits for the network the
// deposit goes to (as Web3Signer does). The domain binds the signature to that fork version.
func (n *Network) depositRoot(d *Deposit) (Message, error) {
	obj, err := n.HashTreeRoot(&phase0.DepositMessage{
		PublicKey: d.Pubkey, WithdrawalCredentials: d.WithdrawalCredentials[:], Amount: d.Amount,
	})
	if err != nil {
		return Message{}, invalid("deposit cannot be hashed: %v", err)
	}
	domain, err := n.ComputeDomain(DomainDeposit, d.GenesisForkVersion, phase0.Root{})
	if err != nil {
		return Message{}, err
	}
	root, err := n.SigningRoot(obj, domain)
	return Message{Root: root}, err
}

func (n *Network) registrationRoot(r *Request) (Message, error) {
	reg := r.Registration
	ts := reg.Timestamp.Unix()
	if ts < 0 {
		return Message{}, invalid("validator_registration.timestamp is before 1970")
	}
	obj, err := n.HashTreeRoot(&registrationSSZ{
		FeeRecipient: reg.FeeRecipient, GasLimit: reg.GasLimit, Timestamp: uint64(ts), Pubkey: reg.Pubkey,
	})
	if err != nil {
		return Message{}, invalid("validator_registration cannot be hashed: %v", err)
	}
	// The builder domain uses the network's GENESIS_FORK_VERSION and a zero root, never fork_info.
	domain, err := n.ComputeDomain(DomainApplicationBuilder, n.GenesisForkVersion(), phase0.Root{})
	if err != nil {
		return Message{}, err
	}
	root, err := n.SigningRoot(obj, domain)
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

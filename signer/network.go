package signer

import (
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	dynssz "github.com/pk910/dynamic-ssz"
)

// Fork names, in activation order. They are the `version` values of BLOCK_V2 and
// AGGREGATE_AND_PROOF_V2 requests (matched case-insensitively).
const (
	Phase0    = "PHASE0"
	Altair    = "ALTAIR"
	Bellatrix = "BELLATRIX"
	Capella   = "CAPELLA"
	Deneb     = "DENEB"
	Electra   = "ELECTRA"
	Fulu      = "FULU"
)

// Forks lists every fork this signer knows, oldest first.
var Forks = []string{Phase0, Altair, Bellatrix, Capella, Deneb, Electra, Fulu}

// FarFutureEpoch marks a fork that is not scheduled.
const FarFutureEpoch = phase0.Epoch(math.MaxUint64)

// Fork is one entry of a network's fork schedule.
type Fork struct {
	Name    string
	Version phase0.Version
	Epoch   phase0.Epoch
}

// Network is the chain configuration the signer needs: the slot length and fork schedule to map a
// message to its epoch and check fork versions, the preset for SSZ list and vector sizes, and the
// genesis time (zero when unknown) for the far-future guard.
//
// Invariant: Schedule holds the network's forks in Forks order, starting with Phase0 (epoch 0,
// GENESIS_FORK_VERSION); a fork with a version but no epoch has FarFutureEpoch; a fork a custom
// config does not define at all is absent.
type Network struct {
	Name           string
	Preset         string // "mainnet" or "minimal"
	SlotsPerEpoch  uint64
	SecondsPerSlot uint64
	GenesisTime    time.Time // zero: unknown, the far-future guard is off
	// GenesisValidatorsRoot is the chain's root when known (built-in networks, or given by the
	// operator or a beacon node): a request carrying another root is refused. Nil: unknown, the
	// slashing database pins the first root a slashable request carries.
	GenesisValidatorsRoot *phase0.Root
	Schedule              []Fork

	ssz *dynssz.DynSsz
	// Preset sizes the request checks need, resolved once in finish.
	syncCommitteeSize, maxCommitteesPerSlot uint64
}

// GenesisForkVersion is the version of the first fork (used by DEPOSIT defaults and
// VALIDATOR_REGISTRATION).
func (n *Network) GenesisForkVersion() phase0.Version { return n.Schedule[0].Version }

// EpochOf returns the epoch containing slot.
func (n *Network) EpochOf(slot phase0.Slot) phase0.Epoch {
	return phase0.Epoch(uint64(slot) / n.SlotsPerEpoch)
}

// KnowsVersion reports whether v is the fork version of one of the network's forks, and which.
func (n *Network) KnowsVersion(v phase0.Version) (string, bool) {
	for _, f := range n.Schedule {
		if f.Version == v {
			return f.Name, true
		}
	}
	return "", false
}

// CurrentEpoch is the wall-clock epoch, or false if the genesis time is unknown or in the future.
func (n *Network) CurrentEpoch(now time.Time) (phase0.Epoch, bool) {
	if n.GenesisTime.IsZero() || now.Before(n.GenesisTime) {
		return 0, false
	}
	secs := uint64(now.Sub(n.GenesisTime) / time.Second)
	return phase0.Epoch(secs / n.SecondsPerSlot / n.SlotsPerEpoch), true
}

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

// ComputeDomain is the spec's compute_domain.
func ComputeDomain(dt phase0.DomainType, version phase0.Version, gvr phase0.Root) (phase0.Domain, error) {
	fdr, err := (&phase0.ForkData{CurrentVersion: version, GenesisValidatorsRoot: gvr}).HashTreeRoot()
	if err != nil {
		return phase0.Domain{}, err
	}
	var d phase0.Domain
	copy(d[:4], dt[:])
	copy(d[4:], fdr[:28])
	return d, nil
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

// CheckGenesisValidatorsRoot refuses a request root that is not the network's, when the
// network's root is known (ErrInvalidRequest: a request for another chain, never pinned).
func (n *Network) CheckGenesisValidatorsRoot(r phase0.Root) error {
	if n.GenesisValidatorsRoot != nil && r != *n.GenesisValidatorsRoot {
		return invalid("fork_info.genesis_validators_root %#x is not the genesis validators root of network %s (%#x)", r[:], n.Name, n.GenesisValidatorsRoot[:])
	}
	return nil
}

// ParseRoot reads a 0x-prefixed 32-byte hex root.
func ParseRoot(s string) (phase0.Root, error) {
	b, err := decodeHex(strings.ToLower(strings.TrimSpace(s)), 32)
	if err != nil {
		return phase0.Root{}, err
	}
	return phase0.Root(b), nil
}

// ParseVersion parses a 0x-prefixed 4-byte fork version.
func ParseVersion(s string) (phase0.Version, error) {
	var v phase0.Version
	b, err := decodeHex(s, 4)
	if err != nil {
		return v, err
	}
	copy(v[:], b)
	return v, nil
}

// decodeHex decodes a 0x-prefixed hex string of exactly want bytes (any length when want < 0).
func decodeHex(s string, want int) ([]byte, error) {
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return nil, fmt.Errorf("%q is not 0x-prefixed hex", truncate(s))
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, fmt.Errorf("%q is not valid hex", truncate(s))
	}
	if want >= 0 && len(b) != want {
		return nil, fmt.Errorf("want %d bytes, got %d", want, len(b))
	}
	return b, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

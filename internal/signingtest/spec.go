package signingtest

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Domain types (consensus-specs, "Domain types").
var (
	DomainBeaconProposer              = phase0.DomainType{0x00, 0, 0, 0}
	DomainBeaconAttester              = phase0.DomainType{0x01, 0, 0, 0}
	DomainRandao                      = phase0.DomainType{0x02, 0, 0, 0}
	DomainDeposit                     = phase0.DomainType{0x03, 0, 0, 0}
	DomainVoluntaryExit               = phase0.DomainType{0x04, 0, 0, 0}
	DomainSelectionProof              = phase0.DomainType{0x05, 0, 0, 0}
	DomainAggregateAndProof           = phase0.DomainType{0x06, 0, 0, 0}
	DomainSyncCommittee               = phase0.DomainType{0x07, 0, 0, 0}
	DomainSyncCommitteeSelectionProof = phase0.DomainType{0x08, 0, 0, 0}
	DomainContributionAndProof        = phase0.DomainType{0x09, 0, 0, 0}
	DomainApplicationBuilder          = phase0.DomainType{0x00, 0, 0, 0x01}
)

// Mainnet's clock (consensus-specs configs/mainnet.yaml, presets/mainnet).
const (
	MainnetGenesisTime    = 1606824023
	MainnetSecondsPerSlot = 12
	MainnetSlotsPerEpoch  = 32
)

// MainnetGVR is mainnet's genesis validators root.
var MainnetGVR = MustRoot("0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")

// ForkDef is one entry of a fork schedule.
type ForkDef struct {
	Name    string
	Version phase0.Version
	Epoch   phase0.Epoch
}

// MainnetForks is mainnet's schedule (consensus-specs configs/mainnet.yaml), oldest first.
var MainnetForks = []ForkDef{
	{"PHASE0", phase0.Version{0x00, 0, 0, 0}, 0},
	{"ALTAIR", phase0.Version{0x01, 0, 0, 0}, 74240},
	{"BELLATRIX", phase0.Version{0x02, 0, 0, 0}, 144896},
	{"CAPELLA", phase0.Version{0x03, 0, 0, 0}, 194048},
	{"DENEB", phase0.Version{0x04, 0, 0, 0}, 269568},
	{"ELECTRA", phase0.Version{0x05, 0, 0, 0}, 364032},
	{"FULU", phase0.Version{0x06, 0, 0, 0}, 411392},
}

// MustRoot parses a 0x-prefixed (or bare) 32-byte hex root; it panics on anything else.
func MustRoot(s string) phase0.Root {
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil || len(b) != 32 {
		panic("bad root " + s)
	}
	return phase0.Root(b)
}

// MainnetFork is the Fork of fork_info when the named mainnet fork is current. It panics on an
// unknown name.
func MainnetFork(name string) phase0.Fork {
	for i, f := range MainnetForks {
		if f.Name == name {
			prev := MainnetForks[max(i-1, 0)].Version
			return phase0.Fork{PreviousVersion: prev, CurrentVersion: f.Version, Epoch: f.Epoch}
		}
	}
	panic("unknown fork " + name)
}

// VersionAt applies fork_info: the previous version before f.Epoch, the current one from it.
func VersionAt(f phase0.Fork, epoch phase0.Epoch) phase0.Version {
	if epoch < f.Epoch {
		return f.PreviousVersion
	}
	return f.CurrentVersion
}

// Hashable is an SSZ object with a hash tree root (every go-eth2-client spec type).
type Hashable interface {
	HashTreeRoot() ([32]byte, error)
}

// HashTreeRoot is obj's hash_tree_root; an error fails the test.
func HashTreeRoot(tb testing.TB, obj Hashable) phase0.Root {
	tb.Helper()
	r, err := obj.HashTreeRoot()
	if err != nil {
		tb.Fatalf("hash tree root of %T: %v", obj, err)
	}
	return r
}

// ComputeDomain is the spec's compute_domain.
func ComputeDomain(tb testing.TB, dt phase0.DomainType, version phase0.Version, gvr phase0.Root) phase0.Domain {
	tb.Helper()
	fdr := HashTreeRoot(tb, &phase0.ForkData{CurrentVersion: version, GenesisValidatorsRoot: gvr})
	var d phase0.Domain
	copy(d[:4], dt[:])
	copy(d[4:], fdr[:28])
	return d
}

// ComputeSigningRoot is the spec's compute_signing_root for an object root.
func ComputeSigningRoot(tb testing.TB, objectRoot phase0.Root, d phase0.Domain) phase0.Root {
	tb.Helper()
	return HashTreeRoot(tb, &phase0.SigningData{ObjectRoot: objectRoot, Domain: d})
}

// ForkedRoot is the mainnet signing root of an object (by its root) signed with domain type dt
// under fork_info f at epoch: the version is VersionAt(f, epoch), the root MainnetGVR.
func ForkedRoot(tb testing.TB, dt phase0.DomainType, f phase0.Fork, epoch phase0.Epoch, objectRoot phase0.Root) phase0.Root {
	tb.Helper()
	return ComputeSigningRoot(tb, objectRoot, ComputeDomain(tb, dt, VersionAt(f, epoch), MainnetGVR))
}

// SigningRoot is the mainnet signing root of obj signed with domain type dt under fork_info f at
// epoch: ForkedRoot of obj's hash tree root.
func SigningRoot(tb testing.TB, dt phase0.DomainType, f phase0.Fork, epoch phase0.Epoch, obj Hashable) phase0.Root {
	tb.Helper()
	return ForkedRoot(tb, dt, f, epoch, HashTreeRoot(tb, obj))
}

// Uint64Root is hash_tree_root(uint64): the object root of a slot or an epoch (selection
// proofs, RANDAO reveals).
func Uint64Root(v uint64) phase0.Root {
	var r phase0.Root
	binary.LittleEndian.PutUint64(r[:8], v)
	return r
}

// EpochOf is the mainnet epoch of slot.
func EpochOf(slot phase0.Slot) phase0.Epoch { return phase0.Epoch(slot / MainnetSlotsPerEpoch) }

// EpochStart is the first slot of a mainnet epoch.
func EpochStart(e phase0.Epoch) phase0.Slot { return phase0.Slot(uint64(e) * MainnetSlotsPerEpoch) }

// NowSlot is mainnet's wall-clock slot.
func NowSlot() phase0.Slot {
	return phase0.Slot((time.Now().Unix() - MainnetGenesisTime) / MainnetSecondsPerSlot)
}

// NowEpoch is mainnet's wall-clock epoch.
func NowEpoch() phase0.Epoch {
	return phase0.Epoch((time.Now().Unix() - MainnetGenesisTime) / (MainnetSecondsPerSlot * MainnetSlotsPerEpoch))
}

// ForkSlot is slot off of the named mainnet fork's first epoch, but never past the wall clock
// (the far-future guard); VersionAt keeps the expected root right either way.
func ForkSlot(name string, off uint64) phase0.Slot {
	f := MainnetFork(name)
	return min(phase0.Slot(uint64(f.Epoch)*MainnetSlotsPerEpoch+off), NowSlot())
}

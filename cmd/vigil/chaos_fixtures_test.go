package main

// Sign requests of the HA and chaos tests and their signing roots, computed here from the spec
// (compute_domain, compute_signing_root over go-eth2-client's generated hash tree roots) so the
// checker never trusts the server: every returned signature is verified against the interop
// public key and the root computed here. Self-contained on purpose (the shared signing fixtures
// are moving packages): only go-eth2-client and the keystore package's BLS.
//
// Everything is mainnet, FULU fork, at epochs past the FULU fork epoch and before the wall clock
// (so the far-future guard stays on and never refuses).

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/keystore"
)

var (
	chaosGVR          = phase0.Root(chaosHex32("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"))
	chaosFork         = phase0.Fork{PreviousVersion: phase0.Version{0x05, 0, 0, 0}, CurrentVersion: phase0.Version{0x06, 0, 0, 0}, Epoch: 411392}
	chaosDomainAtt    = phase0.DomainType{0x01, 0, 0, 0}
	chaosDomainBlock  = phase0.DomainType{0x00, 0, 0, 0}
	chaosSlotsInEpoch = phase0.Slot(32)
)

// chaosBaseEpoch is the first epoch the tests sign at: FULU, long past on mainnet's clock.
const chaosBaseEpoch = phase0.Epoch(420_000)

func chaosHex32(s string) [32]byte {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		panic("bad hex root " + s)
	}
	return [32]byte(b)
}

func hex0x(b []byte) string { return "0x" + hex.EncodeToString(b) }

// chaosDomain is compute_domain(dt, FULU's version, mainnet's genesis validators root).
func chaosDomain(dt phase0.DomainType) phase0.Domain {
	fdr, err := (&phase0.ForkData{CurrentVersion: chaosFork.CurrentVersion, GenesisValidatorsRoot: chaosGVR}).HashTreeRoot()
	if err != nil {
		panic(err)
	}
	var d phase0.Domain
	copy(d[:4], dt[:])
	copy(d[4:], fdr[:28])
	return d
}

func chaosSigningRoot(obj interface{ HashTreeRoot() ([32]byte, error) }, dt phase0.DomainType) phase0.Root {
	or, err := obj.HashTreeRoot()
	if err != nil {
		panic(err)
	}
	r, err := (&phase0.SigningData{ObjectRoot: or, Domain: chaosDomain(dt)}).HashTreeRoot()
	if err != nil {
		panic(err)
	}
	return r
}

// chaosRoot is a 32-byte root that names (key, a, b, variant): distinct inputs, distinct roots.
func chaosRoot(key uint64, a, b uint64, variant byte) phase0.Root {
	var r phase0.Root
	binary.LittleEndian.PutUint64(r[0:], key)
	binary.LittleEndian.PutUint64(r[8:], a)
	binary.LittleEndian.PutUint64(r[16:], b)
	r[24] = variant
	r[31] = 0xc5
	return r
}

func chaosForkInfo() map[string]any {
	return map[string]any{
		"fork": map[string]any{
			"previous_version": hex0x(chaosFork.PreviousVersion[:]),
			"current_version":  hex0x(chaosFork.CurrentVersion[:]),
			"epoch":            fmt.Sprint(uint64(chaosFork.Epoch)),
		},
		"genesis_validators_root": hex0x(chaosGVR[:]),
	}
}

// msgKind is what a request asks to sign.
type msgKind uint8

const (
	msgAttestation msgKind = iota
	msgBlock
)

func (k msgKind) String() string {
	if k == msgBlock {
		return "block"
	}
	return "attestation"
}

// signMsg is one slashable message: an attestation (source, target, variant of the roots) or a
// block header (slot, variant of the body root). Its signing root is computed here.
type signMsg struct {
	Key     uint64 // interop index
	Kind    msgKind
	Source  phase0.Epoch
	Target  phase0.Epoch
	Slot    phase0.Slot
	Variant byte   // different variants at one target (or slot) conflict
	Label   string // honest, double-vote, surround, double-proposal, probe
	root    phase0.Root
	body    map[string]any
}

func chaosAttestation(key uint64, source, target phase0.Epoch, variant byte, label string) *signMsg {
	br := chaosRoot(key, uint64(target), uint64(source), variant)
	data := &phase0.AttestationData{
		Slot: phase0.Slot(target)*chaosSlotsInEpoch + phase0.Slot(key%32), Index: 0, BeaconBlockRoot: br,
		Source: &phase0.Checkpoint{Epoch: source, Root: chaosRoot(key, uint64(source), 0, 0xee)},
		Target: &phase0.Checkpoint{Epoch: target, Root: br},
	}
	return &signMsg{
		Key: key, Kind: msgAttestation, Source: source, Target: target, Variant: variant, Label: label,
		root: chaosSigningRoot(data, chaosDomainAtt),
		body: map[string]any{"type": "ATTESTATION", "fork_info": chaosForkInfo(), "attestation": data},
	}
}

func chaosBlock(key uint64, slot phase0.Slot, variant byte, label string) *signMsg {
	h := &phase0.BeaconBlockHeader{
		Slot: slot, ProposerIndex: phase0.ValidatorIndex(key),
		ParentRoot: chaosRoot(key, uint64(slot), 1, 0), StateRoot: chaosRoot(key, uint64(slot), 2, 0),
		BodyRoot: chaosRoot(key, uint64(slot), 3, variant),
	}
	return &signMsg{
		Key: key, Kind: msgBlock, Slot: slot, Variant: variant, Label: label,
		root: chaosSigningRoot(h, chaosDomainBlock),
		body: map[string]any{"type": "BLOCK_V2", "fork_info": chaosForkInfo(), "beacon_block": map[string]any{"version": "FULU", "block_header": h}},
	}
}

// conflicting is a message that EIP-3076 refuses once m is recorded: a double vote at m's
// target, or a double proposal at m's slot.
func (m *signMsg) conflicting() *signMsg {
	if m.Kind == msgBlock {
		return chaosBlock(m.Key, m.Slot, m.Variant+100, "durability-probe")
	}
	return chaosAttestation(m.Key, m.Source, m.Target, m.Variant+100, "durability-probe")
}

func (m *signMsg) String() string {
	if m.Kind == msgBlock {
		return fmt.Sprintf("key %d block slot %d variant %d (%s)", m.Key, m.Slot, m.Variant, m.Label)
	}
	return fmt.Sprintf("key %d attestation %d→%d variant %d (%s)", m.Key, m.Source, m.Target, m.Variant, m.Label)
}

// slashablePair reports whether two signed messages of one key are slashable together
// (EIP-3076 / the consensus spec): a double proposal (same slot, different signing root), a
// double vote (same target, different signing root), or one attestation surrounding the other.
func chaosSlashable(a, b *signMsg) (bool, string) {
	if a.Key != b.Key || a.Kind != b.Kind || a.root == b.root {
		return false, ""
	}
	if a.Kind == msgBlock {
		if a.Slot == b.Slot {
			return true, "double proposal"
		}
		return false, ""
	}
	switch {
	case a.Target == b.Target:
		return true, "double vote"
	case a.Source < b.Source && b.Target < a.Target, b.Source < a.Source && a.Target < b.Target:
		return true, "surround vote"
	}
	return false, ""
}

// chaosKeys holds the interop secret keys of the tests (keys 0..n-1 plus the probe key).
type chaosKeys struct {
	pubs map[uint64]keystore.PublicKey
}

// chaosProbeKey is the interop key the takeover probe signs with (no load uses it).
const chaosProbeKey = 63

// writeChaosKeystores writes interop keystores for indices into a fresh directory and returns
// the serve flags that load them plus the public keys.
func writeChaosKeystores(t testing.TB, indices []uint64) ([]string, *chaosKeys) {
	t.Helper()
	dir := t.TempDir()
	ks, pw := filepath.Join(dir, "keystores"), filepath.Join(dir, "password.txt")
	pubs, err := keystore.WriteInteropKeystores(ks, pw, indices, keystore.DevKDF())
	if err != nil {
		t.Fatalf("write interop keystores: %v", err)
	}
	k := &chaosKeys{pubs: map[uint64]keystore.PublicKey{}}
	for i, idx := range indices {
		k.pubs[idx] = pubs[i]
	}
	return []string{"--keystores-path", ks, "--keystores-password-file", pw}, k
}

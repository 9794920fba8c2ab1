package signingtest

import (
	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Sign-request bodies (Web3Signer's eth2 sign API), as maps ready to marshal: a test may still
// change a field before sending. Every fork_info carries MainnetGVR.

// ForkInfoJSON is the fork_info object of a mainnet request signed under fork f.
func ForkInfoJSON(f phase0.Fork) map[string]any {
	return map[string]any{
		"fork": map[string]any{
			"previous_version": Hex(f.PreviousVersion[:]),
			"current_version":  Hex(f.CurrentVersion[:]),
			"epoch":            Dec(f.Epoch),
		},
		"genesis_validators_root": Hex(MainnetGVR[:]),
	}
}

// AttestationRequest is an ATTESTATION request for data under fork f.
func AttestationRequest(f phase0.Fork, data *phase0.AttestationData) map[string]any {
	return map[string]any{"type": "ATTESTATION", "fork_info": ForkInfoJSON(f), "attestation": data}
}

// VoteRequest is a FULU-fork mainnet ATTESTATION request from source to target: slot the first
// of target, committee index 0, and every root (block, source, target) Root32(seed). A repeat
// is an identical re-sign; another seed at the same target is a double vote.
func VoteRequest(source, target phase0.Epoch, seed byte) map[string]any {
	br := Root32(seed)
	return AttestationRequest(MainnetFork("FULU"), &phase0.AttestationData{
		Slot: EpochStart(target), Index: 0, BeaconBlockRoot: br,
		Source: &phase0.Checkpoint{Epoch: source, Root: br},
		Target: &phase0.Checkpoint{Epoch: target, Root: br},
	})
}

// RandaoRequest is a RANDAO_REVEAL request for epoch under fork f (not slashable: repeatable).
func RandaoRequest(f phase0.Fork, epoch phase0.Epoch) map[string]any {
	return map[string]any{"type": "RANDAO_REVEAL", "fork_info": ForkInfoJSON(f), "randao_reveal": map[string]any{"epoch": Dec(epoch)}}
}

// BlockHeaderRequest is a BLOCK_V2 request for header h under fork f, named version (a fork
// name, "DENEB"): the blinded shape every fork from Bellatrix on accepts.
func BlockHeaderRequest(f phase0.Fork, version string, h *phase0.BeaconBlockHeader) map[string]any {
	return map[string]any{"type": "BLOCK_V2", "fork_info": ForkInfoJSON(f), "beacon_block": map[string]any{"version": version, "block_header": h}}
}

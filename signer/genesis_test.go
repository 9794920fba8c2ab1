package signer_test

import (
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
)

// On a network whose genesis validators root is known, a request carrying another root is a
// 400 that never reaches the slashing store (so it can never pin the database); every signing
// type with fork_info is checked, slashable or not.
func TestSignRefusesForeignGenesisValidatorsRoot(t *testing.T) {
	t.Parallel()
	foreign := phase0.Root{0xde, 0xad}
	for _, r := range []*signer.Request{attestation(nowEpoch-1, nowEpoch, 1), blockHeader(nowEpoch*32 + 1), randao(nowEpoch)} {
		t.Run(string(r.Type), func(t *testing.T) {
			t.Parallel()
			f := setup(t, nil)
			r.ForkInfo.GenesisValidatorsRoot = foreign
			sig, err := f.s.Sign(t.Context(), f.pub(0), r)
			f.wantRefusedBefore(t, sig, err, signer.ErrInvalidRequest, "genesis_validators_root", "not the genesis validators root of network mainnet")
			wantEq(t, "store calls", f.store.calls(), 0)
		})
	}
}

// Every built-in network except minimal knows its root; a custom config may carry one.
func TestNetworkGenesisValidatorsRoots(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"mainnet": "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
		"sepolia": "0xd8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
		"holesky": "0x9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1",
		"hoodi":   "0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
	}
	for name, root := range want {
		n := mustNetwork(t, name)
		if n.GenesisValidatorsRoot == nil {
			t.Fatalf("%s: no genesis validators root", name)
		}
		r, _ := signer.ParseRoot(root)
		if *n.GenesisValidatorsRoot != r {
			t.Errorf("%s: root %#x, want %s", name, n.GenesisValidatorsRoot[:], root)
		}
	}
	if n := mustNetwork(t, "minimal"); n.GenesisValidatorsRoot != nil || !n.GenesisTime.IsZero() {
		t.Errorf("minimal knows a root or genesis time: %v %v", n.GenesisValidatorsRoot, n.GenesisTime)
	}
	n, err := signer.ParseNetworkConfig([]byte("PRESET_BASE: minimal\nGENESIS_FORK_VERSION: 0x00000001\nGENESIS_TIME: 1700000000\nGENESIS_VALIDATORS_ROOT: 0x" + "ab" + "00000000000000000000000000000000000000000000000000000000000000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n.GenesisTime.Unix() != 1700000000 || n.GenesisValidatorsRoot == nil || n.GenesisValidatorsRoot[0] != 0xab {
		t.Errorf("config GENESIS_TIME/GENESIS_VALIDATORS_ROOT not read: %v %v", n.GenesisTime, n.GenesisValidatorsRoot)
	}
	if _, err := signer.ParseNetworkConfig([]byte("PRESET_BASE: minimal\nGENESIS_FORK_VERSION: 0x00000001\nGENESIS_TIME: soon\n")); err == nil {
		t.Error("a bad GENESIS_TIME was accepted")
	}
}

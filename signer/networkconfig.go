package signer

// Network configurations: the built-in networks, consensus config YAML files, and the preset
// sizes SSZ hashing needs.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	dynssz "github.com/pk910/dynamic-ssz"
)

// presetValues are the preset constants that the hashed types' dynamic sizes refer to.
var presetValues = map[string]map[string]any{
	"mainnet": mainnetPreset,
	"minimal": withOverrides(mainnetPreset, map[string]any{
		"SLOTS_PER_EPOCH":                     uint64(8),
		"SYNC_COMMITTEE_SIZE":                 uint64(32),
		"MAX_COMMITTEES_PER_SLOT":             uint64(4),
		"MAX_BLOB_COMMITMENTS_PER_BLOCK":      uint64(32),
		"EPOCHS_PER_ETH1_VOTING_PERIOD":       uint64(4),
		"MAX_DEPOSIT_REQUESTS_PER_PAYLOAD":    uint64(4),
		"MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD": uint64(2),
		"MAX_WITHDRAWALS_PER_PAYLOAD":         uint64(4),
	}),
}

var mainnetPreset = map[string]any{
	"SLOTS_PER_EPOCH":                        uint64(32),
	"SYNC_COMMITTEE_SIZE":                    uint64(512),
	"MAX_COMMITTEES_PER_SLOT":                uint64(64),
	"MAX_VALIDATORS_PER_COMMITTEE":           uint64(2048),
	"MAX_PROPOSER_SLASHINGS":                 uint64(16),
	"MAX_ATTESTER_SLASHINGS":                 uint64(2),
	"MAX_ATTESTATIONS":                       uint64(128),
	"MAX_DEPOSITS":                           uint64(16),
	"MAX_VOLUNTARY_EXITS":                    uint64(16),
	"MAX_ATTESTER_SLASHINGS_ELECTRA":         uint64(1),
	"MAX_ATTESTATIONS_ELECTRA":               uint64(8),
	"DEPOSIT_CONTRACT_TREE_DEPTH":            uint64(32),
	"MAX_BLS_TO_EXECUTION_CHANGES":           uint64(16),
	"MAX_BLOB_COMMITMENTS_PER_BLOCK":         uint64(4096),
	"EPOCHS_PER_ETH1_VOTING_PERIOD":          uint64(64),
	"MAX_DEPOSIT_REQUESTS_PER_PAYLOAD":       uint64(8192),
	"MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD":    uint64(16),
	"MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD": uint64(2),
	"MAX_WITHDRAWALS_PER_PAYLOAD":            uint64(16),
}

func withOverrides(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// PresetSSZ returns an SSZ hasher configured for a preset ("mainnet" or "minimal").
func PresetSSZ(preset string) (*dynssz.DynSsz, error) {
	vals, ok := presetValues[preset]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q (want mainnet or minimal)", preset)
	}
	return dynssz.NewDynSsz(vals), nil
}

type builtin struct {
	preset      string
	secsPerSlot uint64
	genesis     int64 // unix seconds; 0 unknown
	versions    [7]uint32
	epochs      [7]uint64
	gvr         string // genesis validators root; "" unknown
}

const ff = math.MaxUint64

var builtins = map[string]builtin{
	"mainnet": {"mainnet", 12, 1606824023,
		[7]uint32{0x00000000, 0x01000000, 0x02000000, 0x03000000, 0x04000000, 0x05000000, 0x06000000},
		[7]uint64{0, 74240, 144896, 194048, 269568, 364032, 411392},
		"0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"},
	"sepolia": {"mainnet", 12, 1655733600,
		[7]uint32{0x90000069, 0x90000070, 0x90000071, 0x90000072, 0x90000073, 0x90000074, 0x90000075},
		[7]uint64{0, 50, 100, 56832, 132608, 222464, 272640},
		"0xd8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078"},
	"holesky": {"mainnet", 12, 1695902400,
		[7]uint32{0x01017000, 0x02017000, 0x03017000, 0x04017000, 0x05017000, 0x06017000, 0x07017000},
		[7]uint64{0, 0, 0, 256, 29696, 115968, 165120},
		"0x9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1"},
	"hoodi": {"mainnet", 12, 1742213400,
		[7]uint32{0x10000910, 0x20000910, 0x30000910, 0x40000910, 0x50000910, 0x60000910, 0x70000910},
		[7]uint64{0, 0, 0, 0, 0, 2048, 50688},
		"0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f"},
	// The consensus-specs minimal config: fork versions 0x0N000001, no fork scheduled (dev chains
	// override epochs; the signer takes the fork from each request's fork_info).
	"minimal": {"minimal", 6, 0,
		[7]uint32{0x00000001, 0x01000001, 0x02000001, 0x03000001, 0x04000001, 0x05000001, 0x06000001},
		[7]uint64{0, ff, ff, ff, ff, ff, ff}, ""},
}

// BuiltinNetworks lists the names LoadNetwork accepts besides a file path.
func BuiltinNetworks() []string { return []string{"mainnet", "hoodi", "sepolia", "holesky", "minimal"} }

// ErrNetwork reports an unusable --network value or config file.
var ErrNetwork = errors.New("invalid network configuration")

// LoadNetwork returns a built-in network by name, or parses a consensus config YAML file when the
// value is not a built-in name.
func LoadNetwork(nameOrPath string) (*Network, error) {
	if b, ok := builtins[nameOrPath]; ok {
		n := &Network{Name: nameOrPath, Preset: b.preset, SecondsPerSlot: b.secsPerSlot}
		if b.genesis != 0 {
			n.GenesisTime = time.Unix(b.genesis, 0).UTC()
		}
		if b.gvr != "" {
			r, err := ParseRoot(b.gvr)
			if err != nil {
				panic("built-in network " + nameOrPath + ": " + err.Error())
			}
			n.GenesisValidatorsRoot = &r
		}
		for i, name := range Forks {
			var v phase0.Version
			v[0], v[1], v[2], v[3] = byte(b.versions[i]>>24), byte(b.versions[i]>>16), byte(b.versions[i]>>8), byte(b.versions[i])
			n.Schedule = append(n.Schedule, Fork{Name: name, Version: v, Epoch: phase0.Epoch(b.epochs[i])})
		}
		return n.finish()
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is neither a built-in network (%s) nor a readable config file: %v",
			ErrNetwork, nameOrPath, strings.Join(BuiltinNetworks(), ", "), err)
	}
	n, err := ParseNetworkConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nameOrPath, err)
	}
	return n, nil
}

// ParseNetworkConfig reads a consensus-specs style config YAML (flat KEY: value lines). It needs
// PRESET_BASE and GENESIS_FORK_VERSION; later forks are optional (unscheduled when absent).
func ParseNetworkConfig(data []byte) (*Network, error) {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		if s[0] == ' ' || s[0] == '\t' || s[0] == '-' {
			continue // nested values (e.g. BLOB_SCHEDULE entries) are not needed here
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: expected KEY: value", ErrNetwork, line)
		}
		kv[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `'"`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNetwork, err)
	}
	n := &Network{Name: kv["CONFIG_NAME"], Preset: strings.ToLower(kv["PRESET_BASE"])}
	if n.Name == "" {
		n.Name = "custom"
	}
	if n.Preset == "" {
		return nil, fmt.Errorf("%w: PRESET_BASE is missing", ErrNetwork)
	}
	// Not consensus-spec keys, but devnet tools write them: the guard and the root check use them.
	if s, ok := kv["GENESIS_TIME"]; ok {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%w: GENESIS_TIME %q is not a positive unix time", ErrNetwork, s)
		}
		n.GenesisTime = time.Unix(v, 0).UTC()
	}
	if s, ok := kv["GENESIS_VALIDATORS_ROOT"]; ok {
		r, err := ParseRoot(s)
		if err != nil {
			return nil, fmt.Errorf("%w: GENESIS_VALIDATORS_ROOT: %v", ErrNetwork, err)
		}
		n.GenesisValidatorsRoot = &r
	}
	n.SecondsPerSlot = 12
	if s, ok := kv["SECONDS_PER_SLOT"]; ok {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v == 0 {
			return nil, fmt.Errorf("%w: SECONDS_PER_SLOT %q is not a positive integer", ErrNetwork, s)
		}
		n.SecondsPerSlot = v
	}
	for i, name := range Forks {
		prefix := name
		if name == Phase0 {
			prefix = "GENESIS"
		}
		vs, ok := kv[prefix+"_FORK_VERSION"]
		if !ok {
			if i == 0 {
				return nil, fmt.Errorf("%w: GENESIS_FORK_VERSION is missing", ErrNetwork)
			}
			continue // a fork the config does not define: absent, so no request can use it
		}
		v, err := ParseVersion(vs)
		if err != nil {
			return nil, fmt.Errorf("%w: %s_FORK_VERSION: %v", ErrNetwork, prefix, err)
		}
		f := Fork{Name: name, Version: v}
		if i > 0 {
			es := kv[name+"_FORK_EPOCH"]
			if es == "" {
				f.Epoch = FarFutureEpoch
			} else if e, err := strconv.ParseUint(es, 10, 64); err != nil {
				return nil, fmt.Errorf("%w: %s_FORK_EPOCH %q is not an integer", ErrNetwork, name, es)
			} else {
				f.Epoch = phase0.Epoch(e)
			}
		}
		n.Schedule = append(n.Schedule, f)
	}
	return n.finish()
}

func (n *Network) finish() (*Network, error) {
	vals, ok := presetValues[n.Preset]
	if !ok {
		return nil, fmt.Errorf("%w: unknown preset %q (want mainnet or minimal)", ErrNetwork, n.Preset)
	}
	n.SlotsPerEpoch = vals["SLOTS_PER_EPOCH"].(uint64)
	n.syncCommitteeSize = vals["SYNC_COMMITTEE_SIZE"].(uint64)
	n.maxCommitteesPerSlot = vals["MAX_COMMITTEES_PER_SLOT"].(uint64)
	seen := map[phase0.Version]string{}
	for _, f := range n.Schedule {
		if prev, dup := seen[f.Version]; dup && f.Epoch != FarFutureEpoch {
			return nil, fmt.Errorf("%w: forks %s and %s share version %#x", ErrNetwork, prev, f.Name, f.Version[:])
		}
		seen[f.Version] = f.Name
	}
	ssz, err := PresetSSZ(n.Preset)
	if err != nil {
		return nil, err
	}
	n.ssz = ssz
	return n, nil
}

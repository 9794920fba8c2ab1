package signer_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
)

func TestLoadNetworkBuiltins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		preset        string
		slotsPerEpoch uint64
		secsPerSlot   uint64
		genesis       int64 // unix; 0: unknown
		genesisFork   phase0.Version
		altair        phase0.Epoch
	}{
		{"mainnet", "mainnet", 32, 12, 1606824023, phase0.Version{0, 0, 0, 0}, 74240},
		{"hoodi", "mainnet", 32, 12, 1742213400, phase0.Version{0x10, 0x00, 0x09, 0x10}, 0},
		{"sepolia", "mainnet", 32, 12, 1655733600, phase0.Version{0x90, 0x00, 0x00, 0x69}, 50},
		{"holesky", "mainnet", 32, 12, 1695902400, phase0.Version{0x01, 0x01, 0x70, 0x00}, 0},
		{"minimal", "minimal", 8, 6, 0, phase0.Version{0, 0, 0, 1}, signer.FarFutureEpoch},
	}
	if got, want := len(signer.BuiltinNetworks()), len(tests); got != want {
		t.Fatalf("BuiltinNetworks() has %d names, the test covers %d: %v", got, want, signer.BuiltinNetworks())
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := signer.LoadNetwork(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			wantEq(t, "Name", n.Name, tc.name)
			wantEq(t, "Preset", n.Preset, tc.preset)
			wantEq(t, "SlotsPerEpoch", n.SlotsPerEpoch, tc.slotsPerEpoch)
			wantEq(t, "SecondsPerSlot", n.SecondsPerSlot, tc.secsPerSlot)
			if tc.genesis == 0 {
				if !n.GenesisTime.IsZero() {
					t.Errorf("GenesisTime = %v, want unknown", n.GenesisTime)
				}
			} else {
				wantEq(t, "GenesisTime", n.GenesisTime.Unix(), tc.genesis)
			}
			wantEq(t, "GenesisForkVersion", n.GenesisForkVersion(), tc.genesisFork)

			if len(n.Schedule) != len(signer.Forks) {
				t.Fatalf("schedule has %d forks, want %d", len(n.Schedule), len(signer.Forks))
			}
			seen := map[phase0.Version]bool{}
			for i, f := range n.Schedule {
				wantEq(t, "fork name", f.Name, signer.Forks[i])
				if i > 0 && f.Epoch != signer.FarFutureEpoch && f.Epoch < n.Schedule[i-1].Epoch {
					t.Errorf("%s epoch %d is before %s epoch %d", f.Name, f.Epoch, n.Schedule[i-1].Name, n.Schedule[i-1].Epoch)
				}
				if seen[f.Version] {
					t.Errorf("%s reuses version %#x", f.Name, f.Version[:])
				}
				seen[f.Version] = true
			}
			wantEq(t, "Schedule[0].Epoch", n.Schedule[0].Epoch, phase0.Epoch(0))
			wantEq(t, "Altair epoch", n.Schedule[1].Epoch, tc.altair)
		})
	}
}

const testConfigYAML = `# A devnet config in the consensus-specs format.
CONFIG_NAME: 'vigil-devnet'
PRESET_BASE: "minimal"

SECONDS_PER_SLOT: 6
MIN_GENESIS_TIME: 1700000000
DEPOSIT_CONTRACT_ADDRESS: 0x4242424242424242424242424242424242424242

GENESIS_FORK_VERSION: 0x10000038   # trailing comment
ALTAIR_FORK_VERSION: 0x20000038
ALTAIR_FORK_EPOCH: 10
BELLATRIX_FORK_VERSION: 0x30000038
BELLATRIX_FORK_EPOCH: 18446744073709551615
CAPELLA_FORK_VERSION: 0x40000038
# DENEB is not configured at all
BLOB_SCHEDULE:
  - EPOCH: 269568
    MAX_BLOBS_PER_BLOCK: 6
`

func TestParseNetworkConfig(t *testing.T) {
	t.Parallel()
	n, err := signer.ParseNetworkConfig([]byte(strings.ReplaceAll(testConfigYAML, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "Name", n.Name, "vigil-devnet")
	wantEq(t, "Preset", n.Preset, "minimal")
	wantEq(t, "SlotsPerEpoch", n.SlotsPerEpoch, uint64(8))
	wantEq(t, "SecondsPerSlot", n.SecondsPerSlot, uint64(6))
	if !n.GenesisTime.IsZero() {
		t.Errorf("GenesisTime = %v, want unknown (config files do not carry it)", n.GenesisTime)
	}
	want := []signer.Fork{
		{Name: signer.Phase0, Version: phase0.Version{0x10, 0, 0, 0x38}, Epoch: 0},
		{Name: signer.Altair, Version: phase0.Version{0x20, 0, 0, 0x38}, Epoch: 10},
		{Name: signer.Bellatrix, Version: phase0.Version{0x30, 0, 0, 0x38}, Epoch: signer.FarFutureEpoch},
		{Name: signer.Capella, Version: phase0.Version{0x40, 0, 0, 0x38}, Epoch: signer.FarFutureEpoch}, // version without epoch
	}
	// Forks the config does not define (Deneb on) are absent, so no request can use them.
	if len(n.Schedule) != len(want) {
		t.Fatalf("schedule = %+v, want %+v", n.Schedule, want)
	}
	for i, f := range n.Schedule {
		if f != want[i] {
			t.Errorf("schedule[%d] = %+v, want %+v", i, f, want[i])
		}
	}
	for _, v := range []phase0.Version{{0xff, 0xff, 0xff, 4}, {0xff, 0xff, 0xff, 5}, {}} {
		if name, ok := n.KnowsVersion(v); ok {
			t.Errorf("KnowsVersion(%#x) = %s: an undefined fork must match nothing", v[:], name)
		}
	}
	if name, ok := n.KnowsVersion(phase0.Version{0x20, 0, 0, 0x38}); !ok || name != signer.Altair {
		t.Errorf("KnowsVersion(altair) = %q, %v", name, ok)
	}
	if _, ok := n.KnowsVersion(phase0.Version{0x04, 0, 0, 0x01}); ok {
		t.Error("an unconfigured fork matches the minimal preset's Deneb version")
	}
}

func TestParseNetworkConfigDefaults(t *testing.T) {
	t.Parallel()
	n, err := signer.ParseNetworkConfig([]byte("PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x00000064\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "Name", n.Name, "custom")
	wantEq(t, "SlotsPerEpoch", n.SlotsPerEpoch, uint64(32))
	wantEq(t, "SecondsPerSlot", n.SecondsPerSlot, uint64(12))
	wantEq(t, "GenesisForkVersion", n.GenesisForkVersion(), phase0.Version{0, 0, 0, 0x64})
	for _, f := range n.Schedule[1:] {
		wantEq(t, f.Name+" epoch", f.Epoch, signer.FarFutureEpoch)
	}
}

func TestParseNetworkConfigErrors(t *testing.T) {
	t.Parallel()
	const base = "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x00000064\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"PRESET_BASE"}},
		{"missing PRESET_BASE", "GENESIS_FORK_VERSION: 0x00000064\n", []string{"PRESET_BASE", "missing"}},
		{"missing GENESIS_FORK_VERSION", "PRESET_BASE: mainnet\n", []string{"GENESIS_FORK_VERSION", "missing"}},
		{"unknown preset", "PRESET_BASE: gnosis\nGENESIS_FORK_VERSION: 0x00000064\n", []string{"preset", "gnosis"}},
		{"short genesis version", "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x0064\n", []string{"GENESIS_FORK_VERSION", "4 bytes"}},
		{"genesis version without 0x", "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 00000064\n", []string{"GENESIS_FORK_VERSION", "0x"}},
		{"bad altair version", base + "ALTAIR_FORK_VERSION: 0xzz000064\nALTAIR_FORK_EPOCH: 1\n", []string{"ALTAIR_FORK_VERSION", "hex"}},
		{"bad altair epoch", base + "ALTAIR_FORK_VERSION: 0x01000064\nALTAIR_FORK_EPOCH: ten\n", []string{"ALTAIR_FORK_EPOCH", "ten"}},
		{"negative epoch", base + "ALTAIR_FORK_VERSION: 0x01000064\nALTAIR_FORK_EPOCH: -1\n", []string{"ALTAIR_FORK_EPOCH"}},
		{"zero SECONDS_PER_SLOT", base + "SECONDS_PER_SLOT: 0\n", []string{"SECONDS_PER_SLOT"}},
		{"bad SECONDS_PER_SLOT", base + "SECONDS_PER_SLOT: twelve\n", []string{"SECONDS_PER_SLOT", "twelve"}},
		{"line without colon", base + "JUST_A_WORD\n", []string{"line 3"}},
		{"scheduled forks share a version", base + "ALTAIR_FORK_VERSION: 0x00000064\nALTAIR_FORK_EPOCH: 5\n", []string{"PHASE0", "ALTAIR", "version"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := signer.ParseNetworkConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseNetworkConfig succeeded (%+v), want an error", n)
			}
			if !errors.Is(err, signer.ErrNetwork) {
				t.Errorf("error %q does not wrap ErrNetwork", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestLoadNetworkFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(good, []byte(testConfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := signer.LoadNetwork(good)
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "Name", n.Name, "vigil-devnet")
	wantEq(t, "altair epoch", n.Schedule[1].Epoch, phase0.Epoch(10))

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("GENESIS_FORK_VERSION: 0x00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = signer.LoadNetwork(bad)
	if !errors.Is(err, signer.ErrNetwork) || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "PRESET_BASE") {
		t.Errorf("LoadNetwork(bad file) = %v, want an ErrNetwork naming the file and PRESET_BASE", err)
	}
}

func TestLoadNetworkUnknown(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		filepath.Join(t.TempDir(), "does-not-exist.yaml"),
		"gnosis", // not built in, and not a file
		"Mainnet",
		"",
	} {
		n, err := signer.LoadNetwork(name)
		if err == nil {
			t.Errorf("LoadNetwork(%q) = %s, want an error", name, n.Name)
			continue
		}
		if !errors.Is(err, signer.ErrNetwork) {
			t.Errorf("LoadNetwork(%q): %q does not wrap ErrNetwork", name, err)
		}
		if !strings.Contains(err.Error(), "mainnet") {
			t.Errorf("LoadNetwork(%q): %q does not list the built-in networks", name, err)
		}
	}
}

func TestEpochOf(t *testing.T) {
	t.Parallel()
	mainnet := mustNetwork(t, "mainnet")
	minimal := mustNetwork(t, "minimal")
	tests := []struct {
		n    *signer.Network
		slot phase0.Slot
		want phase0.Epoch
	}{
		{mainnet, 0, 0},
		{mainnet, 31, 0},
		{mainnet, 32, 1},
		{mainnet, 65, 2},
		{mainnet, 74240 * 32, 74240},
		{minimal, 7, 0},
		{minimal, 8, 1},
		{minimal, 17, 2},
		{mainnet, phase0.Slot(^uint64(0)), phase0.Epoch(^uint64(0) / 32)},
	}
	for _, tc := range tests {
		if got := tc.n.EpochOf(tc.slot); got != tc.want {
			t.Errorf("%s EpochOf(%d) = %d, want %d", tc.n.Name, tc.slot, got, tc.want)
		}
	}
}

func TestCurrentEpoch(t *testing.T) {
	t.Parallel()
	n := mustNetwork(t, "mainnet")
	genesis := time.Unix(1606824023, 0)
	epoch := 12 * 32 * time.Second
	tests := []struct {
		name   string
		now    time.Time
		want   phase0.Epoch
		wantOK bool
	}{
		{"long before genesis", time.Unix(0, 0), 0, false},
		{"just before genesis", genesis.Add(-time.Nanosecond), 0, false},
		{"at genesis", genesis, 0, true},
		{"end of epoch 0", genesis.Add(epoch - time.Nanosecond), 0, true},
		{"start of epoch 1", genesis.Add(epoch), 1, true},
		{"in epoch 74240", genesis.Add(74240*epoch + 5*time.Minute), 74240, true},
		{"other time zone", genesis.Add(3 * epoch).In(time.FixedZone("x", 5*3600)), 3, true},
	}
	for _, tc := range tests {
		got, ok := n.CurrentEpoch(tc.now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: CurrentEpoch = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
	// A network without a known genesis time never has a current epoch.
	if e, ok := mustNetwork(t, "minimal").CurrentEpoch(time.Now()); ok {
		t.Errorf("minimal CurrentEpoch = %d, true; want false (genesis unknown)", e)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	if v, err := signer.ParseVersion("0x0A0b0c0d"); err != nil || v != (phase0.Version{0x0a, 0x0b, 0x0c, 0x0d}) {
		t.Errorf("ParseVersion = %#x, %v", v[:], err)
	}
	for _, s := range []string{"", "0x", "0x010203", "0x0102030405", "01020304", "0xgg020304"} {
		if _, err := signer.ParseVersion(s); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", s)
		}
	}
}

func mustNetwork(t *testing.T, name string) *signer.Network {
	t.Helper()
	n, err := signer.LoadNetwork(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

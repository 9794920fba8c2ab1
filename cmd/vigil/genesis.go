package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// genesisFlags say what the chain's genesis is when the network does not know it (a custom
// config, minimal): the genesis time drives the far-future guard, the genesis validators root
// the check that every request is for this chain.
type genesisFlags struct {
	time        string
	root        string
	beaconNodes urlList
}

func (g *genesisFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.time, "genesis-time", "", "genesis time of the chain (unix seconds or RFC 3339) when the network does not know it: the far-future guard needs it")
	fs.StringVar(&g.root, "genesis-validators-root", "", "genesis validators root of the chain (0x…) when the network does not know it: requests carrying another root are refused")
	fs.Var(&g.beaconNodes, "beacon-node-url", "beacon node REST API URL (repeatable or comma-separated); its /eth/v1/beacon/genesis gives the genesis time and validators root of a custom network")
}

// urlList is a repeatable, comma-separated flag value.
type urlList []string

func (u *urlList) String() string { return strings.Join(*u, ",") }
func (u *urlList) Set(v string) error {
	for _, s := range splitList(v) {
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			return fmt.Errorf("%q is not an http:// or https:// URL", s)
		}
		*u = append(*u, strings.TrimRight(s, "/"))
	}
	return nil
}

// genesisInfo is what the beacon node's /eth/v1/beacon/genesis says (and what the data dir
// caches of it, so that a restart while the beacon node is down still knows).
type genesisInfo struct {
	Time        string `json:"genesis_time"`
	Root        string `json:"genesis_validators_root"`
	ForkVersion string `json:"genesis_fork_version"`
}

// parse checks the answer and returns its values.
func (g *genesisInfo) parse() (t time.Time, root phase0.Root, fork phase0.Version, err error) {
	secs, err := strconv.ParseUint(g.Time, 10, 63)
	if err != nil || secs == 0 {
		return t, root, fork, fmt.Errorf("genesis_time %q is not a unix time", g.Time)
	}
	if root, err = signer.ParseRoot(g.Root); err != nil {
		return t, root, fork, fmt.Errorf("genesis_validators_root: %v", err)
	}
	if fork, err = signer.ParseVersion(g.ForkVersion); err != nil {
		return t, root, fork, fmt.Errorf("genesis_fork_version: %v", err)
	}
	return time.Unix(int64(secs), 0).UTC(), root, fork, nil
}

// genesisReport says where the network's genesis values came from (for the start-up log).
type genesisReport struct {
	timeFrom, rootFrom string
	beaconErr          error
}

// resolveGenesis fills in the network's genesis time and validators root from, in order: the
// network itself (built-in), the operator's flags, the beacon nodes (or their cached answer), and
// for --dev a genesis time recorded in the data dir at the first start. Sources that disagree
// are an error: a signer pointed at the wrong chain must not start.
func resolveGenesis(ctx context.Context, g genesisFlags, n *signer.Network, dataDir string, dev bool, log *slog.Logger) (genesisReport, error) {
	var rep genesisReport
	if !n.GenesisTime.IsZero() {
		rep.timeFrom = "network " + n.Name
	}
	if n.GenesisValidatorsRoot != nil {
		rep.rootFrom = "network " + n.Name
	}
	if g.time != "" {
		t, err := parseGenesisTime(g.time)
		if err != nil {
			return rep, usagef("--genesis-time %q: %v", g.time, err)
		}
		if err := setGenesisTime(n, t, "--genesis-time", &rep); err != nil {
			return rep, usagef("%v", err)
		}
	}
	if g.root != "" {
		r, err := signer.ParseRoot(g.root)
		if err != nil {
			return rep, usagef("--genesis-validators-root: %v", err)
		}
		if err := setGenesisRoot(n, r, "--genesis-validators-root", &rep); err != nil {
			return rep, usagef("%v", err)
		}
	}
	if len(g.beaconNodes) > 0 {
		cache := filepath.Join(dataDir, "beacon-genesis.json")
		info, from, err := fetchGenesis(ctx, g.beaconNodes)
		if err == nil {
			if b, merr := json.Marshal(info); merr == nil {
				if werr := writeFileAtomic(cache, b); werr != nil {
					log.Warn("cannot cache the beacon node's genesis", "path", cache, "err", werr)
				}
			}
		} else {
			rep.beaconErr = err
			b, rerr := os.ReadFile(cache)
			if rerr != nil || json.Unmarshal(b, &info) != nil {
				info = nil
			} else {
				from = "the cached answer of a beacon node (" + cache + "); beacon nodes unreachable: " + err.Error()
			}
		}
		if info != nil {
			t, root, fork, err := info.parse()
			if err != nil {
				return rep, fmt.Errorf("beacon node %s: %v", from, err)
			}
			if !genesisVersionOf(n, fork) {
				return rep, fmt.Errorf("beacon node %s is on another chain: genesis fork version %#x, network %s has %#x", from, fork[:], n.Name, n.GenesisForkVersion())
			}
			if err := setGenesisTime(n, t, "beacon node "+from, &rep); err != nil {
				return rep, err
			}
			if err := setGenesisRoot(n, root, "beacon node "+from, &rep); err != nil {
				return rep, err
			}
		}
	}
	if n.GenesisTime.IsZero() && dev {
		t, err := devGenesisTime(filepath.Join(dataDir, "dev-genesis-time"))
		if err != nil {
			return rep, fmt.Errorf("--dev: %w", err)
		}
		n.GenesisTime, rep.timeFrom = t, "--dev (recorded in the data dir at the first start)"
	}
	return rep, nil
}

func setGenesisTime(n *signer.Network, t time.Time, from string, rep *genesisReport) error {
	if !n.GenesisTime.IsZero() && !n.GenesisTime.Equal(t) {
		return fmt.Errorf("genesis time %s from %s disagrees with %s from %s", t.Format(time.RFC3339), from, n.GenesisTime.Format(time.RFC3339), rep.timeFrom)
	}
	if n.GenesisTime.IsZero() {
		n.GenesisTime, rep.timeFrom = t, from
	}
	return nil
}

func setGenesisRoot(n *signer.Network, r phase0.Root, from string, rep *genesisReport) error {
	if n.GenesisValidatorsRoot != nil && *n.GenesisValidatorsRoot != r {
		return fmt.Errorf("genesis validators root %#x from %s disagrees with %#x from %s", r[:], from, n.GenesisValidatorsRoot[:], rep.rootFrom)
	}
	if n.GenesisValidatorsRoot == nil {
		n.GenesisValidatorsRoot, rep.rootFrom = &r, from
	}
	return nil
}

// checkStoreGenesis compares the database's pinned root with the network's: a database of
// another chain is a start-up error; an unknown network root is taken from the database.
func checkStoreGenesis(ctx context.Context, n *signer.Network, store slashing.Store, rep *genesisReport) error {
	root, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return fmt.Errorf("slashing-protection database: %w", err)
	}
	if !ok {
		return nil
	}
	if n.GenesisValidatorsRoot != nil && *n.GenesisValidatorsRoot != root {
		return fmt.Errorf("the slashing-protection database belongs to another chain: it is pinned to genesis validators root %#x, network %s has %#x (from %s)",
			root[:], n.Name, n.GenesisValidatorsRoot[:], rep.rootFrom)
	}
	if n.GenesisValidatorsRoot == nil {
		n.GenesisValidatorsRoot, rep.rootFrom = &root, "the slashing-protection database (pinned by its first signature or import)"
	}
	return nil
}

func parseGenesisTime(s string) (time.Time, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		if v <= 0 {
			return time.Time{}, errors.New("not a positive unix time")
		}
		return time.Unix(v, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("want unix seconds or an RFC 3339 time")
	}
	return t.UTC(), nil
}

// devGenesisTime reads the dev network's genesis time from path, recording the current time
// there at the first start (so that the far-future guard is on in --dev too).
func devGenesisTime(path string) (time.Time, error) {
	if b, err := os.ReadFile(path); err == nil {
		t, err := parseGenesisTime(strings.TrimSpace(string(b)))
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %v", path, err)
		}
		return t, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return time.Time{}, err
	}
	now := time.Now().Truncate(time.Second).UTC()
	if err := writeFileAtomic(path, []byte(strconv.FormatInt(now.Unix(), 10)+"\n")); err != nil {
		return time.Time{}, err
	}
	return now, nil
}

// fetchGenesis asks each beacon node in turn for /eth/v1/beacon/genesis and returns the first
// answer (and which node gave it).
func fetchGenesis(ctx context.Context, urls []string) (*genesisInfo, string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	var errs []string
	for _, u := range urls {
		info, err := fetchGenesisFrom(ctx, client, u)
		if err == nil {
			return info, u, nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v", u, err))
	}
	return nil, "", errors.New(strings.Join(errs, "; "))
}

func fetchGenesisFrom(ctx context.Context, client *http.Client, base string) (*genesisInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/eth/v1/beacon/genesis", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var out struct {
		Data *genesisInfo `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Data == nil {
		return nil, fmt.Errorf("not a genesis answer: %.200s", body)
	}
	if _, _, _, err := out.Data.parse(); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// writeFileAtomic writes a small file by rename, so a crash never leaves half of it.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// logGenesis states at start what the signer knows of the chain and whether the far-future guard
// is on.
func logGenesis(log *slog.Logger, n *signer.Network, rep genesisReport, farFuture uint64) {
	if n.GenesisValidatorsRoot != nil {
		log.Info("genesis validators root known: requests carrying another are refused", "root", fmt.Sprintf("%#x", n.GenesisValidatorsRoot[:]), "from", rep.rootFrom)
	} else {
		log.Warn("genesis validators root unknown: the first block or attestation signed pins it in the slashing database (give --genesis-validators-root or --beacon-node-url to check it instead)")
	}
	if rep.beaconErr != nil {
		log.Warn("beacon nodes did not answer /eth/v1/beacon/genesis", "err", rep.beaconErr)
	}
	switch {
	case farFuture == 0:
		log.Warn("far-future guard OFF (--slashing-far-future-epochs 0): a block or attestation for any future epoch is signed and raises that key's history for good")
	default:
		log.Info("far-future guard on", "max_epochs_ahead", farFuture, "genesis_time", n.GenesisTime.Format(time.RFC3339), "from", rep.timeFrom)
	}
}

// genesisVersionOf reports whether a beacon node's genesis_fork_version belongs to n: the
// network's GENESIS_FORK_VERSION, or the version of any fork the network schedules at epoch 0
// (a devnet that starts in Altair: Lodestar then reports the Altair version as the genesis one).
func genesisVersionOf(n *signer.Network, v phase0.Version) bool {
	if v == n.GenesisForkVersion() {
		return true
	}
	for _, f := range n.Schedule {
		if f.Epoch == 0 && f.Version == v {
			return true
		}
	}
	return false
}

package main

// Validator-client failover in `vigil serve`: the miss tracker on the signer's request stream,
// the controller on the HA leader (failover/controller), its metrics and flags.

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/failover/assignment"
	"github.com/vigil-signer/vigil/failover/beacon"
	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/failover/controller"
	"github.com/vigil-signer/vigil/failover/remotekeys"
	"github.com/vigil-signer/vigil/failover/watch"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing"
)

// failoverFlags are the serve flags of validator-client failover.
type failoverFlags struct {
	mode         string
	missedEpochs int
	cold         bool
	unfenceAfter int
}

func (f *failoverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.mode, "failover-mode", "act", "validator-client failover with --clients-file and --beacon-node-url: act (move the keys of a failed client to a standby), observe (detect and report only) or off")
	fs.IntVar(&f.missedEpochs, "failover-missed-epochs", 2, "a validator client has failed when its active keys miss this many consecutive epochs")
	fs.IntVar(&f.unfenceAfter, "failover-unfence-after-epochs", 0, "opt-in: unfence a failed validator client by itself once it has asked for attestations in this many consecutive epochs (0: only `vigil failover unfence` does); its keys stay where they were moved")
	fs.BoolVar(&f.cold, "failover-cold-move", false, "move keys to the standby only at failover (import then; delete from the failed client) instead of staging them on it ahead of time (hot standby)")
}

func (f *failoverFlags) validate() error {
	switch {
	case f.mode != "act" && f.mode != "observe" && f.mode != "off":
		return usagef("--failover-mode %q: want act, observe or off", f.mode)
	case f.missedEpochs < 1:
		return usagef("--failover-missed-epochs must be at least 1")
	case f.unfenceAfter < 0:
		return usagef("--failover-unfence-after-epochs must not be negative")
	}
	return nil
}

// vcFailover builds the controller (nil when there are no clients, no beacon node, or it is off).
func vcFailover(f failoverFlags, reg *clients.Registry, beaconURLs []string, store slashing.Store, authz *assignment.Authorizer,
	tracker *watch.Tracker, network *signer.Network, isLeader func() bool, preg prometheus.Registerer, log *slog.Logger) (*controller.Controller, error) {
	if reg == nil || f.mode == "off" {
		return nil, nil
	}
	if len(beaconURLs) == 0 {
		log.Warn("validator-client failover is off: it needs --beacon-node-url (chain health and validator statuses)")
		return nil, nil
	}
	if network.GenesisTime.IsZero() {
		log.Warn("validator-client failover is off: the chain's genesis time is unknown")
		return nil, nil
	}
	ledger, ok := store.(slashing.FailoverLedger)
	if !ok {
		return nil, usagef("the slashing store keeps no failover state")
	}
	bn, err := beacon.New(beaconURLs, 5*time.Second)
	if err != nil {
		return nil, usagef("--beacon-node-url: %v", err)
	}
	mode := controller.Act
	if f.mode == "observe" {
		mode = controller.Observe
	}
	return controller.New(controller.Config{
		Clients: reg.Current, Ledger: ledger, Beacon: bn, VCs: vcKeymanagers{}, Tracker: tracker, Assignments: authz, IsLeader: isLeader,
		Genesis: network.GenesisTime, SecondsPerSlot: time.Duration(network.SecondsPerSlot) * time.Second, SlotsPerEpoch: network.SlotsPerEpoch,
		MissedEpochs: f.missedEpochs, UnfenceAfter: f.unfenceAfter, Mode: mode, Cold: f.cold, Logger: log, Metrics: failoverMetrics(preg),
	})
}

// vcKeymanagers reaches each client's keymanager with its URL and token file.
type vcKeymanagers struct{}

var kmHTTP = &http.Client{Timeout: 10 * time.Second}

func (vcKeymanagers) client(c *clients.Client) *remotekeys.Client {
	return &remotekeys.Client{URL: c.KeymanagerURL, TokenFile: c.KeymanagerTokenFile, HTTP: kmHTTP}
}

func (v vcKeymanagers) List(ctx context.Context, c *clients.Client) ([]remotekeys.Key, error) {
	return v.client(c).List(ctx)
}

func (v vcKeymanagers) Import(ctx context.Context, c *clients.Client, pks []string, url string) ([]remotekeys.Result, error) {
	return v.client(c).Import(ctx, pks, url)
}

func (v vcKeymanagers) Delete(ctx context.Context, c *clients.Client, pks []string) ([]remotekeys.Result, error) {
	return v.client(c).Delete(ctx, pks)
}

// failoverMetrics registers the validator-client failover series.
func failoverMetrics(reg prometheus.Registerer) controller.Metrics {
	missed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_client_missed_attestations_total",
		Help: "Epochs in which none of a validator client's active keys asked for an attestation."}, []string{"client"})
	consec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_client_consecutive_missed_epochs",
		Help: "Consecutive epochs a validator client missed."}, []string{"client"})
	keys := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_client_keys", Help: "Keys assigned to a validator client."}, []string{"client"})
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_client_last_request_timestamp_seconds",
		Help: "Unix time of a validator client's last sign request (0: none since start)."}, []string{"client"})
	moves := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_failover_moves_total",
		Help: "Keys moved from a failed validator client to a standby."}, []string{"from", "to", "reason"})
	healthy := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_chain_healthy", Help: "1 while a beacon node is synced and its head advances."})
	stuck := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_failover_stuck", Help: "1 while a failed validator client cannot be moved (no healthy standby)."})
	staged := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_failover_staged_keys", Help: "Keys a standby validator client holds of those staged on it."}, []string{"client"})
	reg.MustRegister(missed, consec, keys, last, moves, healthy, stuck, staged)
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	return controller.Metrics{
		Missed:       func(c string) { missed.WithLabelValues(c).Inc() },
		Consecutive:  func(c string, n int) { consec.WithLabelValues(c).Set(float64(n)) },
		Keys:         func(c string, n int) { keys.WithLabelValues(c).Set(float64(n)) },
		Moved:        func(from, to, reason string, n int) { moves.WithLabelValues(from, to, reason).Add(float64(n)) },
		ChainHealthy: func(ok bool) { healthy.Set(b(ok)) },
		Stuck:        func(s bool) { stuck.Set(b(s)) },
		LastRequest: func(c string, t time.Time) {
			if !t.IsZero() {
				last.WithLabelValues(c).Set(float64(t.Unix()))
			}
		},
		Staged: func(c string, have, _ int) { staged.WithLabelValues(c).Set(float64(have)) },
	}
}

// failoverReport answers the failover admin routes.
type failoverReport struct {
	reg    *clients.Registry
	authz  *assignment.Authorizer
	ledger slashing.FailoverLedger
	track  *watch.Tracker
}

func (f failoverReport) FailoverStatus(ctx context.Context) (any, error) {
	states, err := f.ledger.ClientStates(ctx)
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, c := range f.authz.Owners() {
		count[c]++
	}
	var out []map[string]any
	for _, c := range f.reg.Current().Clients() {
		st := states[c.Name]
		row := map[string]any{"name": c.Name, "role": string(c.Role), "keys": count[c.Name], "fenced": st.Fenced,
			"fenced_reason": st.Reason, "consecutive_missed_epochs": st.Missed}
		if last := f.track.Client(c.Name).LastRequest; !last.IsZero() {
			row["last_request"] = last.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, row)
	}
	return out, nil
}

func (f failoverReport) FailoverHistory(ctx context.Context) (any, error) {
	recs, err := f.ledger.AuditLog(ctx, 200)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(recs))
	for i, r := range recs {
		out[i] = map[string]any{"at": r.At.UTC().Format(time.RFC3339Nano), "action": r.Action, "from": r.From, "to": r.To,
			"keys": r.Keys, "reason": r.Reason, "detail": r.Detail}
	}
	return out, nil
}

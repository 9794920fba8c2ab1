package main

// End-to-end: mainnet, every sign type and fork shape against roots computed by signingtest,
// content negotiation, status codes, health, keys and metrics of one server.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apiv1 "github.com/attestantio/go-eth2-client/api/v1"
	"github.com/attestantio/go-eth2-client/spec/altair"
	"github.com/attestantio/go-eth2-client/spec/bellatrix"
	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/signingtest"
)

type signCase struct {
	name string
	key  uint64
	body map[string]any
	root phase0.Root // the expected signing root, computed here
}

func mainnetCases(t *testing.T) []signCase {
	var cs []signCase
	add := func(name string, key uint64, body map[string]any, root phase0.Root) {
		cs = append(cs, signCase{name, key, body, root})
	}

	// Blocks. Each key's slots increase, so nothing conflicts in the slashing database.
	{
		f := signingtest.MainnetFork("PHASE0")
		blk := signingtest.Phase0Block(1000, 1)
		add("BLOCK/phase0", 0, map[string]any{"type": "BLOCK", "fork_info": signingtest.ForkInfoJSON(f), "block": blk},
			signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, f, signingtest.EpochOf(blk.Slot), blk))

		blk = signingtest.Phase0Block(2000, 2)
		add("BLOCK_V2/PHASE0", 1, map[string]any{"type": "BLOCK_V2", "fork_info": signingtest.ForkInfoJSON(f),
			"beacon_block": map[string]any{"version": "PHASE0", "block": blk}},
			signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, f, signingtest.EpochOf(blk.Slot), blk))
	}
	{
		f := signingtest.MainnetFork("ALTAIR")
		blk := signingtest.AltairBlock(signingtest.ForkSlot("ALTAIR", 5), 3)
		add("BLOCK_V2/ALTAIR (mainnet sync aggregate)", 8, map[string]any{"type": "BLOCK_V2", "fork_info": signingtest.ForkInfoJSON(f),
			"beacon_block": map[string]any{"version": "ALTAIR", "block": blk}},
			signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, f, signingtest.EpochOf(blk.Slot), blk))
	}
	for i, name := range []string{"BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU"} {
		f := signingtest.MainnetFork(name)
		h := signingtest.BlockHeader(signingtest.ForkSlot(name, 3), byte(10+i))
		add("BLOCK_V2/"+name+" block_header", 2, signingtest.BlockHeaderRequest(f, name, h),
			signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, f, signingtest.EpochOf(h.Slot), h))
	}

	// Attestations (one key, increasing non-surrounding votes).
	{
		f := signingtest.MainnetFork("PHASE0")
		a := signingtest.AttestationData(320, 9, 10, 20)
		add("ATTESTATION/phase0", 3, signingtest.AttestationRequest(f, a),
			signingtest.SigningRoot(t, signingtest.DomainBeaconAttester, f, a.Target.Epoch, a))
		f = signingtest.MainnetFork("FULU")
		slot := signingtest.NowSlot() - 2*signingtest.MainnetSlotsPerEpoch
		a = signingtest.AttestationData(slot, signingtest.EpochOf(slot)-1, signingtest.EpochOf(slot), 21)
		add("ATTESTATION/FULU", 3, signingtest.AttestationRequest(f, a),
			signingtest.SigningRoot(t, signingtest.DomainBeaconAttester, f, a.Target.Epoch, a))
	}

	// Selection proofs and RANDAO: hash_tree_root(uint64).
	{
		f := signingtest.MainnetFork("ELECTRA")
		slot := signingtest.ForkSlot("ELECTRA", 77)
		add("AGGREGATION_SLOT/ELECTRA", 4, map[string]any{"type": "AGGREGATION_SLOT", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregation_slot": map[string]any{"slot": signingtest.Dec(slot)}},
			signingtest.ForkedRoot(t, signingtest.DomainSelectionProof, f, signingtest.EpochOf(slot), signingtest.Uint64Root(uint64(slot))))
		e := signingtest.EpochOf(slot)
		add("RANDAO_REVEAL/ELECTRA", 4, signingtest.RandaoRequest(f, e),
			signingtest.ForkedRoot(t, signingtest.DomainRandao, f, e, signingtest.Uint64Root(uint64(e))))
		// An epoch before fork_info.epoch signs with the previous version (DENEB here).
		e = f.Epoch - 1
		add("RANDAO_REVEAL/previous_version", 4, map[string]any{"type": "randao_reveal", "fork_info": signingtest.ForkInfoJSON(f),
			"randao_reveal": map[string]any{"epoch": signingtest.Dec(e)}},
			signingtest.ComputeSigningRoot(t, signingtest.Uint64Root(uint64(e)), signingtest.ComputeDomain(t, signingtest.DomainRandao, signingtest.MainnetFork("DENEB").CurrentVersion, signingtest.MainnetGVR)))
	}

	// Aggregates, every shape.
	{
		f := signingtest.MainnetFork("ALTAIR")
		agg := signingtest.Phase0Aggregate(signingtest.ForkSlot("ALTAIR", 40), 30)
		root := signingtest.SigningRoot(t, signingtest.DomainAggregateAndProof, f, signingtest.EpochOf(agg.Aggregate.Data.Slot), agg)
		add("AGGREGATE_AND_PROOF/phase0 unwrapped", 5, map[string]any{"type": "AGGREGATE_AND_PROOF", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregate_and_proof": agg}, root)
		add("AGGREGATE_AND_PROOF_V2/phase0 unwrapped", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregate_and_proof": agg}, root)

		f = signingtest.MainnetFork("DENEB")
		agg = signingtest.Phase0Aggregate(signingtest.ForkSlot("DENEB", 40), 31)
		add("AGGREGATE_AND_PROOF_V2/DENEB {version,data}", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregate_and_proof": map[string]any{"version": "DENEB", "data": agg}},
			signingtest.SigningRoot(t, signingtest.DomainAggregateAndProof, f, signingtest.EpochOf(agg.Aggregate.Data.Slot), agg))

		f = signingtest.MainnetFork("ELECTRA")
		eagg := signingtest.ElectraAggregate(signingtest.ForkSlot("ELECTRA", 40), 32)
		root = signingtest.SigningRoot(t, signingtest.DomainAggregateAndProof, f, signingtest.EpochOf(eagg.Aggregate.Data.Slot), eagg)
		add("AGGREGATE_AND_PROOF/ELECTRA unwrapped committee_bits", 5, map[string]any{"type": "AGGREGATE_AND_PROOF", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregate_and_proof": eagg}, root)
		add("AGGREGATE_AND_PROOF_V2/ELECTRA {version,data}", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregate_and_proof": map[string]any{"version": "ELECTRA", "data": eagg}}, root)

		f = signingtest.MainnetFork("FULU")
		eagg = signingtest.ElectraAggregate(signingtest.ForkSlot("FULU", 40), 33)
		add("AGGREGATE_AND_PROOF_V2/FULU {version,data}", 5, map[string]any{"type": "AGGREGATE_AND_PROOF_V2", "fork_info": signingtest.ForkInfoJSON(f),
			"aggregate_and_proof": map[string]any{"version": "FULU", "data": eagg}},
			signingtest.SigningRoot(t, signingtest.DomainAggregateAndProof, f, signingtest.EpochOf(eagg.Aggregate.Data.Slot), eagg))
	}

	// Voluntary exits: the caller's fork_info decides (EIP-7044 pins Capella for later exits).
	{
		f := signingtest.MainnetFork("CAPELLA")
		for _, e := range []phase0.Epoch{f.Epoch + 52, signingtest.MainnetFork("DENEB").Epoch + 1000} {
			ve := &phase0.VoluntaryExit{Epoch: e, ValidatorIndex: 123456}
			add(fmt.Sprintf("VOLUNTARY_EXIT/CAPELLA fork, epoch %d", e), 6, map[string]any{"type": "VOLUNTARY_EXIT", "fork_info": signingtest.ForkInfoJSON(f),
				"voluntary_exit": ve},
				signingtest.SigningRoot(t, signingtest.DomainVoluntaryExit, f, e, ve))
		}
	}

	// Deposit: genesis fork version, zero genesis validators root, no fork_info.
	{
		pub := interopKey(t, 6).PublicKey()
		wc := signingtest.Pattern(32, 40)
		wc[0] = 0x01
		msg := &phase0.DepositMessage{PublicKey: phase0.BLSPubKey(pub), WithdrawalCredentials: wc, Amount: 32_000_000_000}
		add("DEPOSIT", 6, map[string]any{"type": "DEPOSIT", "deposit": map[string]any{
			"pubkey": signingtest.Hex(pub[:]), "withdrawal_credentials": signingtest.Hex(wc), "amount": signingtest.Dec(msg.Amount), "genesis_fork_version": "0x00000000",
		}}, signingtest.ComputeSigningRoot(t, signingtest.HashTreeRoot(t, msg), signingtest.ComputeDomain(t, signingtest.DomainDeposit, phase0.Version{}, phase0.Root{})))
		// A deposit for another network (hoodi's genesis fork version) is signed for that
		// network, as Web3Signer does: deposits are not slashable.
		hoodi := phase0.Version{0x10, 0x00, 0x09, 0x10}
		add("DEPOSIT for another network", 6, map[string]any{"type": "DEPOSIT", "deposit": map[string]any{
			"pubkey": signingtest.Hex(pub[:]), "withdrawal_credentials": signingtest.Hex(wc), "amount": signingtest.Dec(msg.Amount), "genesis_fork_version": signingtest.Hex(hoodi[:]),
		}}, signingtest.ComputeSigningRoot(t, signingtest.HashTreeRoot(t, msg), signingtest.ComputeDomain(t, signingtest.DomainDeposit, hoodi, phase0.Root{})))
	}

	// Sync committee types under later forks than the samples' (and mainnet sizes).
	for i, name := range []string{"DENEB", "FULU"} {
		f := signingtest.MainnetFork(name)
		slot := signingtest.ForkSlot(name, 100+uint64(i))
		bbr := signingtest.Root32(byte(50 + i))
		add("SYNC_COMMITTEE_MESSAGE/"+name, 7, map[string]any{"type": "SYNC_COMMITTEE_MESSAGE", "fork_info": signingtest.ForkInfoJSON(f),
			"sync_committee_message": map[string]any{"beacon_block_root": signingtest.Hex(bbr[:]), "slot": signingtest.Dec(slot)}},
			signingtest.ForkedRoot(t, signingtest.DomainSyncCommittee, f, signingtest.EpochOf(slot), bbr))

		sel := &altair.SyncAggregatorSelectionData{Slot: slot, SubcommitteeIndex: 3}
		add("SYNC_COMMITTEE_SELECTION_PROOF/"+name, 7, map[string]any{"type": "SYNC_COMMITTEE_SELECTION_PROOF", "fork_info": signingtest.ForkInfoJSON(f),
			"sync_aggregator_selection_data": map[string]any{"slot": signingtest.Dec(slot), "subcommittee_index": "3"}},
			signingtest.SigningRoot(t, signingtest.DomainSyncCommitteeSelectionProof, f, signingtest.EpochOf(slot), sel))

		cp := &altair.ContributionAndProof{AggregatorIndex: 77, SelectionProof: signingtest.Sig96(byte(60 + i)), Contribution: &altair.SyncCommitteeContribution{
			Slot: slot, BeaconBlockRoot: bbr, SubcommitteeIndex: 2, AggregationBits: signingtest.Pattern(16, byte(70+i)), Signature: signingtest.Sig96(byte(80 + i)),
		}}
		add("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF/"+name, 7, map[string]any{"type": "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "fork_info": signingtest.ForkInfoJSON(f),
			"contribution_and_proof": cp},
			signingtest.SigningRoot(t, signingtest.DomainContributionAndProof, f, signingtest.EpochOf(slot), cp))
	}

	// Builder registration: mainnet's genesis fork version, zero root.
	{
		reg := &apiv1.ValidatorRegistration{
			FeeRecipient: bellatrix.ExecutionAddress(signingtest.Pattern(20, 90)), GasLimit: 36_000_000,
			Timestamp: time.Unix(1_760_000_000, 0), Pubkey: phase0.BLSPubKey(interopKey(t, 9).PublicKey()),
		}
		add("VALIDATOR_REGISTRATION", 9, map[string]any{"type": "VALIDATOR_REGISTRATION", "validator_registration": reg},
			signingtest.ComputeSigningRoot(t, signingtest.HashTreeRoot(t, reg), signingtest.ComputeDomain(t, signingtest.DomainApplicationBuilder, phase0.Version{}, phase0.Root{})))
	}
	return cs
}

func TestE2EMainnet(t *testing.T) {
	const nKeys = 12
	indices := make([]uint64, nKeys)
	for i := range indices {
		indices[i] = uint64(i)
	}
	v := start(t, append([]string{"--network", "mainnet"}, writeKeystores(t, indices...)...)...)

	t.Run("shapes", func(t *testing.T) {
		for _, c := range mainnetCases(t) {
			t.Run(c.name, func(t *testing.T) {
				sig := signature(t, v.signJSON(t, interopPub(t, c.key), c.body))
				wantSignature(t, c.key, c.root, sig)
			})
		}
		// The deposit for another network says at info which fork version it was signed for.
		if log := v.Stderr.waitFor(t, "deposit signed", 10*time.Second); !strings.Contains(log, "0x10000910") {
			t.Errorf("the deposit's fork version is not logged:\n%s", log)
		}
	})

	// A repeatable request (RANDAO is not slashing-protected) and its expected signature.
	f := signingtest.MainnetFork("ELECTRA")
	epoch := f.Epoch + 3
	randao := signingtest.RandaoRequest(f, epoch)
	randaoRoot := signingtest.ForkedRoot(t, signingtest.DomainRandao, f, epoch, signingtest.Uint64Root(uint64(epoch)))
	pub4 := interopPub(t, 4)
	wantSig := interopKey(t, 4).SignRoot(randaoRoot)

	t.Run("content negotiation", func(t *testing.T) {
		for _, accept := range []string{"application/json", "*/*", "APPLICATION/JSON", "text/html, application/json;q=0.9", "text/plain;q=0.1, */*;q=0.2"} {
			r := do(t, http.MethodPost, v.URL+signPath(pub4), accept, randao)
			if r.ctype != ctJSON {
				t.Errorf("Accept %q: Content-Type %q, want %q", accept, r.ctype, ctJSON)
			}
			var body map[string]string
			if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 || body["signature"] != wantSig.String() {
				t.Errorf("Accept %q: body %s, want {\"signature\":%q}", accept, r.body, wantSig)
			}
		}
		for _, accept := range []string{"", "text/plain", "application/xml"} {
			r := do(t, http.MethodPost, v.URL+signPath(pub4), accept, randao)
			if r.status != http.StatusOK || r.ctype != ctText || string(r.body) != wantSig.String() {
				t.Errorf("Accept %q: got %s, want 200 %s %s", accept, r, ctText, wantSig)
			}
		}
		// The identifier is accepted without 0x and in upper case (normalised like Web3Signer).
		r := v.signJSON(t, strings.ToUpper(strings.TrimPrefix(pub4, "0x")), randao)
		if got := signature(t, r); got != wantSig {
			t.Errorf("upper-case identifier: got %s", got)
		}
		// Errors carry a Content-Type too, whatever was accepted.
		r = do(t, http.MethodPost, v.URL+signPath(pub4), "text/plain", `{"type":"RANDAO_REVEAL"}`)
		wantError(t, r, http.StatusBadRequest, "fork_info")
	})

	t.Run("status codes", func(t *testing.T) {
		// Unknown key.
		wantError(t, v.signJSON(t, interopPub(t, 99), randao), http.StatusNotFound, "")

		// Supplied signing root: the right one is accepted (both spellings), a different one is 400.
		for _, field := range []string{"signing_root", "signingRoot"} {
			body := map[string]any{field: signingtest.Hex(randaoRoot[:])}
			for k, val := range randao {
				body[k] = val
			}
			if got := signature(t, v.signJSON(t, pub4, body)); got != wantSig {
				t.Errorf("%s supplied: signature %s", field, got)
			}
			bad := randaoRoot
			bad[31] ^= 1
			body[field] = signingtest.Hex(bad[:])
			wantError(t, v.signJSON(t, pub4, body), http.StatusBadRequest, "signing root")
		}

		// Blocks: a proposal, an identical repeat (same signature), a double proposal (412).
		fd := signingtest.MainnetFork("DENEB")
		slot := signingtest.ForkSlot("DENEB", 500)
		h := signingtest.BlockHeader(slot, 100)
		blockBody := func(h *phase0.BeaconBlockHeader) map[string]any {
			return signingtest.BlockHeaderRequest(fd, "DENEB", h)
		}
		pub10 := interopPub(t, 10)
		first := signature(t, v.signJSON(t, pub10, blockBody(h)))
		wantSignature(t, 10, signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, fd, signingtest.EpochOf(slot), h), first)
		if again := signature(t, v.signJSON(t, pub10, blockBody(h))); again != first {
			t.Errorf("identical re-sign gave another signature")
		}
		other := signingtest.BlockHeader(slot, 101)
		wantError(t, v.signJSON(t, pub10, blockBody(other)), http.StatusPreconditionFailed, "")
		// The far-future guard: more than 2 epochs past the wall clock.
		far := signingtest.BlockHeader(signingtest.EpochStart(signingtest.EpochOf(signingtest.NowSlot())+4), 102)
		ff := signingtest.MainnetFork("FULU")
		wantError(t, v.signJSON(t, pub10, signingtest.BlockHeaderRequest(ff, "FULU", far)), http.StatusPreconditionFailed, "epoch")

		// Attestations: a vote, its identical repeat, a double vote, a surrounding and a
		// surrounded vote.
		fa := signingtest.MainnetFork("FULU")
		att := func(source, target phase0.Epoch, seed byte) map[string]any {
			return signingtest.AttestationRequest(fa, signingtest.AttestationData(signingtest.EpochStart(target), source, target, seed))
		}
		base := signingtest.EpochOf(signingtest.NowSlot()) - 20
		pub11 := interopPub(t, 11)
		vote := signature(t, v.signJSON(t, pub11, att(base, base+5, 1)))
		a := signingtest.AttestationData(signingtest.EpochStart(base+5), base, base+5, 1)
		wantSignature(t, 11, signingtest.SigningRoot(t, signingtest.DomainBeaconAttester, fa, a.Target.Epoch, a), vote)
		if again := signature(t, v.signJSON(t, pub11, att(base, base+5, 1))); again != vote {
			t.Errorf("identical attestation re-sign gave another signature")
		}
		wantError(t, v.signJSON(t, pub11, att(base, base+5, 2)), http.StatusPreconditionFailed, "")   // double vote
		wantError(t, v.signJSON(t, pub11, att(base-1, base+6, 1)), http.StatusPreconditionFailed, "") // surrounds
		wantError(t, v.signJSON(t, pub11, att(base+1, base+4, 1)), http.StatusPreconditionFailed, "") // surrounded
		// A later, non-conflicting vote still signs.
		signature(t, v.signJSON(t, pub11, att(base+5, base+6, 3)))
	})

	t.Run("upcheck", func(t *testing.T) {
		r := do(t, http.MethodGet, v.URL+"/upcheck", "", nil)
		if r.status != http.StatusOK || r.ctype != ctText || string(r.body) != "OK" {
			t.Errorf("/upcheck: %s", r)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		r := do(t, http.MethodGet, v.URL+"/healthcheck", "", nil)
		if r.status != http.StatusOK || r.ctype != ctJSON {
			t.Fatalf("/healthcheck: %s", r)
		}
		h := decodeHealth(t, r.body)
		wantHealth(t, h, "UP", nKeys, 0)
	})

	t.Run("publicKeys", func(t *testing.T) {
		r := do(t, http.MethodGet, v.URL+"/api/v1/eth2/publicKeys", "", nil)
		if r.status != http.StatusOK || r.ctype != ctJSON {
			t.Fatalf("publicKeys: %s", r)
		}
		var got []string
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatalf("publicKeys body: %v: %s", err, r.body)
		}
		var want []string
		for _, i := range indices {
			want = append(want, interopPub(t, i))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("publicKeys:\n got %v\nwant %v", got, want)
		}
		for _, k := range got {
			if k != strings.ToLower(k) || !strings.HasPrefix(k, "0x") {
				t.Errorf("key %q is not lowercase 0x hex", k)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := do(t, http.MethodGet, v.MetricsURL+"/metrics", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("/metrics: %s", r)
		}
		m := string(r.body)
		for _, want := range []string{
			"vigil_sign_requests_total",
			`vigil_sign_requests_total{outcome="signed",type="RANDAO_REVEAL"}`,
			`vigil_sign_requests_total{outcome="refused",type="BLOCK_V2"}`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(m, `vigil_sign_requests_total{outcome="signed",type="RANDAO_REVEAL"} 0`+"\n") {
			t.Errorf("/metrics counted no signed RANDAO_REVEAL")
		}
	})
}

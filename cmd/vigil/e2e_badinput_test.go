package main

// End-to-end: bad input. Every malformed, mistyped or misaddressed request is refused with the
// right status and a message naming the field, and none of them leaves a trace in the database.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/altair"

	"github.com/vigil-signer/vigil/internal/signingtest"
)

func TestE2EBadInput(t *testing.T) {
	v := start(t, append([]string{"--network", "mainnet"}, writeKeystores(t, 0, 1)...)...)
	pub0, pub1 := interopPub(t, 0), interopPub(t, 1)

	fe := signingtest.MainnetFork("ELECTRA")
	fiJSON, _ := json.Marshal(signingtest.ForkInfoJSON(fe))
	fi := string(fiJSON)
	gvr := signingtest.Hex(signingtest.MainnetGVR[:])
	root1, root2, root3 := signingtest.Hex(signingtest.Pattern(32, 1)), signingtest.Hex(signingtest.Pattern(32, 2)), signingtest.Hex(signingtest.Pattern(32, 3)) // 32 bytes of hex (roots, credentials)
	epoch := fe.Epoch + 1
	randaoRoot := signingtest.ForkedRoot(t, signingtest.DomainRandao, fe, epoch, signingtest.Uint64Root(uint64(epoch)))
	randao := func(extra string) string {
		return `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":{"epoch":"` + signingtest.Dec(epoch) + `"}` + extra + `}`
	}
	withFork := func(fork string) string {
		return `{"type":"RANDAO_REVEAL","fork_info":{"fork":` + fork + `,"genesis_validators_root":"` + gvr + `"},"randao_reveal":{"epoch":"1"}}`
	}
	randaoEpoch := func(e string) string {
		return `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":{"epoch":` + e + `}}`
	}
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// Slashable payloads for keys 0 and 1: none of them may leave a trace in the database.
	slot := signingtest.ForkSlot("ELECTRA", 9)
	goodHeader := signingtest.BlockHeader(slot, 7)
	blockV2 := func(version string, payload string) string {
		return `{"type":"BLOCK_V2","fork_info":` + fi + `,"beacon_block":{"version":"` + version + `",` + payload + `}}`
	}
	goodBlock := blockV2("ELECTRA", `"block_header":`+js(goodHeader))
	attestation := func(a string) string {
		return `{"type":"ATTESTATION","fork_info":` + fi + `,"attestation":` + a + `}`
	}
	src, tgt := signingtest.Dec(signingtest.EpochOf(slot)-1), signingtest.Dec(signingtest.EpochOf(slot))
	cp := func(e string) string { return `{"epoch":"` + e + `","root":"` + root1 + `"}` }
	attFields := `"slot":"` + signingtest.Dec(slot) + `","index":"0","beacon_block_root":"` + root2 + `"`
	farHeader := signingtest.BlockHeader(signingtest.EpochStart(signingtest.EpochOf(signingtest.NowSlot())+10), 8)
	// Bitfields of the wrong size (go-eth2-client does not check them; the signer must).
	shortCommitteeBits := signingtest.ElectraAggregate(slot, 1)
	shortCommitteeBits.Aggregate.CommitteeBits = shortCommitteeBits.Aggregate.CommitteeBits[:7]
	longCommitteeBits := signingtest.ElectraAggregate(slot, 1)
	longCommitteeBits.Aggregate.CommitteeBits = append(longCommitteeBits.Aggregate.CommitteeBits, 0)
	emptyAggregationBits := signingtest.ElectraAggregate(slot, 1)
	emptyAggregationBits.Aggregate.AggregationBits = []byte{}
	shortContribution := &altair.ContributionAndProof{AggregatorIndex: 1, SelectionProof: signingtest.Sig96(1), Contribution: &altair.SyncCommitteeContribution{
		Slot: slot, BeaconBlockRoot: signingtest.Root32(1), SubcommitteeIndex: 1, AggregationBits: signingtest.Pattern(15, 1), Signature: signingtest.Sig96(2),
	}}
	shortSyncBits := signingtest.AltairBlock(signingtest.ForkSlot("ALTAIR", 1), 1)
	shortSyncBits.Body.SyncAggregate.SyncCommitteeBits = signingtest.Pattern(63, 1)
	huge := randao(`,"padding":"` + strings.Repeat("a", 4<<20) + `"`)
	wrongRoot := randaoRoot
	wrongRoot[0] ^= 0xff

	rows := []struct {
		name   string
		method string // default POST
		path   string // default the sign path of key 0
		body   string
		status int
		substr string
	}{
		{name: "malformed JSON", body: `{"type":"RANDAO_REVEAL",`, status: 400, substr: "malformed JSON"},
		{name: "trailing garbage", body: randao("") + ` x`, status: 400, substr: "malformed JSON"},
		{name: "empty body", body: ``, status: 400, substr: "empty body"},
		{name: "body is an array", body: `[` + randao("") + `]`, status: 400, substr: "not a JSON object"},
		{name: "body is a string", body: `"RANDAO_REVEAL"`, status: 400, substr: "not a JSON object"},
		{name: "body is null", body: `null`, status: 400, substr: "not a JSON object"},
		{name: "type missing", body: `{"fork_info":` + fi + `,"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "type"},
		{name: "type is a number", body: `{"type":7,"fork_info":` + fi + `,"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "type"},
		{name: "unknown type", body: `{"type":"SIGN_ANYTHING","fork_info":` + fi + `}`, status: 400, substr: "SIGN_ANYTHING"},
		{name: "fork_info missing", body: `{"type":"RANDAO_REVEAL","randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info"},
		{name: "fork_info null", body: `{"type":"RANDAO_REVEAL","fork_info":null,"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info"},
		{name: "fork_info is a string", body: `{"type":"RANDAO_REVEAL","fork_info":"mainnet","randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info"},
		{name: "fork_info.fork missing", body: `{"type":"RANDAO_REVEAL","fork_info":{"genesis_validators_root":"` + gvr + `"},"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "fork_info.fork"},
		{name: "genesis_validators_root missing", body: `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x04000000","current_version":"0x05000000","epoch":"1"}},"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "genesis_validators_root"},
		{name: "genesis_validators_root 31 bytes", body: `{"type":"RANDAO_REVEAL","fork_info":{"fork":{"previous_version":"0x04000000","current_version":"0x05000000","epoch":"1"},"genesis_validators_root":"` + gvr[:len(gvr)-2] + `"},"randao_reveal":{"epoch":"1"}}`, status: 400, substr: "genesis_validators_root"},
		{name: "version bad hex", body: withFork(`{"previous_version":"0x04000000","current_version":"0xzz000000","epoch":"1"}`), status: 400, substr: "fork_info.fork.current_version"},
		{name: "version without 0x", body: withFork(`{"previous_version":"04000000","current_version":"0x05000000","epoch":"1"}`), status: 400, substr: "fork_info.fork.previous_version"},
		{name: "version 3 bytes", body: withFork(`{"previous_version":"0x04000000","current_version":"0x050000","epoch":"1"}`), status: 400, substr: "fork_info.fork.current_version"},
		{name: "version is a number", body: withFork(`{"previous_version":"0x04000000","current_version":5,"epoch":"1"}`), status: 400, substr: "fork_info.fork.current_version"},
		{name: "fork epoch is a number", body: withFork(`{"previous_version":"0x04000000","current_version":"0x05000000","epoch":1}`), status: 400, substr: "fork_info.fork.epoch"},
		{name: "version not of this network", body: withFork(`{"previous_version":"0x04000001","current_version":"0x05000001","epoch":"0"}`), status: 400, substr: "not a fork of network"},
		{name: "payload missing", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `}`, status: 400, substr: "randao_reveal"},
		{name: "payload is a string", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":"5"}`, status: 400, substr: "randao_reveal"},
		{name: "payload is an array", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":[]}`, status: 400, substr: "randao_reveal"},
		{name: "other type's payload only", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"aggregation_slot":{"slot":"1"}}`, status: 400, substr: "randao_reveal"},
		{name: "epoch missing", body: `{"type":"RANDAO_REVEAL","fork_info":` + fi + `,"randao_reveal":{}}`, status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch is a number", body: randaoEpoch(`5`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch hex", body: randaoEpoch(`"0x10"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch negative", body: randaoEpoch(`"-1"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch exponent", body: randaoEpoch(`"1e3"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch empty", body: randaoEpoch(`""`), status: 400, substr: "randao_reveal.epoch"},
		{name: "epoch overflows uint64", body: randaoEpoch(`"18446744073709551616"`), status: 400, substr: "randao_reveal.epoch"},
		{name: "signing_root short", body: randao(`,"signing_root":"0x00"`), status: 400, substr: "signing_root"},
		{name: "signingRoot not hex", body: randao(`,"signingRoot":"0x` + strings.Repeat("g", 64) + `"`), status: 400, substr: "signingRoot"},
		{name: "signing roots disagree", body: randao(`,"signing_root":"` + signingtest.Hex(randaoRoot[:]) + `","signingRoot":"` + signingtest.Hex(wrongRoot[:]) + `"`), status: 400, substr: "disagree"},
		{name: "signing root differs", body: randao(`,"signing_root":"` + signingtest.Hex(wrongRoot[:]) + `"`), status: 400, substr: "does not match"},
		{name: "block signing root differs", body: strings.TrimSuffix(goodBlock, "}") + `,"signingRoot":"` + signingtest.Hex(wrongRoot[:]) + `"}`, status: 400, substr: "does not match"},
		{name: "block_v2 unknown version", body: blockV2("GLOAS", `"block_header":`+js(goodHeader)), status: 400, substr: "beacon_block.version"},
		{name: "block_v2 version missing", body: `{"type":"BLOCK_V2","fork_info":` + fi + `,"beacon_block":{"block_header":` + js(goodHeader) + `}}`, status: 400, substr: "beacon_block.version"},
		{name: "block_v2 ELECTRA full block", body: blockV2("ELECTRA", `"block":`+js(goodHeader)), status: 400, substr: "block_header"},
		{name: "block_v2 PHASE0 block missing", body: blockV2("PHASE0", `"body":{}`), status: 400, substr: "beacon_block.block"},
		{name: "block_v2 header is a string", body: blockV2("ELECTRA", `"block_header":"0x00"`), status: 400, substr: "beacon_block.block_header"},
		{name: "block_v2 header body_root missing", body: blockV2("ELECTRA", `"block_header":{"slot":"`+signingtest.Dec(slot)+`","proposer_index":"1","parent_root":"`+root1+`","state_root":"`+root2+`"}`), status: 400, substr: "body root"},
		{name: "block_v2 header slot is a number", body: blockV2("ELECTRA", `"block_header":{"slot":5,"proposer_index":"1","parent_root":"`+root1+`","state_root":"`+root2+`","body_root":"`+root3+`"}`), status: 400, substr: "slot"},
		{name: "block_v2 header slot not decimal", body: blockV2("ELECTRA", `"block_header":{"slot":"ten","proposer_index":"1","parent_root":"`+root1+`","state_root":"`+root2+`","body_root":"`+root3+`"}`), status: 400, substr: "slot"},
		{name: "block_v2 header parent_root short", body: blockV2("ELECTRA", `"block_header":{"slot":"5","proposer_index":"1","parent_root":"0x0102","state_root":"`+root2+`","body_root":"`+root3+`"}`), status: 400, substr: "parent root"},
		{name: "BLOCK block missing", body: `{"type":"BLOCK","fork_info":` + fi + `}`, status: 400, substr: "block"},
		{name: "attestation target missing", body: attestation(`{` + attFields + `,"source":` + cp(src) + `}`), status: 400, substr: "target"},
		{name: "attestation source is a string", body: attestation(`{` + attFields + `,"source":"` + src + `","target":` + cp(tgt) + `}`), status: 400, substr: "attestation"},
		{name: "attestation target epoch is a number", body: attestation(`{` + attFields + `,"source":` + cp(src) + `,"target":{"epoch":` + tgt + `,"root":"` + root1 + `"}}`), status: 400, substr: "epoch"},
		{name: "attestation beacon_block_root bad hex", body: attestation(`{"slot":"` + signingtest.Dec(slot) + `","index":"0","beacon_block_root":"0xnothex","source":` + cp(src) + `,"target":` + cp(tgt) + `}`), status: 400, substr: "beacon_block_root"},
		{name: "attestation is a string", body: attestation(`"vote"`), status: 400, substr: "attestation"},
		{name: "aggregate v2 version without data", body: `{"type":"AGGREGATE_AND_PROOF_V2","fork_info":` + fi + `,"aggregate_and_proof":{"version":"ELECTRA"}}`, status: 400, substr: "aggregate_and_proof.data"},
		{name: "aggregate v2 unknown version", body: `{"type":"AGGREGATE_AND_PROOF_V2","fork_info":` + fi + `,"aggregate_and_proof":{"version":"FOO","data":{}}}`, status: 400, substr: "aggregate_and_proof.version"},
		{name: "aggregate committee_bits 7 bytes", body: `{"type":"AGGREGATE_AND_PROOF","fork_info":` + fi + `,"aggregate_and_proof":` + js(shortCommitteeBits) + `}`, status: 400, substr: "committee_bits"},
		{name: "aggregate committee_bits 9 bytes", body: `{"type":"AGGREGATE_AND_PROOF_V2","fork_info":` + fi + `,"aggregate_and_proof":{"version":"ELECTRA","data":` + js(longCommitteeBits) + `}}`, status: 400, substr: "committee_bits"},
		{name: "aggregate aggregation_bits empty", body: `{"type":"AGGREGATE_AND_PROOF","fork_info":` + fi + `,"aggregate_and_proof":` + strings.Replace(js(emptyAggregationBits), `"aggregation_bits":""`, `"aggregation_bits":"0x"`, 1) + `}`, status: 400, substr: "aggregation_bits"},
		{name: "contribution aggregation_bits 15 bytes", body: `{"type":"SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF","fork_info":` + fi + `,"contribution_and_proof":` + js(shortContribution) + `}`, status: 400, substr: "aggregation_bits"},
		{name: "altair block sync_committee_bits 63 bytes", body: `{"type":"BLOCK_V2","fork_info":` + js(signingtest.ForkInfoJSON(signingtest.MainnetFork("ALTAIR"))) + `,"beacon_block":{"version":"ALTAIR","block":` + js(shortSyncBits) + `}}`, status: 400, substr: "sync_committee_bits"},
		{name: "deposit pubkey 47 bytes", body: `{"type":"DEPOSIT","deposit":{"pubkey":"` + pub0[:len(pub0)-2] + `","withdrawal_credentials":"` + root1 + `","amount":"32000000000","genesis_fork_version":"0x00000000"}}`, status: 400, substr: "deposit.pubkey"},
		{name: "deposit amount missing", body: `{"type":"DEPOSIT","deposit":{"pubkey":"` + pub0 + `","withdrawal_credentials":"` + root1 + `","genesis_fork_version":"0x00000000"}}`, status: 400, substr: "deposit.amount"},
		{name: "sync message under PHASE0", body: `{"type":"SYNC_COMMITTEE_MESSAGE","fork_info":` + js(signingtest.ForkInfoJSON(signingtest.MainnetFork("PHASE0"))) + `,"sync_committee_message":{"beacon_block_root":"` + root1 + `","slot":"5"}}`, status: 400, substr: "ALTAIR"},
		{name: "sync message root is an object", body: `{"type":"SYNC_COMMITTEE_MESSAGE","fork_info":` + fi + `,"sync_committee_message":{"beacon_block_root":{},"slot":"5"}}`, status: 400, substr: "sync_committee_message.beacon_block_root"},
		{name: "selection subcommittee_index missing", body: `{"type":"SYNC_COMMITTEE_SELECTION_PROOF","fork_info":` + fi + `,"sync_aggregator_selection_data":{"slot":"5"}}`, status: 400, substr: "subcommittee_index"},
		{name: "registration fee_recipient 2 bytes", body: `{"type":"VALIDATOR_REGISTRATION","validator_registration":{"fee_recipient":"0x0102","gas_limit":"30000000","timestamp":"1700000000","pubkey":"` + pub0 + `"}}`, status: 400, substr: "fee_recipient"},
		{name: "registration fee_recipient 32 bytes", body: `{"type":"VALIDATOR_REGISTRATION","validator_registration":{"fee_recipient":"` + root1 + `","gas_limit":"30000000","timestamp":"1700000000","pubkey":"` + pub0 + `"}}`, status: 400, substr: "fee_recipient"},
		{name: "registration gas_limit is a number", body: `{"type":"VALIDATOR_REGISTRATION","validator_registration":{"fee_recipient":"` + signingtest.Hex(signingtest.Pattern(20, 1)) + `","gas_limit":30000000,"timestamp":"1700000000","pubkey":"` + pub0 + `"}}`, status: 400, substr: "gas_limit"},
		{name: "identifier 47 bytes", path: signPath(pub0[:len(pub0)-2]), body: randao(""), status: 400, substr: "identifier"},
		{name: "identifier 49 bytes", path: signPath(pub0 + "00"), body: randao(""), status: 400, substr: "identifier"},
		{name: "identifier not hex", path: signPath("0x" + strings.Repeat("zz", 48)), body: randao(""), status: 400, substr: "identifier"},
		{name: "unknown key", path: signPath(interopPub(t, 77)), body: randao(""), status: 404, substr: "no key"},
		{name: "unknown key, slashable", path: signPath(interopPub(t, 77)), body: goodBlock, status: 404, substr: "no key"},
		{name: "far-future block", path: signPath(pub1), body: `{"type":"BLOCK_V2","fork_info":` + js(signingtest.ForkInfoJSON(signingtest.MainnetFork("FULU"))) + `,"beacon_block":{"version":"FULU","block_header":` + js(farHeader) + `}}`, status: 412, substr: "epoch"},
		{name: "body over 4 MiB", body: huge, status: 413, substr: "exceeds"},
		{name: "GET on the sign route", method: http.MethodGet, status: 405, substr: "method"},
		{name: "PUT on publicKeys", method: http.MethodPut, path: "/api/v1/eth2/publicKeys", status: 405, substr: "method"},
		{name: "unknown route", path: "/api/v1/eth2/sign", status: 404, substr: "route"},
		{name: "unknown route, GET", method: http.MethodGet, path: "/api/v2/nothing", status: 404, substr: "route"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			method, path := row.method, row.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = signPath(pub0)
			}
			var body any
			if method != http.MethodGet {
				body = row.body
			}
			wantError(t, do(t, method, v.URL+path, "application/json", body), row.status, row.substr)
		})
	}

	// The server still serves, and signs a block afterwards.
	if got := signature(t, v.signJSON(t, pub0, randao(""))); got != interopKey(t, 0).SignRoot(randaoRoot) {
		t.Errorf("RANDAO after the bad rows: wrong signature")
	}
	blockRoot := signingtest.SigningRoot(t, signingtest.DomainBeaconProposer, fe, signingtest.EpochOf(slot), goodHeader)
	wantSignature(t, 0, blockRoot, signature(t, v.signJSON(t, pub0, goodBlock)))

	// Nothing of the bad rows was recorded: the database holds exactly that one block.
	v.stop(t)
	exp := exec.Command(vigilBin, "slashing", "export", "--data-dir", v.DataDir)
	exp.Env = testEnv()
	var stderr bytes.Buffer
	exp.Stderr = &stderr
	out, err := exp.Output()
	if err != nil {
		t.Fatalf("vigil slashing export: %v\n%s", err, stderr.String())
	}
	var doc struct {
		Metadata struct {
			GVR string `json:"genesis_validators_root"`
		} `json:"metadata"`
		Data []struct {
			Pubkey string `json:"pubkey"`
			Blocks []struct {
				Slot        string `json:"slot"`
				SigningRoot string `json:"signing_root"`
			} `json:"signed_blocks"`
			Attestations []json.RawMessage `json:"signed_attestations"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, out)
	}
	if doc.Metadata.GVR != gvr {
		t.Errorf("export genesis_validators_root %s, want %s", doc.Metadata.GVR, gvr)
	}
	if len(doc.Data) != 1 || doc.Data[0].Pubkey != pub0 || len(doc.Data[0].Attestations) != 0 ||
		len(doc.Data[0].Blocks) != 1 || doc.Data[0].Blocks[0].Slot != signingtest.Dec(slot) || doc.Data[0].Blocks[0].SigningRoot != signingtest.Hex(blockRoot[:]) {
		t.Errorf("slashing history is not exactly the one good block (key 0, slot %d, root %#x):\n%s", slot, blockRoot[:], out)
	}
}

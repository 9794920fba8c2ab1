package signer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/signer"
)

// JSON fragments shared by the request tests. Every value is raw JSON.
var (
	hexRoot  = "0x" + strings.Repeat("11", 32)
	hexRoot2 = "0x" + strings.Repeat("22", 32)
	hexSig   = "0x" + strings.Repeat("aa", 96)
	hexPub   = "0x" + strings.Repeat("bb", 48)

	jRoot = q(hexRoot)
	jSig  = q(hexSig)
	jPub  = q(hexPub)

	jForkInfo = obj(
		"fork", obj("previous_version", q("0x00000000"), "current_version", q("0x01000000"), "epoch", q("74240")),
		"genesis_validators_root", q(hexRoot2),
	)
	jCheckpoint     = obj("epoch", q("3"), "root", jRoot)
	jAttestation    = obj("slot", q("100"), "index", q("2"), "beacon_block_root", jRoot, "source", obj("epoch", q("2"), "root", jRoot), "target", jCheckpoint)
	jPhase0BodyKVs  = []string{"randao_reveal", jSig, "eth1_data", obj("deposit_root", jRoot, "deposit_count", q("5"), "block_hash", jRoot), "graffiti", jRoot, "proposer_slashings", "[]", "attester_slashings", "[]", "attestations", "[]", "deposits", "[]", "voluntary_exits", "[]"}
	jPhase0Block    = obj("slot", q("7"), "proposer_index", q("3"), "parent_root", jRoot, "state_root", jRoot, "body", obj(jPhase0BodyKVs...))
	jAltairBlock    = obj("slot", q("8"), "proposer_index", q("3"), "parent_root", jRoot, "state_root", jRoot, "body", obj(append(append([]string{}, jPhase0BodyKVs...), "sync_aggregate", obj("sync_committee_bits", q("0x"+strings.Repeat("00", 64)), "sync_committee_signature", jSig))...))
	jHeader         = obj("slot", q("9"), "proposer_index", q("3"), "parent_root", jRoot, "state_root", jRoot, "body_root", jRoot)
	jPhase0Agg      = obj("aggregator_index", q("4"), "aggregate", obj("aggregation_bits", q("0x01"), "data", jAttestation, "signature", jSig), "selection_proof", jSig)
	jElectraAgg     = obj("aggregator_index", q("4"), "aggregate", obj("aggregation_bits", q("0x01"), "data", jAttestation, "signature", jSig, "committee_bits", q("0x0100000000000000")), "selection_proof", jSig)
	jDeposit        = obj("pubkey", jPub, "withdrawal_credentials", jRoot, "amount", q("32000000000"), "genesis_fork_version", q("0x00000000"))
	jSyncMessage    = obj("beacon_block_root", jRoot, "slot", q("11"))
	jSyncSelection  = obj("slot", q("12"), "subcommittee_index", q("3"))
	jContribution   = obj("aggregator_index", q("4"), "contribution", obj("slot", q("13"), "beacon_block_root", jRoot, "subcommittee_index", q("1"), "aggregation_bits", q("0x"+strings.Repeat("00", 16)), "signature", jSig), "selection_proof", jSig)
	jRegistration   = obj("fee_recipient", q("0x"+strings.Repeat("cc", 20)), "gas_limit", q("30000000"), "timestamp", q("1700000000"), "pubkey", jPub)
	jRandao         = obj("epoch", q("14"))
	jAggregationSlt = obj("slot", q("15"))
	jExit           = obj("epoch", q("16"), "validator_index", q("17"))
)

// q quotes s as a JSON string (s never needs escaping here).
func q(s string) string { return `"` + s + `"` }

// obj builds a JSON object from key, raw-value pairs, in order.
func obj(kv ...string) string {
	if len(kv)%2 != 0 {
		panic("obj: odd number of arguments")
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q(kv[i]) + ":" + kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// req builds a request body with a type, the standard fork_info and extra key/value pairs.
func req(typ string, kv ...string) string {
	return obj(append([]string{"type", q(typ), "fork_info", jForkInfo}, kv...)...)
}

// setPayloads lists the payload fields of r that are set, so a test can check that exactly the
// field(s) of the type were filled.
func setPayloads(r *signer.Request) []string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("Block", r.Block != nil)
	add("AltairBlock", r.AltairBlock != nil)
	add("BlockHeader", r.BlockHeader != nil)
	add("Attestation", r.Attestation != nil)
	add("Slot", r.Slot != nil)
	add("Epoch", r.Epoch != nil)
	add("Aggregate", r.Aggregate != nil)
	add("AggregateElectra", r.AggregateElectra != nil)
	add("VoluntaryExit", r.VoluntaryExit != nil)
	add("Deposit", r.Deposit != nil)
	add("SyncMessage", r.SyncMessage != nil)
	add("SyncSelection", r.SyncSelection != nil)
	add("Contribution", r.Contribution != nil)
	add("Registration", r.Registration != nil)
	return out
}

func TestDecodeRequestEveryType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		typ     signer.Type
		payload string // the one payload field that must be set
		version string
		check   func(t *testing.T, r *signer.Request)
	}{
		{name: "BLOCK", body: req("BLOCK", "block", jPhase0Block), typ: signer.TypeBlock, payload: "Block",
			check: func(t *testing.T, r *signer.Request) { wantEq(t, "block slot", r.Block.Slot, phase0.Slot(7)) }},
		{name: "BLOCK_V2 header", body: req("BLOCK_V2", "beacon_block", obj("version", q("DENEB"), "block_header", jHeader)), typ: signer.TypeBlockV2, payload: "BlockHeader", version: signer.Deneb,
			check: func(t *testing.T, r *signer.Request) { wantEq(t, "header slot", r.BlockHeader.Slot, phase0.Slot(9)) }},
		{name: "ATTESTATION", body: req("ATTESTATION", "attestation", jAttestation), typ: signer.TypeAttestation, payload: "Attestation",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "slot", r.Attestation.Slot, phase0.Slot(100))
				wantEq(t, "source", r.Attestation.Source.Epoch, phase0.Epoch(2))
				wantEq(t, "target", r.Attestation.Target.Epoch, phase0.Epoch(3))
			}},
		{name: "AGGREGATION_SLOT", body: req("AGGREGATION_SLOT", "aggregation_slot", jAggregationSlt), typ: signer.TypeAggregationSlot, payload: "Slot",
			check: func(t *testing.T, r *signer.Request) { wantEq(t, "slot", *r.Slot, phase0.Slot(15)) }},
		{name: "AGGREGATE_AND_PROOF", body: req("AGGREGATE_AND_PROOF", "aggregate_and_proof", jPhase0Agg), typ: signer.TypeAggregateAndProof, payload: "Aggregate",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "aggregator", r.Aggregate.AggregatorIndex, phase0.ValidatorIndex(4))
			}},
		{name: "AGGREGATE_AND_PROOF_V2", body: req("AGGREGATE_AND_PROOF_V2", "aggregate_and_proof", obj("version", q("PHASE0"), "data", jPhase0Agg)), typ: signer.TypeAggregateAndProofV2, payload: "Aggregate", version: signer.Phase0},
		{name: "RANDAO_REVEAL", body: req("RANDAO_REVEAL", "randao_reveal", jRandao), typ: signer.TypeRandaoReveal, payload: "Epoch",
			check: func(t *testing.T, r *signer.Request) { wantEq(t, "epoch", *r.Epoch, phase0.Epoch(14)) }},
		{name: "VOLUNTARY_EXIT", body: req("VOLUNTARY_EXIT", "voluntary_exit", jExit), typ: signer.TypeVoluntaryExit, payload: "VoluntaryExit",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "epoch", r.VoluntaryExit.Epoch, phase0.Epoch(16))
				wantEq(t, "validator", r.VoluntaryExit.ValidatorIndex, phase0.ValidatorIndex(17))
			}},
		{name: "DEPOSIT without fork_info", body: obj("type", q("DEPOSIT"), "deposit", jDeposit), typ: signer.TypeDeposit, payload: "Deposit",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "amount", r.Deposit.Amount, phase0.Gwei(32000000000))
				wantEq(t, "pubkey", r.Deposit.Pubkey.String(), hexPub)
				wantEq(t, "fork_info", r.ForkInfo == nil, true)
			}},
		{name: "SYNC_COMMITTEE_MESSAGE", body: req("SYNC_COMMITTEE_MESSAGE", "sync_committee_message", jSyncMessage), typ: signer.TypeSyncCommitteeMessage, payload: "SyncMessage",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "slot", r.SyncMessage.Slot, phase0.Slot(11))
				wantEq(t, "root", r.SyncMessage.BeaconBlockRoot.String(), hexRoot)
			}},
		{name: "SYNC_COMMITTEE_SELECTION_PROOF", body: req("SYNC_COMMITTEE_SELECTION_PROOF", "sync_aggregator_selection_data", jSyncSelection), typ: signer.TypeSyncCommitteeSelection, payload: "SyncSelection",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "slot", r.SyncSelection.Slot, phase0.Slot(12))
				wantEq(t, "subcommittee", r.SyncSelection.SubcommitteeIndex, uint64(3))
			}},
		{name: "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", body: req("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "contribution_and_proof", jContribution), typ: signer.TypeSyncCommitteeContribution, payload: "Contribution",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "slot", r.Contribution.Contribution.Slot, phase0.Slot(13))
			}},
		{name: "VALIDATOR_REGISTRATION without fork_info", body: obj("type", q("VALIDATOR_REGISTRATION"), "validator_registration", jRegistration), typ: signer.TypeValidatorRegistration, payload: "Registration",
			check: func(t *testing.T, r *signer.Request) {
				wantEq(t, "gas limit", r.Registration.GasLimit, uint64(30000000))
				wantEq(t, "timestamp", r.Registration.Timestamp.Unix(), int64(1700000000))
			}},
		{name: "lower-case type", body: req("attestation", "attestation", jAttestation), typ: signer.TypeAttestation, payload: "Attestation"},
		{name: "mixed-case type", body: req("Block_V2", "beacon_block", obj("version", q("capella"), "block_header", jHeader)), typ: signer.TypeBlockV2, payload: "BlockHeader", version: signer.Capella},
		{name: "unknown fields ignored", body: req("RANDAO_REVEAL", "randao_reveal", obj("epoch", q("14"), "extra", `{"x":[1,2]}`), "comment", q("hello"), "attestation", `"ignored: not this type's payload"`), typ: signer.TypeRandaoReveal, payload: "Epoch"},
		{name: "fork_info ignored for DEPOSIT", body: req("DEPOSIT", "deposit", jDeposit), typ: signer.TypeDeposit, payload: "Deposit",
			check: func(t *testing.T, r *signer.Request) { wantEq(t, "fork_info", r.ForkInfo == nil, true) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := signer.DecodeRequest([]byte(tc.body))
			if err != nil {
				t.Fatalf("DecodeRequest: %v\nbody: %s", err, tc.body)
			}
			wantEq(t, "type", r.Type, tc.typ)
			wantEq(t, "version", r.Version, tc.version)
			got := setPayloads(r)
			if len(got) != 1 || got[0] != tc.payload {
				t.Errorf("payload fields set = %v, want exactly [%s]", got, tc.payload)
			}
			if r.SigningRoot != nil {
				t.Errorf("SigningRoot = %x, want nil (none supplied)", r.SigningRoot[:])
			}
			if tc.typ != signer.TypeDeposit && tc.typ != signer.TypeValidatorRegistration {
				if r.ForkInfo == nil {
					t.Fatal("ForkInfo is nil")
				}
				wantEq(t, "fork epoch", r.ForkInfo.Fork.Epoch, phase0.Epoch(74240))
				wantEq(t, "current version", r.ForkInfo.Fork.CurrentVersion, phase0.Version{0x01, 0, 0, 0})
				wantEq(t, "gvr", r.ForkInfo.GenesisValidatorsRoot.String(), hexRoot2)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestDecodeRequestSigningRoot(t *testing.T) {
	t.Parallel()
	att := []string{"attestation", jAttestation}
	tests := []struct {
		name string
		kv   []string
		want string // "" → nil
	}{
		{"absent", nil, ""},
		{"signing_root", []string{"signing_root", q(hexRoot)}, hexRoot},
		{"signingRoot", []string{"signingRoot", q(hexRoot2)}, hexRoot2},
		{"both agreeing", []string{"signing_root", q(hexRoot), "signingRoot", q(hexRoot)}, hexRoot},
		{"null", []string{"signing_root", "null"}, ""},
		{"upper-case hex", []string{"signing_root", q("0x" + strings.Repeat("AB", 32))}, "0x" + strings.Repeat("ab", 32)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := signer.DecodeRequest([]byte(req("ATTESTATION", append(append([]string{}, att...), tc.kv...)...)))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && r.SigningRoot != nil:
				t.Errorf("SigningRoot = %#x, want nil", r.SigningRoot[:])
			case tc.want != "" && r.SigningRoot == nil:
				t.Errorf("SigningRoot = nil, want %s", tc.want)
			case tc.want != "" && r.SigningRoot.String() != tc.want:
				t.Errorf("SigningRoot = %s, want %s", r.SigningRoot, tc.want)
			}
		})
	}
}

func TestDecodeRequestBlockV2Versions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		bb      string // the beacon_block value
		payload string
		version string
		wantErr []string // substrings of the error; nil → success
	}{
		{name: "PHASE0 full block", bb: obj("version", q("PHASE0"), "block", jPhase0Block), payload: "Block", version: signer.Phase0},
		{name: "ALTAIR full block", bb: obj("version", q("ALTAIR"), "block", jAltairBlock), payload: "AltairBlock", version: signer.Altair},
		{name: "phase0 lower case", bb: obj("version", q("phase0"), "block", jPhase0Block), payload: "Block", version: signer.Phase0},
		{name: "PHASE0 header", bb: obj("version", q("PHASE0"), "block_header", jHeader), payload: "BlockHeader", version: signer.Phase0},
		{name: "ALTAIR header", bb: obj("version", q("ALTAIR"), "block_header", jHeader), payload: "BlockHeader", version: signer.Altair},
		{name: "BELLATRIX header", bb: obj("version", q("BELLATRIX"), "block_header", jHeader), payload: "BlockHeader", version: signer.Bellatrix},
		{name: "CAPELLA header", bb: obj("version", q("CAPELLA"), "block_header", jHeader), payload: "BlockHeader", version: signer.Capella},
		{name: "DENEB header", bb: obj("version", q("DENEB"), "block_header", jHeader), payload: "BlockHeader", version: signer.Deneb},
		{name: "ELECTRA header", bb: obj("version", q("ELECTRA"), "block_header", jHeader), payload: "BlockHeader", version: signer.Electra},
		{name: "FULU header", bb: obj("version", q("FULU"), "block_header", jHeader), payload: "BlockHeader", version: signer.Fulu},
		{name: "header wins over block", bb: obj("version", q("PHASE0"), "block", jPhase0Block, "block_header", jHeader), payload: "BlockHeader", version: signer.Phase0},

		{name: "BELLATRIX without header", bb: obj("version", q("BELLATRIX"), "block", jPhase0Block), wantErr: []string{"block_header", "BELLATRIX"}},
		{name: "FULU without anything", bb: obj("version", q("FULU")), wantErr: []string{"block_header"}},
		{name: "PHASE0 without block", bb: obj("version", q("PHASE0")), wantErr: []string{"beacon_block.block"}},
		{name: "ALTAIR with a phase0 body", bb: obj("version", q("ALTAIR"), "block", jPhase0Block), wantErr: []string{"beacon_block.block", "sync"}},
		{name: "missing version", bb: obj("block_header", jHeader), wantErr: []string{"beacon_block.version", "missing"}},
		{name: "unknown version", bb: obj("version", q("OSAKA"), "block_header", jHeader), wantErr: []string{"beacon_block.version", "OSAKA"}},
		{name: "version not a string", bb: obj("version", "3", "block_header", jHeader), wantErr: []string{"beacon_block.version", "string"}},
		{name: "header not an object", bb: obj("version", q("DENEB"), "block_header", "[]"), wantErr: []string{"beacon_block.block_header", "object"}},
		{name: "header with bad root", bb: obj("version", q("DENEB"), "block_header", obj("slot", q("9"), "proposer_index", q("3"), "parent_root", q("0x12"), "state_root", jRoot, "body_root", jRoot)), wantErr: []string{"beacon_block.block_header", "parent root"}},
		{name: "beacon_block not an object", bb: q("DENEB"), wantErr: []string{"beacon_block", "object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := req("BLOCK_V2", "beacon_block", tc.bb)
			r, err := signer.DecodeRequest([]byte(body))
			if tc.wantErr != nil {
				wantInvalid(t, r, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			wantEq(t, "version", r.Version, tc.version)
			if got := setPayloads(r); len(got) != 1 || got[0] != tc.payload {
				t.Errorf("payload fields set = %v, want exactly [%s]", got, tc.payload)
			}
		})
	}
}

func TestDecodeRequestAggregateShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     string
		ap      string // the aggregate_and_proof value
		payload string
		version string
		wantErr []string
	}{
		{name: "legacy phase0 (V1 type)", typ: "AGGREGATE_AND_PROOF", ap: jPhase0Agg, payload: "Aggregate"},
		{name: "legacy phase0 (V2 type)", typ: "AGGREGATE_AND_PROOF_V2", ap: jPhase0Agg, payload: "Aggregate"},
		{name: "unwrapped with committee_bits", typ: "AGGREGATE_AND_PROOF_V2", ap: jElectraAgg, payload: "AggregateElectra"},
		{name: "unwrapped with committee_bits (V1 type)", typ: "AGGREGATE_AND_PROOF", ap: jElectraAgg, payload: "AggregateElectra"},
		{name: "versioned ELECTRA", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("ELECTRA"), "data", jElectraAgg), payload: "AggregateElectra", version: signer.Electra},
		{name: "versioned FULU", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("FULU"), "data", jElectraAgg), payload: "AggregateElectra", version: signer.Fulu},
		{name: "versioned fulu lower case", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("fulu"), "data", jElectraAgg), payload: "AggregateElectra", version: signer.Fulu},
		{name: "versioned DENEB", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("DENEB"), "data", jPhase0Agg), payload: "Aggregate", version: signer.Deneb},
		{name: "versioned PHASE0", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("PHASE0"), "data", jPhase0Agg), payload: "Aggregate", version: signer.Phase0},

		{name: "versioned ELECTRA without committee_bits", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("ELECTRA"), "data", jPhase0Agg), wantErr: []string{"aggregate_and_proof.data", "committee bits"}},
		{name: "version without data", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("ELECTRA")), wantErr: []string{"aggregate_and_proof.data", "missing"}},
		{name: "data without version", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("data", jElectraAgg), wantErr: []string{"aggregate_and_proof.version", "missing"}},
		{name: "unknown version", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("BOGUS"), "data", jElectraAgg), wantErr: []string{"aggregate_and_proof.version", "BOGUS"}},
		{name: "data not an object", typ: "AGGREGATE_AND_PROOF_V2", ap: obj("version", q("DENEB"), "data", "7"), wantErr: []string{"aggregate_and_proof.data", "object"}},
		{name: "aggregate not an object", typ: "AGGREGATE_AND_PROOF", ap: obj("aggregator_index", q("4"), "aggregate", q("x")), wantErr: []string{"aggregate_and_proof.aggregate", "object"}},
		{name: "payload not an object", typ: "AGGREGATE_AND_PROOF", ap: "[]", wantErr: []string{"aggregate_and_proof", "object"}},
		{name: "payload null", typ: "AGGREGATE_AND_PROOF_V2", ap: "null", wantErr: []string{"aggregate_and_proof", "missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := signer.DecodeRequest([]byte(req(tc.typ, "aggregate_and_proof", tc.ap)))
			if tc.wantErr != nil {
				wantInvalid(t, r, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			wantEq(t, "type", r.Type, signer.Type(tc.typ))
			wantEq(t, "version", r.Version, tc.version)
			if got := setPayloads(r); len(got) != 1 || got[0] != tc.payload {
				t.Errorf("payload fields set = %v, want exactly [%s]", got, tc.payload)
			}
			if r.AggregateElectra != nil {
				wantEq(t, "committee bits", []byte(r.AggregateElectra.Aggregate.CommitteeBits)[0], byte(1))
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	t.Parallel()
	badFork := func(kv ...string) string {
		return obj("type", q("RANDAO_REVEAL"), "randao_reveal", jRandao, "fork_info", obj(kv...))
	}
	goodFork := obj("previous_version", q("0x00000000"), "current_version", q("0x00000000"), "epoch", q("0"))
	tests := []struct {
		name string
		body string
		want []string // substrings of the error message
	}{
		{"empty body", "", []string{"empty"}},
		{"blank body", " \n\t ", []string{"empty"}},
		{"array body", `[{"type":"BLOCK"}]`, []string{"not a JSON object"}},
		{"string body", `"BLOCK"`, []string{"not a JSON object"}},
		{"malformed JSON", `{"type":"RANDAO_REVEAL",`, []string{"malformed JSON"}},
		{"trailing garbage", `{"type":"RANDAO_REVEAL"} x`, []string{"malformed JSON"}},
		{"type missing", obj("fork_info", jForkInfo, "randao_reveal", jRandao), []string{"type", "missing"}},
		{"type a number", obj("type", "3", "fork_info", jForkInfo), []string{"field type", "string", "number"}},
		{"type an object", obj("type", "{}", "fork_info", jForkInfo), []string{"field type", "object"}},
		{"unknown type", req("BLOB_SIDECAR"), []string{"unknown type", "BLOB_SIDECAR"}},
		{"missing fork_info", obj("type", q("ATTESTATION"), "attestation", jAttestation), []string{"fork_info", "missing", "ATTESTATION"}},
		{"null fork_info", obj("type", q("ATTESTATION"), "fork_info", "null", "attestation", jAttestation), []string{"fork_info", "missing"}},
		{"fork_info not an object", obj("type", q("ATTESTATION"), "fork_info", "[]", "attestation", jAttestation), []string{"fork_info", "object"}},
		{"fork_info.fork missing", badFork("genesis_validators_root", jRoot), []string{"fork_info.fork", "missing"}},
		{"genesis_validators_root missing", badFork("fork", goodFork), []string{"fork_info.genesis_validators_root", "missing"}},
		{"genesis_validators_root bad hex", badFork("fork", goodFork, "genesis_validators_root", q("0x"+strings.Repeat("zz", 32))), []string{"fork_info.genesis_validators_root", "hex"}},
		{"genesis_validators_root short", badFork("fork", goodFork, "genesis_validators_root", q("0x1234")), []string{"fork_info.genesis_validators_root", "32 bytes", "got 2"}},
		{"genesis_validators_root without 0x", badFork("fork", goodFork, "genesis_validators_root", q(strings.Repeat("11", 32))), []string{"fork_info.genesis_validators_root", "0x"}},
		{"current_version too long", badFork("fork", obj("previous_version", q("0x00000000"), "current_version", q("0x0000000000"), "epoch", q("0")), "genesis_validators_root", jRoot), []string{"fork_info.fork.current_version", "4 bytes"}},
		{"previous_version a number", badFork("fork", obj("previous_version", "0", "current_version", q("0x00000000"), "epoch", q("0")), "genesis_validators_root", jRoot), []string{"fork_info.fork.previous_version", "hex string", "number"}},
		{"fork epoch a number", badFork("fork", obj("previous_version", q("0x00000000"), "current_version", q("0x00000000"), "epoch", "0"), "genesis_validators_root", jRoot), []string{"fork_info.fork.epoch", "decimal string", "number"}},
		{"fork epoch hex", badFork("fork", obj("previous_version", q("0x00000000"), "current_version", q("0x00000000"), "epoch", q("0x10")), "genesis_validators_root", jRoot), []string{"fork_info.fork.epoch", "0x10"}},
		{"signing roots disagree", req("RANDAO_REVEAL", "randao_reveal", jRandao, "signing_root", jRoot, "signingRoot", q(hexRoot2)), []string{"signing_root", "signingRoot", "disagree"}},
		{"signing_root short", req("RANDAO_REVEAL", "randao_reveal", jRandao, "signing_root", q("0x11")), []string{"signing_root", "32 bytes"}},
		{"signingRoot bad hex", req("RANDAO_REVEAL", "randao_reveal", jRandao, "signingRoot", q("0xgg"+strings.Repeat("11", 31))), []string{"signingRoot", "hex"}},
		{"signing_root a number", req("RANDAO_REVEAL", "randao_reveal", jRandao, "signing_root", "1"), []string{"signing_root", "number"}},
		{"missing payload", req("ATTESTATION"), []string{"attestation", "missing"}},
		{"payload of another type only", req("ATTESTATION", "block", jPhase0Block), []string{"attestation", "missing"}},
		{"null payload", req("VOLUNTARY_EXIT", "voluntary_exit", "null"), []string{"voluntary_exit", "missing"}},
		{"payload an array", req("ATTESTATION", "attestation", "[]"), []string{"attestation", "object", "array"}},
		{"payload a string", req("RANDAO_REVEAL", "randao_reveal", q("14")), []string{"randao_reveal", "object", "string"}},
		{"missing BLOCK_V2 payload", req("BLOCK_V2"), []string{"beacon_block", "missing"}},
		{"missing deposit", obj("type", q("DEPOSIT")), []string{"deposit", "missing"}},
		{"attestation slot a number", req("ATTESTATION", "attestation", strings.Replace(jAttestation, `"slot":"100"`, `"slot":100`, 1)), []string{"attestation", "slot"}},
		{"attestation slot not decimal", req("ATTESTATION", "attestation", strings.Replace(jAttestation, `"slot":"100"`, `"slot":"ten"`, 1)), []string{"attestation", "slot"}},
		{"attestation root short", req("ATTESTATION", "attestation", strings.Replace(jAttestation, `"beacon_block_root":`+jRoot, `"beacon_block_root":"0x11"`, 1)), []string{"attestation", "beacon_block_root"}},
		{"randao epoch a number", req("RANDAO_REVEAL", "randao_reveal", obj("epoch", "14")), []string{"randao_reveal.epoch", "decimal string", "number"}},
		{"randao epoch negative", req("RANDAO_REVEAL", "randao_reveal", obj("epoch", q("-1"))), []string{"randao_reveal.epoch", "-1"}},
		{"randao epoch overflows", req("RANDAO_REVEAL", "randao_reveal", obj("epoch", q("18446744073709551616"))), []string{"randao_reveal.epoch", "64-bit"}},
		{"randao epoch missing", req("RANDAO_REVEAL", "randao_reveal", obj()), []string{"randao_reveal.epoch", "missing"}},
		{"aggregation slot float", req("AGGREGATION_SLOT", "aggregation_slot", obj("slot", q("1.5"))), []string{"aggregation_slot.slot", "1.5"}},
		{"aggregation slot missing", req("AGGREGATION_SLOT", "aggregation_slot", obj("Slot_", q("1"))), []string{"aggregation_slot.slot", "missing"}},
		{"deposit pubkey short", obj("type", q("DEPOSIT"), "deposit", strings.Replace(jDeposit, jPub, q("0xbb"), 1)), []string{"deposit.pubkey", "48 bytes"}},
		{"deposit amount not decimal", obj("type", q("DEPOSIT"), "deposit", strings.Replace(jDeposit, q("32000000000"), q("32e9"), 1)), []string{"deposit.amount", "32e9"}},
		{"deposit amount a number", obj("type", q("DEPOSIT"), "deposit", strings.Replace(jDeposit, q("32000000000"), "32000000000", 1)), []string{"deposit.amount", "number"}},
		{"deposit without genesis_fork_version", obj("type", q("DEPOSIT"), "deposit", obj("pubkey", jPub, "withdrawal_credentials", jRoot, "amount", q("1"))), []string{"deposit.genesis_fork_version", "missing"}},
		{"deposit withdrawal_credentials bad hex", obj("type", q("DEPOSIT"), "deposit", strings.Replace(jDeposit, `"withdrawal_credentials":`+jRoot, `"withdrawal_credentials":"0xnothex"`, 1)), []string{"deposit.withdrawal_credentials", "hex"}},
		{"sync message root short", req("SYNC_COMMITTEE_MESSAGE", "sync_committee_message", obj("beacon_block_root", q("0x11"), "slot", q("1"))), []string{"sync_committee_message.beacon_block_root", "32 bytes"}},
		{"sync message slot a number", req("SYNC_COMMITTEE_MESSAGE", "sync_committee_message", obj("beacon_block_root", jRoot, "slot", "1")), []string{"sync_committee_message.slot", "number"}},
		{"sync selection subcommittee a number", req("SYNC_COMMITTEE_SELECTION_PROOF", "sync_aggregator_selection_data", obj("slot", q("1"), "subcommittee_index", "2")), []string{"sync_aggregator_selection_data.subcommittee_index", "number"}},
		{"sync selection slot missing", req("SYNC_COMMITTEE_SELECTION_PROOF", "sync_aggregator_selection_data", obj("subcommittee_index", q("2"))), []string{"sync_aggregator_selection_data.slot", "missing"}},
		{"contribution missing signature", req("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "contribution_and_proof", obj("aggregator_index", q("4"), "contribution", obj("slot", q("13"), "beacon_block_root", jRoot, "subcommittee_index", q("1"), "aggregation_bits", q("0x00")), "selection_proof", jSig)), []string{"contribution_and_proof", "signature"}},
		{"registration pubkey short", obj("type", q("VALIDATOR_REGISTRATION"), "validator_registration", strings.Replace(jRegistration, jPub, q("0xbb"), 1)), []string{"validator_registration", "public key"}},
		{"registration fee_recipient short", obj("type", q("VALIDATOR_REGISTRATION"), "validator_registration", strings.Replace(jRegistration, q("0x"+strings.Repeat("cc", 20)), q("0xcc"), 1)), []string{"validator_registration.fee_recipient", "20 bytes"}},
		{"voluntary exit epoch not decimal", req("VOLUNTARY_EXIT", "voluntary_exit", obj("epoch", q("x"), "validator_index", q("1"))), []string{"voluntary_exit", "epoch"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := signer.DecodeRequest([]byte(tc.body))
			wantInvalid(t, r, err, tc.want...)
		})
	}
}

// FuzzDecodeRequest checks that DecodeRequest never panics and that every failure wraps
// ErrInvalidRequest.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		req("BLOCK", "block", jPhase0Block),
		req("BLOCK_V2", "beacon_block", obj("version", q("ALTAIR"), "block", jAltairBlock)),
		req("BLOCK_V2", "beacon_block", obj("version", q("DENEB"), "block_header", jHeader)),
		req("ATTESTATION", "attestation", jAttestation, "signing_root", jRoot),
		req("AGGREGATE_AND_PROOF_V2", "aggregate_and_proof", obj("version", q("ELECTRA"), "data", jElectraAgg)),
		req("AGGREGATE_AND_PROOF", "aggregate_and_proof", jPhase0Agg),
		obj("type", q("DEPOSIT"), "deposit", jDeposit),
		req("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", "contribution_and_proof", jContribution),
		obj("type", q("VALIDATOR_REGISTRATION"), "validator_registration", jRegistration),
		"", "[]", "{", `{"type":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := signer.DecodeRequest(body)
		if err != nil {
			if !errors.Is(err, signer.ErrInvalidRequest) {
				t.Fatalf("error does not wrap ErrInvalidRequest: %v", err)
			}
			if r != nil {
				t.Fatal("non-nil request with an error")
			}
			return
		}
		if n := len(setPayloads(r)); n != 1 {
			t.Fatalf("%d payload fields set for %s", n, r.Type)
		}
		if r.ForkInfo == nil && r.Type != signer.TypeDeposit && r.Type != signer.TypeValidatorRegistration {
			t.Fatalf("%s decoded without fork_info", r.Type)
		}
	})
}

// wantInvalid asserts that DecodeRequest failed with an ErrInvalidRequest whose message contains
// every substring.
func wantInvalid(t *testing.T, r *signer.Request, err error, substrings ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("DecodeRequest succeeded (type %s), want an error mentioning %q", r.Type, substrings)
	}
	if !errors.Is(err, signer.ErrInvalidRequest) {
		t.Errorf("error %q does not wrap ErrInvalidRequest", err)
	}
	if r != nil {
		t.Errorf("DecodeRequest returned a request with the error %q", err)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

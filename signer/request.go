package signer

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	apiv1 "github.com/attestantio/go-eth2-client/api/v1"
	"github.com/attestantio/go-eth2-client/spec/altair"
	"github.com/attestantio/go-eth2-client/spec/electra"
	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/jsonfield"
	"github.com/vigil-signer/vigil/internal/strictjson"
)

// Type is a signing request type of the remote-signing API (Web3Signer's ArtifactType).
type Type string

// The request types. Names are matched case-insensitively when decoding.
const (
	TypeBlock                     Type = "BLOCK"
	TypeBlockV2                   Type = "BLOCK_V2"
	TypeAttestation               Type = "ATTESTATION"
	TypeAggregationSlot           Type = "AGGREGATION_SLOT"
	TypeAggregateAndProof         Type = "AGGREGATE_AND_PROOF"
	TypeAggregateAndProofV2       Type = "AGGREGATE_AND_PROOF_V2"
	TypeRandaoReveal              Type = "RANDAO_REVEAL"
	TypeVoluntaryExit             Type = "VOLUNTARY_EXIT"
	TypeDeposit                   Type = "DEPOSIT"
	TypeSyncCommitteeMessage      Type = "SYNC_COMMITTEE_MESSAGE"
	TypeSyncCommitteeSelection    Type = "SYNC_COMMITTEE_SELECTION_PROOF"
	TypeSyncCommitteeContribution Type = "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF"
	TypeValidatorRegistration     Type = "VALIDATOR_REGISTRATION"
)

// Types lists every supported request type.
var Types = []Type{
	TypeBlock, TypeBlockV2, TypeAttestation, TypeAggregationSlot, TypeAggregateAndProof,
	TypeAggregateAndProofV2, TypeRandaoReveal, TypeVoluntaryExit, TypeDeposit,
	TypeSyncCommitteeMessage, TypeSyncCommitteeSelection, TypeSyncCommitteeContribution,
	TypeValidatorRegistration,
}

// ForkInfo is the request's fork_info: the fork around the message's epoch and the chain's
// genesis validators root.
type ForkInfo struct {
	Fork                  phase0.Fork
	GenesisValidatorsRoot phase0.Root
}

// Deposit is the DEPOSIT payload: a DepositMessage plus the fork version its domain uses.
type Deposit struct {
	Pubkey                phase0.BLSPubKey
	WithdrawalCredentials [32]byte
	Amount                phase0.Gwei
	GenesisForkVersion    phase0.Version
}

// SyncCommitteeMessage is the SYNC_COMMITTEE_MESSAGE payload.
type SyncCommitteeMessage struct {
	BeaconBlockRoot phase0.Root
	Slot            phase0.Slot
}

// Request is one decoded signing request. Exactly the payload field(s) that belong to Type are
// set; Decode guarantees it.
type Request struct {
	Type        Type
	SigningRoot *phase0.Root // as supplied by the caller; never trusted
	ForkInfo    *ForkInfo    // nil for DEPOSIT and VALIDATOR_REGISTRATION

	// Version is the fork name of a BLOCK_V2 or a versioned AGGREGATE_AND_PROOF(_V2) (empty when
	// the request did not carry one).
	Version string

	Block            *phase0.BeaconBlock       // BLOCK; BLOCK_V2 PHASE0 full block
	AltairBlock      *altair.BeaconBlock       // BLOCK_V2 ALTAIR full block
	BlockHeader      *phase0.BeaconBlockHeader // BLOCK_V2 header form
	Attestation      *phase0.AttestationData
	Slot             *phase0.Slot  // AGGREGATION_SLOT
	Epoch            *phase0.Epoch // RANDAO_REVEAL
	Aggregate        *phase0.AggregateAndProof
	AggregateElectra *electra.AggregateAndProof
	VoluntaryExit    *phase0.VoluntaryExit
	Deposit          *Deposit
	SyncMessage      *SyncCommitteeMessage
	SyncSelection    *altair.SyncAggregatorSelectionData
	Contribution     *altair.ContributionAndProof
	Registration     *apiv1.ValidatorRegistration
}

// wireRequest is the JSON body. Payload fields are decoded in a second step, by type.
type wireRequest struct {
	Type              json.RawMessage `json:"type"`
	SigningRoot       json.RawMessage `json:"signing_root"`
	SigningRootCamel  json.RawMessage `json:"signingRoot"`
	ForkInfo          json.RawMessage `json:"fork_info"`
	Block             json.RawMessage `json:"block"`
	BeaconBlock       json.RawMessage `json:"beacon_block"`
	Attestation       json.RawMessage `json:"attestation"`
	AggregationSlot   json.RawMessage `json:"aggregation_slot"`
	AggregateAndProof json.RawMessage `json:"aggregate_and_proof"`
	VoluntaryExit     json.RawMessage `json:"voluntary_exit"`
	RandaoReveal      json.RawMessage `json:"randao_reveal"`
	Deposit           json.RawMessage `json:"deposit"`
	SyncMessage       json.RawMessage `json:"sync_committee_message"`
	SyncSelection     json.RawMessage `json:"sync_aggregator_selection_data"`
	Contribution      json.RawMessage `json:"contribution_and_proof"`
	Registration      json.RawMessage `json:"validator_registration"`
}

// requestSchema holds the known field names of every request shape, at their paths (the json
// tags of wireRequest and of the types each payload is decoded into), for strictjson.Check.
var requestSchema = func() *strictjson.Schema {
	type fields = map[string]*strictjson.Schema
	obj := strictjson.Object
	aggregate := strictjson.Union(strictjson.Of[phase0.AggregateAndProof](), strictjson.Of[electra.AggregateAndProof]())
	return obj(fields{
		"type": nil, "signing_root": nil, "signingRoot": nil,
		"fork_info": obj(fields{"fork": strictjson.Of[phase0.Fork](), "genesis_validators_root": nil}),
		"block":     strictjson.Of[phase0.BeaconBlock](),
		"beacon_block": obj(fields{
			"version":      nil,
			"block":        strictjson.Union(strictjson.Of[phase0.BeaconBlock](), strictjson.Of[altair.BeaconBlock]()),
			"block_header": strictjson.Of[phase0.BeaconBlockHeader](),
		}),
		"attestation":         strictjson.Of[phase0.AttestationData](),
		"aggregation_slot":    obj(fields{"slot": nil}),
		"aggregate_and_proof": aggregate.With(fields{"version": nil, "data": aggregate}),
		"voluntary_exit":      strictjson.Of[phase0.VoluntaryExit](),
		"randao_reveal":       obj(fields{"epoch": nil}),
		"deposit": obj(fields{"pubkey": nil, "withdrawal_credentials": nil, "amount": nil,
			"genesis_fork_version": nil}),
		"sync_committee_message":         obj(fields{"beacon_block_root": nil, "slot": nil}),
		"sync_aggregator_selection_data": obj(fields{"slot": nil, "subcommittee_index": nil}),
		"contribution_and_proof":         strictjson.Of[altair.ContributionAndProof](),
		"validator_registration":         strictjson.Of[apiv1.ValidatorRegistration](),
	})
}()

// DecodeRequest parses a JSON signing request body. Every failure wraps ErrInvalidRequest and
// says which field is wrong. Unknown fields are ignored; the type is matched case-insensitively;
// signing_root and signingRoot are both accepted (they must agree if both are given). Field names
// are case-sensitive and may appear once per object (strictjson.Check).
func DecodeRequest(body []byte) (*Request, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, invalid("empty body: expected a JSON object")
	}
	if body[0] != '{' {
		return nil, invalid("body is not a JSON object")
	}
	// Field names are matched exactly (as Web3Signer does): a duplicate name or a case variant
	// of a known name would let a case-sensitive reader in front of Vigil (a proxy, an audit log)
	// see another message than the one encoding/json decodes and Vigil signs.
	if err := strictjson.Check(body, requestSchema); err != nil {
		return nil, invalid("%v", err)
	}
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, invalid("malformed JSON: %s", jsonfield.Describe(err))
	}
	if jsonfield.Missing(w.Type) {
		return nil, invalid("field type is missing")
	}
	var ts string
	if err := json.Unmarshal(w.Type, &ts); err != nil {
		return nil, invalid("field type: want a string, got %s", jsonfield.Kind(w.Type))
	}
	r := &Request{Type: Type(strings.ToUpper(strings.TrimSpace(ts)))}
	known := false
	for _, t := range Types {
		known = known || t == r.Type
	}
	if !known {
		return nil, invalid("unknown type %q", truncate(ts))
	}

	var err error
	if r.SigningRoot, err = decodeRoots(w.SigningRoot, w.SigningRootCamel); err != nil {
		return nil, err
	}
	if r.Type != TypeDeposit && r.Type != TypeValidatorRegistration {
		if jsonfield.Missing(w.ForkInfo) {
			return nil, invalid("field fork_info is missing (required for %s)", r.Type)
		}
		if r.ForkInfo, err = decodeForkInfo(w.ForkInfo); err != nil {
			return nil, err
		}
	}

	switch r.Type {
	case TypeBlock:
		r.Block = new(phase0.BeaconBlock)
		err = payload("block", w.Block, r.Block)
	case TypeBlockV2:
		err = r.decodeBlockV2(w.BeaconBlock)
	case TypeAttestation:
		r.Attestation, err = decodeAttestationData(w.Attestation)
	case TypeAggregationSlot:
		var v struct{ Slot json.RawMessage }
		if err = payload("aggregation_slot", w.AggregationSlot, &v); err == nil {
			var s uint64
			s, err = u64Field("aggregation_slot.slot", v.Slot)
			slot := phase0.Slot(s)
			r.Slot = &slot
		}
	case TypeAggregateAndProof, TypeAggregateAndProofV2:
		err = r.decodeAggregate(w.AggregateAndProof)
	case TypeRandaoReveal:
		var v struct{ Epoch json.RawMessage }
		if err = payload("randao_reveal", w.RandaoReveal, &v); err == nil {
			var e uint64
			e, err = u64Field("randao_reveal.epoch", v.Epoch)
			epoch := phase0.Epoch(e)
			r.Epoch = &epoch
		}
	case TypeVoluntaryExit:
		r.VoluntaryExit = new(phase0.VoluntaryExit)
		err = payload("voluntary_exit", w.VoluntaryExit, r.VoluntaryExit)
	case TypeDeposit:
		err = r.decodeDeposit(w.Deposit)
	case TypeSyncCommitteeMessage:
		var v struct {
			BeaconBlockRoot json.RawMessage `json:"beacon_block_root"`
			Slot            json.RawMessage `json:"slot"`
		}
		if err = payload("sync_committee_message", w.SyncMessage, &v); err == nil {
			m := &SyncCommitteeMessage{}
			var s uint64
			if s, err = u64Field("sync_committee_message.slot", v.Slot); err == nil {
				m.Slot = phase0.Slot(s)
				err = hexField("sync_committee_message.beacon_block_root", v.BeaconBlockRoot, m.BeaconBlockRoot[:])
			}
			r.SyncMessage = m
		}
	case TypeSyncCommitteeSelection:
		// go-eth2-client has no JSON form for this type: decode the two fields here.
		var v struct {
			Slot              json.RawMessage `json:"slot"`
			SubcommitteeIndex json.RawMessage `json:"subcommittee_index"`
		}
		if err = payload("sync_aggregator_selection_data", w.SyncSelection, &v); err == nil {
			d := &altair.SyncAggregatorSelectionData{}
			var slot uint64
			if slot, err = u64Field("sync_aggregator_selection_data.slot", v.Slot); err == nil {
				d.Slot = phase0.Slot(slot)
				d.SubcommitteeIndex, err = u64Field("sync_aggregator_selection_data.subcommittee_index", v.SubcommitteeIndex)
			}
			r.SyncSelection = d
		}
	case TypeSyncCommitteeContribution:
		r.Contribution = new(altair.ContributionAndProof)
		err = payload("contribution_and_proof", w.Contribution, r.Contribution)
	case TypeValidatorRegistration:
		// go-eth2-client copies fee_recipient into its 20-byte array without checking the length
		// (a short value would be zero-padded, a long one truncated): check it first.
		var v struct {
			FeeRecipient json.RawMessage `json:"fee_recipient"`
		}
		if err = payload("validator_registration", w.Registration, &v); err == nil {
			if err = hexField("validator_registration.fee_recipient", v.FeeRecipient, make([]byte, 20)); err == nil {
				r.Registration = new(apiv1.ValidatorRegistration)
				err = payload("validator_registration", w.Registration, r.Registration)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Request) decodeBlockV2(raw json.RawMessage) error {
	var v struct {
		Version     json.RawMessage `json:"version"`
		Block       json.RawMessage `json:"block"`
		BlockHeader json.RawMessage `json:"block_header"`
	}
	if err := payload("beacon_block", raw, &v); err != nil {
		return err
	}
	version, err := versionField("beacon_block.version", v.Version)
	if err != nil {
		return err
	}
	r.Version = version
	if !jsonfield.Missing(v.BlockHeader) {
		r.BlockHeader = new(phase0.BeaconBlockHeader)
		return payload("beacon_block.block_header", v.BlockHeader, r.BlockHeader)
	}
	switch version {
	case Phase0:
		r.Block = new(phase0.BeaconBlock)
		return payload("beacon_block.block", v.Block, r.Block)
	case Altair:
		r.AltairBlock = new(altair.BeaconBlock)
		return payload("beacon_block.block", v.Block, r.AltairBlock)
	default:
		return invalid("beacon_block.block_header is missing: from BELLATRIX on the block is signed as its header (got version %s)", version)
	}
}

func (r *Request) decodeAggregate(raw json.RawMessage) error {
	if jsonfield.Missing(raw) {
		return invalid("field aggregate_and_proof is missing")
	}
	var probe struct {
		Version   json.RawMessage `json:"version"`
		Data      json.RawMessage `json:"data"`
		Aggregate json.RawMessage `json:"aggregate"`
	}
	if err := payload("aggregate_and_proof", raw, &probe); err != nil {
		return err
	}
	field := "aggregate_and_proof"
	electraShape := false
	if !jsonfield.Missing(probe.Version) || !jsonfield.Missing(probe.Data) {
		// {version, data}
		version, err := versionField("aggregate_and_proof.version", probe.Version)
		if err != nil {
			return err
		}
		if jsonfield.Missing(probe.Data) {
			return invalid("field aggregate_and_proof.data is missing")
		}
		r.Version = version
		raw, field = probe.Data, "aggregate_and_proof.data"
		electraShape = forkIndex(version) >= forkIndex(Electra)
	} else {
		// Unwrapped: an Electra aggregate is recognised by its committee_bits.
		var agg struct {
			CommitteeBits json.RawMessage `json:"committee_bits"`
		}
		if !jsonfield.Missing(probe.Aggregate) {
			if err := payload("aggregate_and_proof.aggregate", probe.Aggregate, &agg); err != nil {
				return err
			}
		}
		electraShape = !jsonfield.Missing(agg.CommitteeBits)
	}
	if electraShape {
		r.AggregateElectra = new(electra.AggregateAndProof)
		return payload(field, raw, r.AggregateElectra)
	}
	r.Aggregate = new(phase0.AggregateAndProof)
	return payload(field, raw, r.Aggregate)
}

func (r *Request) decodeDeposit(raw json.RawMessage) error {
	var v struct {
		Pubkey                json.RawMessage `json:"pubkey"`
		WithdrawalCredentials json.RawMessage `json:"withdrawal_credentials"`
		Amount                json.RawMessage `json:"amount"`
		GenesisForkVersion    json.RawMessage `json:"genesis_fork_version"`
	}
	if err := payload("deposit", raw, &v); err != nil {
		return err
	}
	d := &Deposit{}
	if err := hexField("deposit.pubkey", v.Pubkey, d.Pubkey[:]); err != nil {
		return err
	}
	if err := hexField("deposit.withdrawal_credentials", v.WithdrawalCredentials, d.WithdrawalCredentials[:]); err != nil {
		return err
	}
	amount, err := u64Field("deposit.amount", v.Amount)
	if err != nil {
		return err
	}
	d.Amount = phase0.Gwei(amount)
	if err := hexField("deposit.genesis_fork_version", v.GenesisForkVersion, d.GenesisForkVersion[:]); err != nil {
		return err
	}
	r.Deposit = d
	return nil
}

func decodeRoots(snake, camel json.RawMessage) (*phase0.Root, error) {
	var out *phase0.Root
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"signing_root", snake}, {"signingRoot", camel}} {
		if jsonfield.Missing(f.raw) || jsonfield.IsNull(f.raw) {
			continue
		}
		var root phase0.Root
		if err := hexField(f.name, f.raw, root[:]); err != nil {
			return nil, err
		}
		if out != nil && *out != root {
			return nil, invalid("signing_root and signingRoot disagree")
		}
		out = &root
	}
	return out, nil
}

func decodeForkInfo(raw json.RawMessage) (*ForkInfo, error) {
	var v struct {
		Fork json.RawMessage `json:"fork"`
		GVR  json.RawMessage `json:"genesis_validators_root"`
	}
	if err := payload("fork_info", raw, &v); err != nil {
		return nil, err
	}
	fi := &ForkInfo{}
	var f struct {
		Previous json.RawMessage `json:"previous_version"`
		Current  json.RawMessage `json:"current_version"`
		Epoch    json.RawMessage `json:"epoch"`
	}
	if err := payload("fork_info.fork", v.Fork, &f); err != nil {
		return nil, err
	}
	if err := hexField("fork_info.fork.previous_version", f.Previous, fi.Fork.PreviousVersion[:]); err != nil {
		return nil, err
	}
	if err := hexField("fork_info.fork.current_version", f.Current, fi.Fork.CurrentVersion[:]); err != nil {
		return nil, err
	}
	e, err := u64Field("fork_info.fork.epoch", f.Epoch)
	if err != nil {
		return nil, err
	}
	fi.Fork.Epoch = phase0.Epoch(e)
	if err := hexField("fork_info.genesis_validators_root", v.GVR, fi.GenesisValidatorsRoot[:]); err != nil {
		return nil, err
	}
	return fi, nil
}

// payload decodes a required JSON object field into out (a go-eth2-client type or a local struct).
func payload(field string, raw json.RawMessage, out any) error {
	if jsonfield.Missing(raw) || jsonfield.IsNull(raw) {
		return invalid("field %s is missing", field)
	}
	if raw[0] != '{' {
		return invalid("field %s: want an object, got %s", field, jsonfield.Kind(raw))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return invalid("field %s: %s", field, jsonfield.Describe(err))
	}
	return nil
}

func versionField(field string, raw json.RawMessage) (string, error) {
	if jsonfield.Missing(raw) {
		return "", invalid("field %s is missing", field)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("field %s: want a string, got %s", field, jsonfield.Kind(raw))
	}
	v := strings.ToUpper(s)
	if forkIndex(v) < 0 {
		return "", invalid("field %s: unknown fork %q (want one of %s)", field, truncate(s), strings.Join(Forks, ", "))
	}
	return v, nil
}

func forkIndex(name string) int {
	for i, f := range Forks {
		if f == name {
			return i
		}
	}
	return -1
}

// u64Field decodes a decimal uint64 carried as a JSON string (the beacon API convention).
func u64Field(field string, raw json.RawMessage) (uint64, error) {
	if jsonfield.Missing(raw) || jsonfield.IsNull(raw) {
		return 0, invalid("field %s is missing", field)
	}
	s, ok := jsonfield.String(raw)
	if !ok {
		return 0, invalid("field %s: want a decimal string, got %s", field, jsonfield.Kind(raw))
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, invalid("field %s: %q is not an unsigned 64-bit decimal", field, truncate(s))
	}
	return v, nil
}

// hexField decodes a 0x-prefixed hex JSON string of exactly len(out) bytes.
func hexField(field string, raw json.RawMessage, out []byte) error {
	if jsonfield.Missing(raw) || jsonfield.IsNull(raw) {
		return invalid("field %s is missing", field)
	}
	s, ok := jsonfield.String(raw)
	if !ok {
		return invalid("field %s: want a hex string, got %s", field, jsonfield.Kind(raw))
	}
	b, err := decodeHex(s, len(out))
	if err != nil {
		return invalid("field %s: %v", field, err)
	}
	copy(out, b)
	return nil
}

// decodeAttestationData decodes the ATTESTATION payload in one pass (the most frequent request:
// every validator, every epoch), naming the exact field on error.
func decodeAttestationData(raw json.RawMessage) (*phase0.AttestationData, error) {
	var v struct {
		Slot            json.RawMessage `json:"slot"`
		Index           json.RawMessage `json:"index"`
		BeaconBlockRoot json.RawMessage `json:"beacon_block_root"`
		Source          json.RawMessage `json:"source"`
		Target          json.RawMessage `json:"target"`
	}
	if err := payload("attestation", raw, &v); err != nil {
		return nil, err
	}
	a := &phase0.AttestationData{}
	slot, err := u64Field("attestation.slot", v.Slot)
	if err != nil {
		return nil, err
	}
	index, err := u64Field("attestation.index", v.Index)
	if err != nil {
		return nil, err
	}
	a.Slot, a.Index = phase0.Slot(slot), phase0.CommitteeIndex(index)
	if err := hexField("attestation.beacon_block_root", v.BeaconBlockRoot, a.BeaconBlockRoot[:]); err != nil {
		return nil, err
	}
	if a.Source, err = decodeCheckpoint("attestation.source", v.Source); err != nil {
		return nil, err
	}
	if a.Target, err = decodeCheckpoint("attestation.target", v.Target); err != nil {
		return nil, err
	}
	return a, nil
}

func decodeCheckpoint(field string, raw json.RawMessage) (*phase0.Checkpoint, error) {
	var v struct {
		Epoch json.RawMessage `json:"epoch"`
		Root  json.RawMessage `json:"root"`
	}
	if err := payload(field, raw, &v); err != nil {
		return nil, err
	}
	e, err := u64Field(field+".epoch", v.Epoch)
	if err != nil {
		return nil, err
	}
	c := &phase0.Checkpoint{Epoch: phase0.Epoch(e)}
	if err := hexField(field+".root", v.Root, c.Root[:]); err != nil {
		return nil, err
	}
	return c, nil
}

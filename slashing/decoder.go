package slashing

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/vigil-signer/vigil/internal/strictjson"
)

// Decoder reads an EIP-3076 (v5) interchange document as a stream: the
// metadata first, then one validator entry at a time, so a document of any
// size is never held in memory (one entry at a time is). Every value is
// validated strictly: format version "5", 32-byte genesis validators root,
// 48-byte pubkeys, u64 values as decimal strings, optional 32-byte signing
// roots, "data" and "metadata" present exactly once, nothing after the
// document. Unknown object members are ignored.
//
// If a document puts "data" before "metadata" (legal JSON, written by no
// known client) the entries are buffered in memory until the metadata is
// read, so validation and the genesis-root check still come first.
//
// Errors are *InterchangeError (errors.Is(err, ErrInterchange)) and are
// sticky: after one, every call returns it.
type Decoder struct {
	dec     *json.Decoder
	state   decoderState
	meta    *Metadata
	sawData bool
	pending []ValidatorHistory
	index   int // index in "data" of the next entry to decode
	err     error
	fields  [3]json.RawMessage // scratch for fastFields

	pendingIndex int             // "data" index of pending[0]
	cur          entryState      // the entry being read
	raw          json.RawMessage // scratch: the current message or member value
	topNames     []string        // members of the document object met so far
}

type decoderState int

const (
	stateStart  decoderState = iota // before the top-level '{'
	stateObject                     // between members of the top-level object
	stateData                       // inside the "data" array
	stateDone                       // after the top-level '}'
)

// NewDecoder returns a decoder reading from r. It buffers r itself.
func NewDecoder(r io.Reader) *Decoder {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return &Decoder{dec: dec, index: 0}
}

// Metadata reads up to and including the "metadata" object and returns it.
// It may be called more than once.
func (d *Decoder) Metadata() (Metadata, error) {
	if d.err != nil {
		return Metadata{}, d.err
	}
	for d.meta == nil {
		if err := d.step(true); err != nil {
			if err == io.EOF {
				err = d.fail(-1, "", "", "missing \"metadata\"")
			}
			return Metadata{}, err
		}
	}
	return *d.meta, nil
}

// Next returns the next validator entry; io.EOF after the last one, once the
// whole document has been read and found well-formed.
func (d *Decoder) Next() (ValidatorHistory, error) {
	if _, err := d.Metadata(); err != nil {
		return ValidatorHistory{}, err
	}
	for {
		if len(d.pending) > 0 {
			h := d.pending[0]
			d.pending[0] = ValidatorHistory{}
			d.pending = d.pending[1:]
			return h, nil
		}
		if d.err != nil {
			return ValidatorHistory{}, d.err
		}
		if d.state == stateData {
			c, ok, err := d.chunk(unlimited)
			if err != nil {
				return ValidatorHistory{}, err
			}
			if ok {
				return c.history(), nil
			}
			continue
		}
		if err := d.step(false); err != nil {
			return ValidatorHistory{}, err
		}
	}
}

// step advances over one member of the top-level object. With buffer set, a
// "data" array met before the metadata is decoded into d.pending in full.
// It returns io.EOF when the document is complete.
func (d *Decoder) step(buffer bool) error {
	switch d.state {
	case stateStart:
		tok, err := d.dec.Token()
		if err != nil {
			return d.syntax(err)
		}
		if tok != json.Delim('{') {
			return d.fail(-1, "", "", "the document must be a JSON object")
		}
		d.state = stateObject
		return nil
	case stateData:
		// Only reached when buffering: drain the array into pending.
		for d.state == stateData {
			c, ok, err := d.chunk(unlimited)
			if err != nil {
				return err
			}
			if ok {
				if len(d.pending) == 0 {
					d.pendingIndex = c.Index
				}
				d.pending = append(d.pending, c.history())
			}
		}
		return nil
	case stateDone:
		return io.EOF
	}
	tok, err := d.dec.Token()
	if err != nil {
		return d.syntax(err)
	}
	if tok == json.Delim('}') {
		if d.meta == nil {
			return d.fail(-1, "", "", "missing \"metadata\"")
		}
		if !d.sawData {
			return d.fail(-1, "", "", "missing \"data\"")
		}
		if _, err := d.dec.Token(); err != io.EOF {
			return d.fail(-1, "", "", "unexpected data after the document")
		}
		d.state = stateDone
		return io.EOF
	}
	key, _ := tok.(string)
	if slices.Contains(d.topNames, key) && key != "metadata" && key != "data" {
		return d.fail(-1, "", key, strictjson.ErrDuplicate.Error())
	}
	d.topNames = append(d.topNames, key)
	if err := strictjson.CheckMember(documentSchema, "", key); err != nil {
		se := err.(*strictjson.Error)
		return d.fail(-1, "", se.Path, se.Problem())
	}
	switch key {
	case "metadata":
		if d.meta != nil {
			return d.fail(-1, "", "metadata", "appears twice")
		}
		var raw json.RawMessage
		if err := d.dec.Decode(&raw); err != nil {
			return d.syntax(err)
		}
		m, err := d.metadata(raw)
		if err != nil {
			return err
		}
		d.meta = &m
		return nil
	case "data":
		if d.sawData {
			return d.fail(-1, "", "data", "appears twice")
		}
		d.sawData = true
		tok, err := d.dec.Token()
		if err != nil {
			return d.syntax(err)
		}
		if tok != json.Delim('[') {
			return d.fail(-1, "", "data", "must be an array of validator entries")
		}
		d.state = stateData
		if buffer && d.meta == nil {
			return d.step(true)
		}
		return nil
	default:
		if err := d.dec.Decode(&d.raw); err != nil {
			return d.syntax(err)
		}
		if err := strictjson.Check(d.raw, nil); err != nil {
			se := err.(*strictjson.Error)
			return d.fail(-1, "", joinPath(key, se.Path), se.Problem())
		}
		return nil
	}
}

type wireMetadata struct {
	Version json.RawMessage `json:"interchange_format_version"`
	GVR     json.RawMessage `json:"genesis_validators_root"`
}

func (d *Decoder) metadata(raw json.RawMessage) (Metadata, error) {
	if !isObject(raw) {
		return Metadata{}, d.fail(-1, "", "metadata", "must be an object")
	}
	if err := strictjson.Check(raw, metadataSchema); err != nil {
		se := err.(*strictjson.Error)
		return Metadata{}, d.fail(-1, "", joinPath("metadata", se.Path), se.Problem())
	}
	var w wireMetadata
	if err := json.Unmarshal(raw, &w); err != nil {
		return Metadata{}, d.fail(-1, "", "metadata", err.Error())
	}
	v, err := jsonString(w.Version)
	if err != nil {
		return Metadata{}, d.fail(-1, "", "metadata.interchange_format_version", err.Error())
	}
	if v != InterchangeFormatVersion {
		return Metadata{}, d.fail(-1, "", "metadata.interchange_format_version", fmt.Sprintf("%q is not supported (only %q)", v, InterchangeFormatVersion))
	}
	var m Metadata
	m.InterchangeFormatVersion = v
	if err := parseHexField(w.GVR, m.GenesisValidatorsRoot[:]); err != nil {
		return Metadata{}, d.fail(-1, "", "metadata.genesis_validators_root", err.Error())
	}
	return m, nil
}

// Member names of the wire types, for the fastFields path (same order as the struct fields).
var (
	validatorFields   = []string{"pubkey", "signed_blocks", "signed_attestations"}
	blockFields       = []string{"slot", "signing_root"}
	attestationFields = []string{"source_epoch", "target_epoch", "signing_root"}
)

type wireValidator struct {
	Pubkey             json.RawMessage `json:"pubkey"`
	SignedBlocks       json.RawMessage `json:"signed_blocks"`
	SignedAttestations json.RawMessage `json:"signed_attestations"`
}

type wireBlock struct {
	Slot        json.RawMessage `json:"slot"`
	SigningRoot json.RawMessage `json:"signing_root"`
}

type wireAttestation struct {
	Source      json.RawMessage `json:"source_epoch"`
	Target      json.RawMessage `json:"target_epoch"`
	SigningRoot json.RawMessage `json:"signing_root"`
}

// Known member names of a validator entry and its messages (strictjson: exact names only).
var (
	validatorSchema   = strictjson.Object(map[string]*strictjson.Schema{"pubkey": nil, "signed_blocks": nil, "signed_attestations": nil})
	blockSchema       = strictjson.Object(map[string]*strictjson.Schema{"slot": nil, "signing_root": nil})
	attestationSchema = strictjson.Object(map[string]*strictjson.Schema{"source_epoch": nil, "target_epoch": nil, "signing_root": nil})
	metadataSchema    = strictjson.Object(map[string]*strictjson.Schema{"interchange_format_version": nil, "genesis_validators_root": nil})
	documentSchema    = strictjson.Object(map[string]*strictjson.Schema{"metadata": nil, "data": nil})
)

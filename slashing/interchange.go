package slashing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/strictjson"
)

// InterchangeFormatVersion is the only EIP-3076 interchange format version
// this package reads and writes.
const InterchangeFormatVersion = "5"

// ErrNoGenesisValidatorsRoot is returned by Export when the database has no
// genesis validators root pinned. Every signature and every import pins the
// root, so such a database holds no signing history at all; a caller that
// knows the network's root (the keymanager API) uses ExportWithRoot instead.
var ErrNoGenesisValidatorsRoot = errors.New("slashing protection database has no genesis validators root yet (nothing was signed or imported)")

// Metadata is the "metadata" object of an interchange document.
type Metadata struct {
	InterchangeFormatVersion string
	GenesisValidatorsRoot    phase0.Root
}

// InterchangeError describes one problem with an interchange document and
// where it is. errors.Is(err, ErrInterchange) is true for it.
type InterchangeError struct {
	// Index is the position of the validator entry in "data", -1 when the
	// problem is outside "data" (or the entry could not be located).
	Index int
	// Pubkey is the entry's public key as written, "" if unknown.
	Pubkey string
	// Field is the path of the offending value inside the entry or the
	// document, e.g. "signed_attestations[2].target_epoch".
	Field string
	// Problem says what is wrong.
	Problem string
	// Offset is the byte offset in the document at which the problem was
	// detected (just after the offending value or entry).
	Offset int64
}

func (e *InterchangeError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInterchange.Error())
	b.WriteString(": ")
	if e.Index >= 0 {
		fmt.Fprintf(&b, "data[%d]", e.Index)
		if e.Pubkey != "" {
			fmt.Fprintf(&b, " (pubkey %s)", e.Pubkey)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	fmt.Fprintf(&b, " (at byte %d)", e.Offset)
	return b.String()
}

// Is makes errors.Is(e, ErrInterchange) true.
func (e *InterchangeError) Is(target error) bool { return target == ErrInterchange }

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

// DefaultImportChunk is the default largest number of messages (blocks plus
// attestations) of one entry that Import reads and merges at once.
const DefaultImportChunk = 4096

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

// history is a whole-entry chunk as a ValidatorHistory (empty lists, never nil ones).
func (c EntryChunk) history() ValidatorHistory {
	h := ValidatorHistory{Pubkey: c.Pubkey, SignedBlocks: c.SignedBlocks, SignedAttestations: c.SignedAttestations}
	if h.SignedBlocks == nil {
		h.SignedBlocks = []SignedBlock{}
	}
	if h.SignedAttestations == nil {
		h.SignedAttestations = []SignedAttestation{}
	}
	return h
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

// entryState is the decoder's position inside one validator entry, which it
// reads member by member and message by message (never the whole entry).
type entryState struct {
	active             bool
	index              int
	pubkey             phase0.BLSPubKey
	pk                 string // "0x…" once read, for errors
	havePK             bool
	names              []string // members met so far (duplicates)
	inArray            int      // 0 between members, 1 in signed_blocks, 2 in signed_attestations
	sawBlocks, sawAtts bool
	nBlocks, nAtts     int // messages read so far (paths in errors)
	blocks             []SignedBlock
	atts               []SignedAttestation
	emitted            int // chunks returned so far
	lw                 LowWatermarks
}

// EntryChunk is a piece of one validator entry returned by NextChunk.
type EntryChunk struct {
	// Index is the entry's position in "data".
	Index int
	// ImportChunk carries the pubkey, First/Last, the messages and (with
	// Last) the minima of the whole entry; ImportID is left zero.
	ImportChunk
}

// NextChunk returns the next piece of at most max messages (blocks plus
// attestations) of the current validator entry, or of the next one; io.EOF
// after the last entry. An entry's chunks come in order, the first with
// First set, the last with Last set (and the entry's watermarks). Only the
// current chunk is held in memory, except when an entry puts "pubkey" after
// its messages: those messages are then held until the pubkey is read (the
// format does not fix member order; every known writer puts pubkey first).
// Do not mix NextChunk and Next within one entry.
func (d *Decoder) NextChunk(max int) (EntryChunk, error) {
	if max <= 0 {
		max = DefaultImportChunk
	}
	if _, err := d.Metadata(); err != nil {
		return EntryChunk{}, err
	}
	for {
		if len(d.pending) > 0 {
			h := d.pending[0]
			d.pending[0] = ValidatorHistory{}
			d.pending = d.pending[1:]
			c := EntryChunk{Index: d.pendingIndex, ImportChunk: ImportChunk{Pubkey: h.Pubkey, First: true, Last: true,
				SignedBlocks: h.SignedBlocks, SignedAttestations: h.SignedAttestations, Watermarks: ImportWatermarks(h)}}
			d.pendingIndex++
			return c, nil
		}
		if d.err != nil {
			return EntryChunk{}, d.err
		}
		if d.state == stateData {
			c, ok, err := d.chunk(max)
			if err != nil {
				return EntryChunk{}, err
			}
			if ok {
				return c, nil
			}
			continue
		}
		if err := d.step(false); err != nil {
			return EntryChunk{}, err
		}
	}
}

const unlimited = int(^uint(0) >> 1)

// chunk reads on in the current entry (starting the next one if none) until
// max messages are pending with the pubkey known, or the entry ends;
// ok=false when the "data" array ended.
func (d *Decoder) chunk(max int) (EntryChunk, bool, error) {
	e := &d.cur
	if !e.active {
		if !d.dec.More() {
			if _, err := d.dec.Token(); err != nil { // ']'
				return EntryChunk{}, false, d.syntax(err)
			}
			d.state = stateObject
			return EntryChunk{}, false, nil
		}
		idx := d.index
		d.index++
		tok, err := d.dec.Token()
		if err != nil {
			return EntryChunk{}, false, d.syntax(err)
		}
		if tok != json.Delim('{') {
			return EntryChunk{}, false, d.fail(idx, "", "", "a validator entry must be an object")
		}
		*e = entryState{active: true, index: idx, names: e.names[:0]}
	}
	for {
		if e.inArray != 0 {
			if !d.dec.More() {
				if _, err := d.dec.Token(); err != nil { // ']'
					return EntryChunk{}, false, d.syntax(err)
				}
				e.inArray = 0
				continue
			}
			// Another message follows: hand out a full chunk first (so the last chunk is never empty).
			if e.havePK && len(e.blocks)+len(e.atts) >= max {
				return d.emit(false), true, nil
			}
			if err := d.dec.Decode(&d.raw); err != nil {
				return EntryChunk{}, false, d.syntax(err)
			}
			var err error
			if e.inArray == 1 {
				err = d.block(e)
			} else {
				err = d.attestation(e)
			}
			if err != nil {
				return EntryChunk{}, false, err
			}
			continue
		}
		tok, err := d.dec.Token()
		if err != nil {
			return EntryChunk{}, false, d.syntax(err)
		}
		if tok == json.Delim('}') {
			switch {
			case !e.havePK:
				return EntryChunk{}, false, d.fail(e.index, "", "pubkey", errMissing.Error())
			case !e.sawBlocks:
				return EntryChunk{}, false, d.fail(e.index, e.pk, "signed_blocks", errMissing.Error())
			case !e.sawAtts:
				return EntryChunk{}, false, d.fail(e.index, e.pk, "signed_attestations", errMissing.Error())
			}
			c := d.emit(true)
			e.active = false
			return c, true, nil
		}
		key, _ := tok.(string)
		for _, n := range e.names {
			if n == key {
				var se *strictjson.Error
				errors.As(strictjson.Duplicate("", key), &se)
				return EntryChunk{}, false, d.fail(e.index, e.pk, se.Path, se.Problem())
			}
		}
		e.names = append(e.names, key)
		if err := strictjson.CheckMember(validatorSchema, "", key); err != nil {
			se := err.(*strictjson.Error)
			return EntryChunk{}, false, d.fail(e.index, e.pk, se.Path, se.Problem())
		}
		switch key {
		case "pubkey":
			if err := d.dec.Decode(&d.raw); err != nil {
				return EntryChunk{}, false, d.syntax(err)
			}
			if err := parseHexField(d.raw, e.pubkey[:]); err != nil {
				pk, _ := jsonString(d.raw)
				return EntryChunk{}, false, d.fail(e.index, printable(pk), "pubkey", err.Error())
			}
			e.havePK = true
			e.pk = "0x" + hex.EncodeToString(e.pubkey[:])
		case "signed_blocks", "signed_attestations":
			tok, err := d.dec.Token()
			if err != nil {
				return EntryChunk{}, false, d.syntax(err)
			}
			switch tok {
			case json.Delim('['):
			case nil:
				return EntryChunk{}, false, d.fail(e.index, e.pk, key, errMissing.Error())
			default:
				return EntryChunk{}, false, d.fail(e.index, e.pk, key, "must be an array")
			}
			if key == "signed_blocks" {
				e.inArray, e.sawBlocks = 1, true
			} else {
				e.inArray, e.sawAtts = 2, true
			}
		default:
			if err := d.dec.Decode(&d.raw); err != nil {
				return EntryChunk{}, false, d.syntax(err)
			}
			if err := strictjson.Check(d.raw, nil); err != nil {
				se := err.(*strictjson.Error)
				return EntryChunk{}, false, d.fail(e.index, e.pk, joinPath(key, se.Path), se.Problem())
			}
		}
	}
}

func joinPath(a, b string) string {
	if b == "" {
		return a
	}
	if b[0] == '[' {
		return a + b
	}
	return a + "." + b
}

// emit hands out the pending messages as a chunk.
func (d *Decoder) emit(last bool) EntryChunk {
	e := &d.cur
	AddWatermarks(&e.lw, e.blocks, e.atts)
	c := EntryChunk{Index: e.index, ImportChunk: ImportChunk{Pubkey: e.pubkey, First: e.emitted == 0, Last: last,
		SignedBlocks: e.blocks, SignedAttestations: e.atts}}
	if last {
		c.Watermarks = e.lw
	}
	e.blocks, e.atts = nil, nil
	e.emitted++
	return c
}

// strictMessage reports a duplicate or case-variant member of a message.
func (d *Decoder) strictMessage(e *entryState, field string, raw []byte, schema *strictjson.Schema) error {
	if err := strictjson.Check(raw, schema); err != nil {
		se := err.(*strictjson.Error)
		return d.fail(e.index, e.pk, joinPath(field, se.Path), se.Problem())
	}
	return nil
}

func (d *Decoder) block(e *entryState) error {
	i := e.nBlocks
	e.nBlocks++
	rb := d.raw
	field := func() string { return "signed_blocks[" + strconv.Itoa(i) + "]" }
	if !isObject(rb) {
		return d.fail(e.index, e.pk, field(), "must be an object")
	}
	var wb wireBlock
	if f := d.fields[:2]; fastFields(rb, blockFields, f) {
		wb = wireBlock{Slot: f[0], SigningRoot: f[1]}
	} else {
		if err := d.strictMessage(e, field(), rb, blockSchema); err != nil {
			return err
		}
		if err := json.Unmarshal(rb, &wb); err != nil {
			return d.fail(e.index, e.pk, field(), err.Error())
		}
	}
	slot, err := parseU64Field(wb.Slot)
	if err != nil {
		return d.fail(e.index, e.pk, field()+".slot", err.Error())
	}
	root, err := parseRootField(wb.SigningRoot)
	if err != nil {
		return d.fail(e.index, e.pk, field()+".signing_root", err.Error())
	}
	e.blocks = append(e.blocks, SignedBlock{Slot: phase0.Slot(slot), SigningRoot: root})
	return nil
}

func (d *Decoder) attestation(e *entryState) error {
	i := e.nAtts
	e.nAtts++
	ra := d.raw
	field := func() string { return "signed_attestations[" + strconv.Itoa(i) + "]" }
	if !isObject(ra) {
		return d.fail(e.index, e.pk, field(), "must be an object")
	}
	var wa wireAttestation
	if f := d.fields[:3]; fastFields(ra, attestationFields, f) {
		wa = wireAttestation{Source: f[0], Target: f[1], SigningRoot: f[2]}
	} else {
		if err := d.strictMessage(e, field(), ra, attestationSchema); err != nil {
			return err
		}
		if err := json.Unmarshal(ra, &wa); err != nil {
			return d.fail(e.index, e.pk, field(), err.Error())
		}
	}
	src, err := parseU64Field(wa.Source)
	if err != nil {
		return d.fail(e.index, e.pk, field()+".source_epoch", err.Error())
	}
	tgt, err := parseU64Field(wa.Target)
	if err != nil {
		return d.fail(e.index, e.pk, field()+".target_epoch", err.Error())
	}
	root, err := parseRootField(wa.SigningRoot)
	if err != nil {
		return d.fail(e.index, e.pk, field()+".signing_root", err.Error())
	}
	e.atts = append(e.atts, SignedAttestation{SourceEpoch: phase0.Epoch(src), TargetEpoch: phase0.Epoch(tgt), SigningRoot: root})
	return nil
}

func (d *Decoder) fail(index int, pubkey, field, problem string) error {
	d.err = &InterchangeError{Index: index, Pubkey: pubkey, Field: field, Problem: problem, Offset: d.dec.InputOffset()}
	d.state = stateDone
	d.pending = nil
	return d.err
}

func (d *Decoder) syntax(err error) error {
	idx := -1
	if d.state == stateData {
		idx = d.index - 1
		if idx < 0 {
			idx = 0
		}
	}
	switch {
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return d.fail(idx, "", "", "unexpected end of document")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		d.err = &InterchangeError{Index: idx, Problem: "malformed JSON: " + se.Error(), Offset: se.Offset}
		d.state = stateDone
		d.pending = nil
		return d.err
	}
	var ue *json.UnmarshalTypeError
	if errors.As(err, &ue) {
		return d.fail(idx, "", "", "malformed JSON: "+ue.Error())
	}
	// A read error from the underlying reader is not a document problem.
	d.err = fmt.Errorf("reading interchange document: %w", err)
	d.state = stateDone
	return d.err
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

func missing(raw json.RawMessage) bool {
	return len(raw) == 0
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

var (
	errMissing   = errors.New("missing")
	errNotString = errors.New("must be a string")
)

func jsonString(raw json.RawMessage) (string, error) {
	if missing(raw) || isNull(raw) {
		return "", errMissing
	}
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errNotString
	}
	return s, nil
}

func jsonArray(raw json.RawMessage, out *[]json.RawMessage) error {
	if missing(raw) || isNull(raw) {
		return errMissing
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return errors.New("must be an array")
	}
	if fastArray(raw, out) {
		return nil
	}
	*out = (*out)[:0]
	return json.Unmarshal(raw, out)
}

// parseU64Field parses a u64 written as a JSON string of decimal digits.
func parseU64Field(raw json.RawMessage) (uint64, error) {
	s, err := jsonString(raw)
	if err != nil {
		if err == errNotString {
			return 0, errors.New("must be a decimal string (a quoted unsigned integer)")
		}
		return 0, err
	}
	return ParseDecimalU64(s)
}

// ParseDecimalU64 parses the EIP-3076 representation of a u64: one or more
// ASCII decimal digits, no sign, at most 2^64-1.
func ParseDecimalU64(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty decimal string")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal unsigned integer", printable(s))
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range for a u64", printable(s))
	}
	return v, nil
}

func parseHexField(raw json.RawMessage, out []byte) error {
	s, err := jsonString(raw)
	if err != nil {
		return err
	}
	return ParseHex(s, out)
}

// ParseHex decodes a 0x-prefixed hex string of exactly len(out) bytes.
func ParseHex(s string, out []byte) error {
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return fmt.Errorf("%q must be 0x-prefixed hex", printable(s))
	}
	h := s[2:]
	if len(h) != 2*len(out) {
		return fmt.Errorf("%q must be %d bytes of hex, got %d characters", printable(s), len(out), len(h))
	}
	if _, err := hex.Decode(out, []byte(h)); err != nil {
		return fmt.Errorf("%q is not valid hex", printable(s))
	}
	return nil
}

func parseRootField(raw json.RawMessage) (*phase0.Root, error) {
	if missing(raw) || isNull(raw) {
		return nil, nil
	}
	var r phase0.Root
	if err := parseHexField(raw, r[:]); err != nil {
		return nil, err
	}
	return &r, nil
}

// printable shortens and sanitises an input value for an error message.
func printable(s string) string {
	const limit = 120
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// Encoder writes an EIP-3076 (v5) interchange document as a stream: the
// metadata when created, then one validator entry per Encode call, and the
// closing brackets on Close. The output is compact JSON with one validator
// entry per line.
type Encoder struct {
	w       *bufio.Writer
	entries int
	closed  bool
	err     error
	buf     []byte
}

// NewEncoder writes the document header for m (an empty format version
// means InterchangeFormatVersion) and returns an encoder for the entries.
func NewEncoder(w io.Writer, m Metadata) (*Encoder, error) {
	if m.InterchangeFormatVersion == "" {
		m.InterchangeFormatVersion = InterchangeFormatVersion
	}
	if m.InterchangeFormatVersion != InterchangeFormatVersion {
		return nil, fmt.Errorf("%w: cannot write format version %q (only %q)", ErrInterchange, m.InterchangeFormatVersion, InterchangeFormatVersion)
	}
	e := &Encoder{w: bufio.NewWriterSize(w, 64<<10)}
	_, e.err = fmt.Fprintf(e.w, `{"metadata":{"interchange_format_version":%q,"genesis_validators_root":"0x%x"},"data":[`,
		m.InterchangeFormatVersion, m.GenesisValidatorsRoot[:])
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// Encode writes one validator entry.
func (e *Encoder) Encode(h ValidatorHistory) error {
	if e.err != nil {
		return e.err
	}
	if e.closed {
		return errors.New("interchange encoder: Encode after Close")
	}
	b := e.buf[:0]
	if e.entries > 0 {
		b = append(b, ',')
	}
	b = append(b, "\n{\"pubkey\":\"0x"...)
	b = hex.AppendEncode(b, h.Pubkey[:])
	b = append(b, "\",\"signed_blocks\":["...)
	for i, sb := range h.SignedBlocks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "{\"slot\":\""...)
		b = strconv.AppendUint(b, uint64(sb.Slot), 10)
		b = append(b, '"')
		b = appendRoot(b, sb.SigningRoot)
		b = append(b, '}')
	}
	b = append(b, "],\"signed_attestations\":["...)
	for i, sa := range h.SignedAttestations {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "{\"source_epoch\":\""...)
		b = strconv.AppendUint(b, uint64(sa.SourceEpoch), 10)
		b = append(b, "\",\"target_epoch\":\""...)
		b = strconv.AppendUint(b, uint64(sa.TargetEpoch), 10)
		b = append(b, '"')
		b = appendRoot(b, sa.SigningRoot)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	e.buf = b
	if _, err := e.w.Write(b); err != nil {
		e.err = err
		return err
	}
	e.entries++
	return nil
}

func appendRoot(b []byte, r *phase0.Root) []byte {
	if r == nil {
		return b
	}
	b = append(b, ",\"signing_root\":\"0x"...)
	b = hex.AppendEncode(b, r[:])
	return append(b, '"')
}

// Close ends the document and flushes it. It does not close the writer.
func (e *Encoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if e.closed {
		return nil
	}
	e.closed = true
	if _, err := e.w.WriteString("\n]}\n"); err != nil {
		e.err = err
		return err
	}
	if err := e.w.Flush(); err != nil {
		e.err = err
		return err
	}
	return nil
}

// ImportOptions tunes Import.
type ImportOptions struct {
	// GenesisValidatorsRoot, when set, is the root of the network this node
	// runs on: a document for another network is refused even when the
	// database has no root pinned yet.
	GenesisValidatorsRoot *phase0.Root
	// Pubkeys, when non-nil, limits the import to these keys (the keymanager
	// API imports only the keys it is importing); other entries are skipped.
	// A non-nil empty slice imports nothing.
	Pubkeys []phase0.BLSPubKey
	// Progress, when set, is called after each entry is imported or skipped (from one goroutine).
	Progress func(ImportProgress)
	// Workers > 1 imports that many entries at once (for a store with real concurrency such
	// as Postgres): entries of the same pubkey still go in document order, through one worker.
	// On an error, entries after the failing one may already be imported too; that is as safe
	// as the sequential case (an import only adds history) and importing again is idempotent.
	Workers int
	// ChunkSize is the largest number of messages of one entry read and merged in one
	// transaction (default DefaultImportChunk). A larger entry is merged in several, its key
	// refused from the first to the last (see "Chunked imports" in import_chunked.go).
	ChunkSize int
	// AfterChunk, when set, is called after each chunk of a multi-chunk entry is committed
	// and before the next one is read (sequential imports only; a test hook).
	AfterChunk ImportHook
}

// ImportProgress reports how far an import got.
type ImportProgress struct {
	Entries    int   // entries of "data" read so far
	Imported   int   // entries imported so far
	Skipped    int   // entries skipped by the pubkey filter so far
	BytesRead  int64 // bytes of the document consumed so far
	LastPubkey phase0.BLSPubKey
}

// ImportResult summarises an import. On error it counts what was imported
// before the error (those validators are committed).
type ImportResult struct {
	GenesisValidatorsRoot phase0.Root
	Entries               int // entries read from "data"
	Imported              int // entries imported (one transaction each)
	Skipped               int // entries skipped by the pubkey filter
	Blocks                int // block records in the imported entries
	Attestations          int // attestation records in the imported entries
}

// Import reads an interchange document from r and merges it into store, one
// validator entry per transaction (store.ImportValidator). The genesis
// validators root is checked before anything is imported: a document whose
// root differs from opts.GenesisValidatorsRoot or from the root pinned in the
// store is refused whole (ErrInterchange).
//
// Entries are validated as they are read. If entry N is malformed (or the
// store fails), the import stops there and returns the error; entries before
// N stay imported. That is safe: an import only ever adds history and so only
// adds refusals, and importing the corrected document again is idempotent.
// The same pubkey may appear in several entries; each is merged in turn.
// The genesis validators root is pinned by the first imported entry: a
// document without entries (or with every entry filtered out) pins nothing.
func Import(ctx context.Context, store Store, r io.Reader, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	cr := &countingReader{r: r}
	dec := NewDecoder(cr)
	meta, err := dec.Metadata()
	if err != nil {
		return res, err
	}
	res.GenesisValidatorsRoot = meta.GenesisValidatorsRoot
	if want := opts.GenesisValidatorsRoot; want != nil && *want != meta.GenesisValidatorsRoot {
		return res, &InterchangeError{Index: -1, Field: "metadata.genesis_validators_root",
			Problem: fmt.Sprintf("%#x is not this network's genesis validators root %#x", meta.GenesisValidatorsRoot[:], want[:])}
	}
	pinned, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return res, err
	}
	if ok && pinned != meta.GenesisValidatorsRoot {
		return res, &InterchangeError{Index: -1, Field: "metadata.genesis_validators_root",
			Problem: fmt.Sprintf("%#x does not match the database's genesis validators root %#x", meta.GenesisValidatorsRoot[:], pinned[:])}
	}
	var filter map[phase0.BLSPubKey]struct{}
	if opts.Pubkeys != nil {
		filter = make(map[phase0.BLSPubKey]struct{}, len(opts.Pubkeys))
		for _, pk := range opts.Pubkeys {
			filter[pk] = struct{}{}
		}
	}
	if opts.Workers > 1 {
		return importParallel(ctx, store, dec, cr, meta.GenesisValidatorsRoot, filter, opts, res)
	}
	ci := chunker{store: store, gvr: meta.GenesisValidatorsRoot}
	var want bool
	chunks := 0
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		c, err := dec.NextChunk(opts.ChunkSize)
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		if c.First {
			res.Entries++
			_, want = filter[c.Pubkey]
			want = want || filter == nil
			chunks = 0
		}
		if want {
			if err := ci.put(ctx, &c.ImportChunk); err != nil {
				return res, fmt.Errorf("importing data[%d] (pubkey %#x): %w", c.Index, c.Pubkey[:], err)
			}
			chunks++
			res.Blocks += len(c.SignedBlocks)
			res.Attestations += len(c.SignedAttestations)
			if opts.AfterChunk != nil && !(c.First && c.Last) {
				opts.AfterChunk(ctx, c.Pubkey, chunks, c.Last)
			}
		}
		if !c.Last {
			continue
		}
		if want {
			res.Imported++
		} else {
			res.Skipped++
		}
		if opts.Progress != nil {
			opts.Progress(ImportProgress{Entries: res.Entries, Imported: res.Imported, Skipped: res.Skipped,
				BytesRead: cr.n, LastPubkey: c.Pubkey})
		}
	}
}

// chunker merges an entry's chunks into a store: through ChunkImporter when
// the store has it, else by assembling the entry for one ImportValidator.
type chunker struct {
	store Store
	gvr   phase0.Root
	id    uint64
	whole ValidatorHistory // assembled entry (stores without ChunkImporter)
}

func (k *chunker) put(ctx context.Context, c *ImportChunk) error {
	if c.First {
		k.id = NewImportID()
		k.whole = ValidatorHistory{Pubkey: c.Pubkey}
	}
	c.ImportID = k.id
	if c.First && c.Last { // a one-chunk entry: the Store contract's one transaction
		return k.store.ImportValidator(ctx, k.gvr, ValidatorHistory{Pubkey: c.Pubkey,
			SignedBlocks: nonNil(c.SignedBlocks), SignedAttestations: nonNil(c.SignedAttestations)})
	}
	if ci, ok := k.store.(ChunkImporter); ok {
		return ci.ImportChunk(ctx, k.gvr, *c)
	}
	k.whole.SignedBlocks = append(k.whole.SignedBlocks, c.SignedBlocks...)
	k.whole.SignedAttestations = append(k.whole.SignedAttestations, c.SignedAttestations...)
	if !c.Last {
		return nil
	}
	h := k.whole
	k.whole = ValidatorHistory{}
	h.SignedBlocks, h.SignedAttestations = nonNil(h.SignedBlocks), nonNil(h.SignedAttestations)
	return k.store.ImportValidator(ctx, k.gvr, h)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Export writes the history of pubkeys (all keys with history when nil) as an
// interchange document, with the genesis validators root pinned in the
// store. A store with no root pinned has no history; Export then returns
// ErrNoGenesisValidatorsRoot and writes nothing (Web3Signer's CLI refuses
// likewise) — writing a made-up root would produce a document that pins the
// wrong network wherever it is imported. Use ExportWithRoot when the
// network's root is known.
func Export(ctx context.Context, store Store, w io.Writer, pubkeys []phase0.BLSPubKey) error {
	gvr, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNoGenesisValidatorsRoot
	}
	return export(ctx, store, w, gvr, pubkeys)
}

// ExportWithRoot is Export for a caller that knows the network's genesis
// validators root (the keymanager API): the document carries gvr even when
// the store has none pinned (and then simply has no entries with history).
// A store pinned to another root is an error.
func ExportWithRoot(ctx context.Context, store Store, w io.Writer, gvr phase0.Root, pubkeys []phase0.BLSPubKey) error {
	pinned, ok, err := store.GenesisValidatorsRoot(ctx)
	if err != nil {
		return err
	}
	if ok && pinned != gvr {
		return fmt.Errorf("%w: export for genesis validators root %#x requested, the database is pinned to %#x", ErrInterchange, gvr[:], pinned[:])
	}
	return export(ctx, store, w, gvr, pubkeys)
}

func export(ctx context.Context, store Store, w io.Writer, gvr phase0.Root, pubkeys []phase0.BLSPubKey) error {
	enc, err := NewEncoder(w, Metadata{InterchangeFormatVersion: InterchangeFormatVersion, GenesisValidatorsRoot: gvr})
	if err != nil {
		return err
	}
	if err := store.ExportValidators(ctx, pubkeys, enc.Encode); err != nil {
		return err
	}
	return enc.Close()
}

// importParallel is Import's loop with opts.Workers concurrent ImportValidator calls. Entries
// are routed by pubkey so that one key's entries keep their document order.
func importParallel(ctx context.Context, store Store, dec *Decoder, cr *countingReader, gvr phase0.Root,
	filter map[phase0.BLSPubKey]struct{}, opts ImportOptions, res ImportResult) (ImportResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		index int
		c     ImportChunk
	}
	type done struct {
		job
		err error
	}
	jobs := make([]chan job, opts.Workers)
	results := make(chan done, 4*opts.Workers)
	var wg sync.WaitGroup
	for w := range jobs {
		jobs[w] = make(chan job, 4)
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := chunker{store: store, gvr: gvr} // a key's chunks all come to one worker, in order
			for j := range jobs[w] {
				err := ctx.Err()
				if err == nil {
					err = k.put(ctx, &j.c)
				}
				results <- done{j, err}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	report := func(pk phase0.BLSPubKey) {
		if opts.Progress != nil {
			opts.Progress(ImportProgress{Entries: res.Entries, Imported: res.Imported, Skipped: res.Skipped,
				BytesRead: cr.n, LastPubkey: pk})
		}
	}
	collect := func(d done) {
		if d.err != nil {
			fail(fmt.Errorf("importing data[%d] (pubkey %#x): %w", d.index, d.c.Pubkey[:], d.err))
			return
		}
		res.Blocks += len(d.c.SignedBlocks)
		res.Attestations += len(d.c.SignedAttestations)
		if d.c.Last {
			res.Imported++
			report(d.c.Pubkey)
		}
	}
	dispatch := func(j job) {
		hsh := fnv.New32a()
		hsh.Write(j.c.Pubkey[:])
		ch := jobs[int(hsh.Sum32()%uint32(len(jobs)))]
		for {
			select {
			case ch <- j:
				return
			case d := <-results:
				collect(d)
			}
		}
	}
	var want bool
	for firstErr == nil {
		if err := ctx.Err(); err != nil {
			fail(err)
			break
		}
		c, err := dec.NextChunk(opts.ChunkSize)
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
			break
		}
		if c.First {
			res.Entries++
			_, want = filter[c.Pubkey]
			want = want || filter == nil
		}
		if !want {
			if c.Last {
				res.Skipped++
				report(c.Pubkey)
			}
			continue
		}
		dispatch(job{index: c.Index, c: c.ImportChunk})
	}
	for _, ch := range jobs {
		close(ch)
	}
	for d := range results {
		collect(d)
	}
	return res, firstErr
}

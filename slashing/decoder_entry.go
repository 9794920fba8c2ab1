package slashing

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/strictjson"
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

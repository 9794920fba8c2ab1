package slashing

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

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

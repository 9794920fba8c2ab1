package slashing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/attestantio/go-eth2-client/spec/phase0"
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

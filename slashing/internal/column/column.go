// Package column holds the column encodings shared by the SQL stores
// (slashing/sqlite and slashing/postgres), so that both read and write
// their rows the same way:
//
//   - slots and epochs (u64) are stored as BIGINT/INTEGER XOR 2^63, which
//     maps u64 order onto int64 order (value 0 is stored as -2^63, 2^63 as 0,
//     2^64-1 as 2^63-1): comparisons, least and greatest on stored values give
//     the answers of the u64 values;
//   - a signing root is 32 bytes, NULL when unknown;
//   - a key's low watermarks are three nullable columns (slot, source,
//     target; source and target set together).
package column

import (
	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
)

// Enc maps a u64 onto int64 preserving order (stored = v XOR 2^63).
func Enc(v uint64) int64 { return int64(v ^ (1 << 63)) }

// Dec inverts Enc.
func Dec(v int64) uint64 { return uint64(v) ^ (1 << 63) }

// Root is the column value of a signing root: nil (NULL) for an unknown one.
func Root(r *phase0.Root) []byte {
	if r == nil {
		return nil
	}
	return r[:]
}

// RootFrom inverts Root: nil (NULL) is an unknown root.
func RootFrom(b []byte) *phase0.Root {
	if b == nil {
		return nil
	}
	var r phase0.Root
	copy(r[:], b)
	return &r
}

// Watermarks rebuilds a key's low watermarks from its stored columns (nil:
// NULL, not set). The attestation watermark exists only when both source
// and target are set.
func Watermarks(slot, src, tgt *int64) slashing.LowWatermarks {
	var lw slashing.LowWatermarks
	if slot != nil {
		s := phase0.Slot(Dec(*slot))
		lw.Slot = &s
	}
	if src != nil && tgt != nil {
		lw.Attestation = &slashing.AttestationWatermark{Source: phase0.Epoch(Dec(*src)), Target: phase0.Epoch(Dec(*tgt))}
	}
	return lw
}

// Rows is what ScanPubkeys reads: *sql.Rows and pgx.Rows both are.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanPubkeys reads rows of one pubkey column (the caller closes rows).
func ScanPubkeys(rows Rows) ([]phase0.BLSPubKey, error) {
	var out []phase0.BLSPubKey
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, phase0.BLSPubKey(b))
	}
	return out, rows.Err()
}

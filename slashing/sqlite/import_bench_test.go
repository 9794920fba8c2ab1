package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

// BenchmarkImportInterchange imports 100 validators × 1,000 attestations into a fresh SQLite
// store per op (the entries fit one chunk: the common case); MB/s is the import rate.
func BenchmarkImportInterchange(b *testing.B) {
	var doc bytes.Buffer
	fmt.Fprintf(&doc, `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"%#x"},"data":[`, slashingtest.GVR[:])
	for v := range 100 {
		if v > 0 {
			doc.WriteByte(',')
		}
		pk := slashingtest.Key(v + 1)
		fmt.Fprintf(&doc, `{"pubkey":"%#x","signed_blocks":[{"slot":"%d"}],"signed_attestations":[`, pk[:], v)
		for i := range 1000 {
			if i > 0 {
				doc.WriteByte(',')
			}
			fmt.Fprintf(&doc, `{"source_epoch":"%d","target_epoch":"%d","signing_root":"0x%064x"}`, i, i+1, i)
		}
		doc.WriteString(`]}`)
	}
	doc.WriteString(`]}`)
	b.SetBytes(int64(doc.Len()))
	for i := 0; b.Loop(); i++ {
		s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), fmt.Sprintf("s%d.db", i)), benchOpenOptions)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := slashing.Import(context.Background(), s, bytes.NewReader(doc.Bytes()), slashing.ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

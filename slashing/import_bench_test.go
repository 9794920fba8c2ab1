package slashing_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
)

// benchDocument is an interchange document of v validators × a attestations and one block each,
// the shape of a real export (pubkey first).
func benchDocument(v, a int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"},"data":[`)
	for i := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"pubkey":"0x%096x","signed_blocks":[{"slot":"%d","signing_root":"0x%064x"}],"signed_attestations":[`, i+1, 100+i, i)
		for j := range a {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"source_epoch":"%d","target_epoch":"%d","signing_root":"0x%064x"}`, j, j+1, j)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// BenchmarkDecodeInterchange measures the streaming decoder alone (no store): 100 validators ×
// 1,000 attestations per op; MB/s is the decode rate.
func BenchmarkDecodeInterchange(b *testing.B) {
	doc := benchDocument(100, 1000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		dec := slashing.NewDecoder(bytes.NewReader(doc))
		for {
			_, err := dec.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

package slashing_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

const strictMeta = `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"},"data":[`

// Exact-case member names in the interchange reader: before, "Signed_Blocks":[] after
// "signed_blocks":[…] imported no blocks (encoding/json matched it case-insensitively and kept
// the last), while jq and Python see one block. Now every duplicate or case variant is an
// ErrInterchange naming the entry and the field, and nothing of the entry is imported.
func TestInterchangeExactFieldNames(t *testing.T) {
	pk := `"pubkey":"0x` + strings.Repeat("aa", 48) + `"`
	blk := `{"slot":"1","signing_root":"0x` + strings.Repeat("11", 32) + `"}`
	for _, c := range []struct{ name, doc, field string }{
		{"case variant after the array", strictMeta + `{` + pk + `,"signed_blocks":[` + blk + `],"Signed_Blocks":[],"signed_attestations":[]}]}`, "Signed_Blocks"},
		{"duplicate array", strictMeta + `{` + pk + `,"signed_blocks":[` + blk + `],"signed_blocks":[],"signed_attestations":[]}]}`, "signed_blocks"},
		{"duplicate pubkey", strictMeta + `{` + pk + `,` + pk + `,"signed_blocks":[],"signed_attestations":[]}]}`, "pubkey"},
		{"case variant in a block", strictMeta + `{` + pk + `,"signed_blocks":[{"slot":"1","SLOT":"2"}],"signed_attestations":[]}]}`, "signed_blocks[0].SLOT"},
		{"duplicate in an attestation", strictMeta + `{` + pk + `,"signed_blocks":[],"signed_attestations":[{"source_epoch":"1","target_epoch":"2","target_epoch":"3"}]}]}`, "signed_attestations[0].target_epoch"},
		{"duplicate inside an unknown member", strictMeta + `{` + pk + `,"x":{"a":1,"a":2},"signed_blocks":[],"signed_attestations":[]}]}`, "x.a"},
		{"case variant in metadata", `{"metadata":{"interchange_format_version":"5","Genesis_Validators_Root":"0x00","genesis_validators_root":"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"},"data":[]}`, "metadata.Genesis_Validators_Root"},
		{"case variant of data", strictMeta + `],"DATA":[]}`, "DATA"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := slashingtest.NewMemory()
			res, err := slashing.Import(context.Background(), m, strings.NewReader(c.doc), slashing.ImportOptions{})
			var ie *slashing.InterchangeError
			if !errors.Is(err, slashing.ErrInterchange) || !errors.As(err, &ie) || ie.Field != c.field {
				t.Fatalf("error %v, want ErrInterchange at %s", err, c.field)
			}
			if !strings.Contains(ie.Problem, "case-sensitive") && !strings.Contains(ie.Problem, "duplicate") {
				t.Fatalf("problem %q", ie.Problem)
			}
			if res.Imported != 0 || res.Blocks != 0 {
				t.Fatalf("imported %+v from a refused entry", res)
			}
		})
	}
}

// The format does not fix member order: an entry with its pubkey after its messages is read
// correctly (its messages are held until the pubkey comes), in chunks as well.
func TestInterchangePubkeyLast(t *testing.T) {
	pk := `"pubkey":"0x` + strings.Repeat("aa", 48) + `"`
	var atts []string
	for i := range 10 {
		atts = append(atts, `{"source_epoch":"`+itoa(i)+`","target_epoch":"`+itoa(i+1)+`"}`)
	}
	doc := strictMeta + `{"signed_blocks":[{"slot":"5"}],"signed_attestations":[` + strings.Join(atts, ",") + `],` + pk + `}]}`
	first := strictMeta + `{` + pk + `,"signed_blocks":[{"slot":"5"}],"signed_attestations":[` + strings.Join(atts, ",") + `]}]}`
	export := func(d string, chunk int) []byte {
		m := slashingtest.NewMemory()
		if _, err := slashing.Import(context.Background(), m, strings.NewReader(d), slashing.ImportOptions{ChunkSize: chunk}); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := slashing.Export(context.Background(), m, &b, nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	want := export(first, 0)
	for _, chunk := range []int{0, 3} {
		if got := export(doc, chunk); !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: pubkey last gives\n%s\nwant\n%s", chunk, got, want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

package strictjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/strictjson"
)

var attestationSchema = strictjson.Object(map[string]*strictjson.Schema{
	"type":         nil,
	"signing_root": nil,
	"fork_info": strictjson.Object(map[string]*strictjson.Schema{
		"fork":                    strictjson.Of[phase0.Fork](),
		"genesis_validators_root": nil,
	}),
	"attestation": strictjson.Of[phase0.AttestationData](),
	"list":        strictjson.Array(strictjson.Object(map[string]*strictjson.Schema{"slot": nil})),
})

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		kind      error // nil: accepted
		path      string
	}{
		{"plain", `{"type":"ATTESTATION","fork_info":{"fork":{"epoch":"1"}}}`, nil, ""},
		{"unknown fields are ignored", `{"type":"x","Whatever":{"TYPE":1},"extra":[{"Slot":1}]}`, nil, ""},
		{"empty", `{}`, nil, ""},
		{"not an object", `[1,2,"x"]`, nil, ""},
		{"case variant at the top", `{"TYPE":"ATTESTATION"}`, strictjson.ErrCase, "TYPE"},
		{"case variant nested", `{"fork_info":{"FORK":{}}}`, strictjson.ErrCase, "fork_info.FORK"},
		{"case variant in an eth2 type", `{"attestation":{"slot":"1","target":{"Epoch":"1"}}}`, strictjson.ErrCase, "attestation.target.Epoch"},
		{"case variant in an array element", `{"list":[{"slot":1},{"SLOT":2}]}`, strictjson.ErrCase, "list[1].SLOT"},
		{"unicode fold (long s)", `{"list":[{"ſlot":2}]}`, strictjson.ErrCase, "list[0].ſlot"},
		{"unicode fold (Kelvin sign)", `{"fork_info":{"fork":{"\u212aey":1,"epoch":"1"}},"attestation":{"source":{"epoch":"1"},"target":{"Epoch":"1"}}}`, strictjson.ErrCase, "attestation.target.Epoch"},
		{"duplicate at the top", `{"type":"A","type":"B"}`, strictjson.ErrDuplicate, "type"},
		{"duplicate of an unknown field", `{"x":1,"y":2,"x":3}`, strictjson.ErrDuplicate, "x"},
		{"duplicate inside an unknown object", `{"x":{"a":1,"a":1}}`, strictjson.ErrDuplicate, "x.a"},
		{"duplicate spelled with an escape", `{"type":"A","\u0074ype":"B"}`, strictjson.ErrDuplicate, "type"},
		{"duplicate in an array element", `{"list":[{},{"slot":1,"slot":1}]}`, strictjson.ErrDuplicate, "list[1].slot"},
		{"same name in sibling objects is fine", `{"list":[{"slot":1},{"slot":1}],"x":{"slot":1}}`, nil, ""},
		{"escaped case variant", `{"\u0054YPE":"A"}`, strictjson.ErrCase, "TYPE"},
		{"strings with braces and quotes", `{"type":"{\"type\":1,\"type\":2}","x":"]}"}`, nil, ""},
		{"whitespace", " {\n \"fork_info\" : { \"fork\" : { \"EPOCH\" : \"1\" } } } ", strictjson.ErrCase, "fork_info.fork.EPOCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.doc)) {
				t.Fatalf("test document is not valid JSON")
			}
			err := strictjson.Check([]byte(tc.doc), attestationSchema)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *strictjson.Error
			if !errors.As(err, &e) || !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want %v", err, tc.kind)
			}
			if e.Path != tc.path {
				t.Fatalf("path %q, want %q (%v)", e.Path, tc.path, err)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	err := strictjson.Check([]byte(`{"fork_info":{"FORK":{}}}`), attestationSchema)
	if got, want := err.Error(), `fork_info.FORK: field names are case-sensitive, want "fork"`; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	err = strictjson.Check([]byte(`{"type":1,"type":2}`), nil)
	if got, want := err.Error(), `type: duplicate field name (a name may appear once per object)`; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

// Many members: more than fit in the inline table.
func TestCheckLargeObject(t *testing.T) {
	doc := []byte("{")
	for i := range 100 {
		if i > 0 {
			doc = append(doc, ',')
		}
		doc = append(doc, []byte(`"k`+string(rune('a'+i%26))+string(rune('a'+i/26))+`":1`)...)
	}
	ok := append(append([]byte(nil), doc...), '}')
	if err := strictjson.Check(ok, nil); err != nil {
		t.Fatalf("refused: %v", err)
	}
	dup := append(append([]byte(nil), doc...), []byte(`,"kaa":2}`)...)
	if err := strictjson.Check(dup, nil); !errors.Is(err, strictjson.ErrDuplicate) {
		t.Fatalf("error %v, want a duplicate", err)
	}
}

// Malformed input never panics; whatever Check says, encoding/json refuses it.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":[{"b":"c"}]}`, `{"a":1,"a":2}`, `{"A`, `{"a":`, `[[[`, `{"a":"\`, `{"fork_info":{"FORK":1}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := strictjson.Check(data, attestationSchema)
		if err != nil && !errors.Is(err, strictjson.ErrCase) && !errors.Is(err, strictjson.ErrDuplicate) {
			t.Fatalf("unexpected error kind %v", err)
		}
	})
}

func TestOfUsesTheJSONNames(t *testing.T) {
	s := strictjson.Of[phase0.AttestationData]()
	for _, name := range []string{"slot", "index", "beacon_block_root", "source", "target"} {
		if err := strictjson.CheckMember(s, "", name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if s.Field("target") == nil {
		t.Fatalf("target has no schema")
	}
	if err := strictjson.CheckMember(s.Field("target"), "target", "ROOT"); !errors.Is(err, strictjson.ErrCase) {
		t.Fatalf("ROOT: %v", err)
	}
}

const attestationBody = `{"type":"ATTESTATION","fork_info":{"fork":{"previous_version":"0x00000000","current_version":"0x00000000","epoch":"0"},` +
	`"genesis_validators_root":"0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"},` +
	`"signingRoot":"0x9a7bd4a6e4bc1d5e01ef5e2b0cd4e5c5b3c2e4fd0a7b6e1d2c3b4a5968778695",` +
	`"attestation":{"slot":"32","index":"0","beacon_block_root":"0x6ba3b0b4a3c94a5e1a6f2b1e3b0a4a0d8e4a2b1d3c4e5f60718293a4b5c6d7e8",` +
	`"source":{"epoch":"0","root":"0x0000000000000000000000000000000000000000000000000000000000000000"},` +
	`"target":{"epoch":"1","root":"0x6ba3b0b4a3c94a5e1a6f2b1e3b0a4a0d8e4a2b1d3c4e5f60718293a4b5c6d7e8"}}}`

func TestCheckAllocatesNothing(t *testing.T) {
	body := []byte(attestationBody)
	if n := testing.AllocsPerRun(100, func() {
		if err := strictjson.Check(body, attestationSchema); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per check, want 0", n)
	}
}

func BenchmarkCheckAttestation(b *testing.B) {
	body := []byte(attestationBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := strictjson.Check(body, attestationSchema); err != nil {
			b.Fatal(err)
		}
	}
}

// The check against a plain encoding/json decode of the same body, in one run.
func BenchmarkUnmarshalAttestationForComparison(b *testing.B) {
	body := []byte(attestationBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// An object of very many members (a body just under the size limit) is checked in linear time:
// ten times the members may cost about ten times as long (quadratic would be a hundred), measured
// as a ratio in one run.
func TestCheckManyMembersIsLinear(t *testing.T) {
	doc := func(n int) []byte {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"m%d":0,`, i)
		}
		b.WriteString(`"m5":1}`)
		return []byte(b.String())
	}
	cost := func(d []byte) int64 {
		return testing.Benchmark(func(tb *testing.B) {
			for range tb.N {
				if err := strictjson.Check(d, nil); err == nil || !strings.Contains(err.Error(), "duplicate") {
					tb.Fatalf("duplicate m5 not found: %v", err)
				}
			}
		}).NsPerOp()
	}
	small, large := cost(doc(10_000)), cost(doc(100_000))
	t.Logf("10k members %v, 100k members %v per check", time.Duration(small), time.Duration(large))
	if large > 40*small {
		t.Fatalf("10x the members cost %.0fx the time: not linear", float64(large)/float64(small))
	}
}

package jsonfield

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKindAndPresence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw                   string
		kind                  string
		missing, null, absent bool
	}{
		{"", "nothing", true, false, true},
		{"null", "null", false, true, true},
		{" null ", "a number", false, false, true},
		{`{"a":1}`, "an object", false, false, false},
		{"[1]", "an array", false, false, false},
		{`"x"`, "a string", false, false, false},
		{"true", "a boolean", false, false, false},
		{"12", "a number", false, false, false},
	} {
		raw := []byte(tc.raw)
		if got := Kind(raw); got != tc.kind && tc.raw != " null " {
			t.Errorf("Kind(%q) = %q, want %q", tc.raw, got, tc.kind)
		}
		if Missing(raw) != tc.missing || IsNull(raw) != tc.null || Absent(raw) != tc.absent {
			t.Errorf("%q: Missing %v IsNull %v Absent %v; want %v %v %v", tc.raw, Missing(raw), IsNull(raw), Absent(raw), tc.missing, tc.null, tc.absent)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{`"0xab"`, "0xab", true},
		{`"a\"b"`, `a"b`, true},
		{`"\u0041"`, "A", true},
		{`12`, "", false},
		{`"`, "", false},
		{`"abc`, "", false},
	} {
		got, ok := String([]byte(tc.raw))
		if got != tc.want || ok != tc.ok {
			t.Errorf("String(%s) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	var v struct {
		Slot uint64 `json:"slot"`
	}
	err := json.Unmarshal([]byte(`{"slot":"x"}`), &v)
	if got := Describe(err); got != "field slot: want a number, got a JSON string" {
		t.Errorf("Describe(type error) = %q", got)
	}
	err = json.Unmarshal([]byte(`{"slot":`), &v)
	if got := Describe(err); !strings.HasPrefix(got, "syntax error at byte") && got != "unexpected end of JSON input" {
		t.Errorf("Describe(syntax error) = %q", got)
	}
	if got := Describe(errorString(strings.Repeat("x", 400))); len(got) != 300 || !strings.HasSuffix(got, "...") {
		t.Errorf("Describe(long) has %d bytes", len(got))
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

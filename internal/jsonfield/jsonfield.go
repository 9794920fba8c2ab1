// Package jsonfield holds the helpers every JSON decoder of the project shares for reading one
// member's raw value (json.RawMessage): is it there, is it null, what shape is it, the value of
// a JSON string, and a one-line description of an encoding/json error that names the field
// without echoing large inputs. Member-name strictness (duplicates, case variants) is
// internal/strictjson.
package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Missing reports whether a member was absent (no bytes at all).
func Missing(raw []byte) bool { return len(raw) == 0 }

// IsNull reports whether a member's value is the JSON literal null (as encoding/json hands a
// RawMessage member over: without surrounding whitespace).
func IsNull(raw []byte) bool { return string(raw) == "null" }

// Absent reports whether a member is missing or null (surrounding whitespace ignored).
func Absent(raw []byte) bool { return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" }

// Kind names the JSON shape of a raw value for error messages: "an object", "an array",
// "a string", "a boolean", "null", "a number", or "nothing" when empty.
func Kind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// String returns the value of a JSON string. Plain strings (no escapes: every hex and decimal
// value) are sliced directly; anything else goes through encoding/json.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && raw[len(raw)-1] == '"' {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Describe turns an encoding/json (or go-eth2-client) decoding error into one line that names
// the field, without echoing large inputs.
func Describe(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		want := Shape(te.Type)
		if te.Field != "" {
			return fmt.Sprintf("field %s: want %s, got a JSON %s", te.Field, want, te.Value)
		}
		return fmt.Sprintf("want %s, got a JSON %s", want, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d: %v", se.Offset, se)
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:297] + "..."
	}
	return msg
}

// Shape describes the JSON shape a Go type decodes from, without naming internal types.
func Shape(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	default:
		return "a number"
	}
}

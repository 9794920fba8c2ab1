package slashing

import (
	"bytes"
	"encoding/json"
)

// Fast paths for the interchange decoder. An interchange file of 10,000 validators × 1,000
// attestations has ten million small objects; decoding each through encoding/json's reflection
// (which also re-validates every nested value) dominated import time. These helpers work on a
// value that the json.Decoder has ALREADY validated as syntactically correct JSON, and they
// only handle the plain shapes real files use. Whenever they meet anything else (escaped keys,
// keys that differ from the expected ones only by case, duplicate keys) they report false and the
// caller falls back to encoding/json, so the accepted language and the error messages are the
// same either way.

// skipValue returns the index just past the JSON value starting at b[i] (b is valid JSON,
// i points at the first byte of a value, not at whitespace).
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && !isDelim(b[i]) {
			i++
		}
		return i
	}
}

func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

func isDelim(c byte) bool {
	return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// fastFields fills out[k] with the raw value of member names[k] of the validated JSON object raw,
// ignoring other members as encoding/json does. It returns false (caller falls back) if raw is
// not an object, a key has escapes, a key matches a name only case-insensitively, or a name
// appears twice.
func fastFields(raw []byte, names []string, out []json.RawMessage) bool {
	for k := range out {
		out[k] = nil
	}
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return true
	}
	for i < len(raw) {
		if raw[i] != '"' {
			return false
		}
		end := skipString(raw, i)
		key := raw[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		i = skipWS(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = skipWS(raw, i+1)
		vend := skipValue(raw, i)
		for k, name := range names {
			if string(key) == name {
				if out[k] != nil {
					return false // duplicate: encoding/json's last-wins rule applies
				}
				out[k] = raw[i:vend]
			} else if bytes.EqualFold(key, []byte(name)) {
				return false // encoding/json would match it case-insensitively
			}
		}
		i = skipWS(raw, vend)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
			continue
		}
		return i < len(raw) && raw[i] == '}'
	}
	return false
}

// fastArray appends the elements of the validated JSON array raw to out (sub-slices of raw).
// It returns false if raw is not an array.
func fastArray(raw []byte, out *[]json.RawMessage) bool {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return false
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == ']' {
		return true
	}
	for i < len(raw) {
		end := skipValue(raw, i)
		*out = append(*out, raw[i:end])
		i = skipWS(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipWS(raw, i+1)
			continue
		}
		return i < len(raw) && raw[i] == ']'
	}
	return false
}

// plainString returns the content of a JSON string without escapes.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		return "", false
	}
	return string(inner), true
}

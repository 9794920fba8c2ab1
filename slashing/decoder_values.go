package slashing

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

func missing(raw json.RawMessage) bool {
	return len(raw) == 0
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

var (
	errMissing   = errors.New("missing")
	errNotString = errors.New("must be a string")
)

func jsonString(raw json.RawMessage) (string, error) {
	if missing(raw) || isNull(raw) {
		return "", errMissing
	}
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errNotString
	}
	return s, nil
}

func jsonArray(raw json.RawMessage, out *[]json.RawMessage) error {
	if missing(raw) || isNull(raw) {
		return errMissing
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return errors.New("must be an array")
	}
	if fastArray(raw, out) {
		return nil
	}
	*out = (*out)[:0]
	return json.Unmarshal(raw, out)
}

// parseU64Field parses a u64 written as a JSON string of decimal digits.
func parseU64Field(raw json.RawMessage) (uint64, error) {
	s, err := jsonString(raw)
	if err != nil {
		if err == errNotString {
			return 0, errors.New("must be a decimal string (a quoted unsigned integer)")
		}
		return 0, err
	}
	return ParseDecimalU64(s)
}

// ParseDecimalU64 parses the EIP-3076 representation of a u64: one or more
// ASCII decimal digits, no sign, at most 2^64-1.
func ParseDecimalU64(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty decimal string")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a decimal unsigned integer", printable(s))
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range for a u64", printable(s))
	}
	return v, nil
}

func parseHexField(raw json.RawMessage, out []byte) error {
	s, err := jsonString(raw)
	if err != nil {
		return err
	}
	return ParseHex(s, out)
}

// ParseHex decodes a 0x-prefixed hex string of exactly len(out) bytes.
func ParseHex(s string, out []byte) error {
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		return fmt.Errorf("%q must be 0x-prefixed hex", printable(s))
	}
	h := s[2:]
	if len(h) != 2*len(out) {
		return fmt.Errorf("%q must be %d bytes of hex, got %d characters", printable(s), len(out), len(h))
	}
	if _, err := hex.Decode(out, []byte(h)); err != nil {
		return fmt.Errorf("%q is not valid hex", printable(s))
	}
	return nil
}

func parseRootField(raw json.RawMessage) (*phase0.Root, error) {
	if missing(raw) || isNull(raw) {
		return nil, nil
	}
	var r phase0.Root
	if err := parseHexField(raw, r[:]); err != nil {
		return nil, err
	}
	return &r, nil
}

// printable shortens and sanitises an input value for an error message.
func printable(s string) string {
	const limit = 120
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

package signer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/signer"
)

// Field names are case-sensitive: a case variant of any member of a valid request, at any depth,
// is refused with 400 (ErrInvalidRequest) naming its path, and so is a repeated member; before
// strictjson, encoding/json honoured "TARGET" as "target" and kept the last of two "target"s.
func TestDecodeRequestExactFieldNames(t *testing.T) {
	t.Parallel()
	body := benchAttestation
	if _, err := signer.DecodeRequest([]byte(body)); err != nil {
		t.Fatalf("the valid body is refused: %v", err)
	}
	for _, tc := range []struct{ name, path string }{
		{"type", "TYPE"},
		{"fork_info", "FORK_INFO"},
		{"fork", "fork_info.FORK"},
		{"previous_version", "fork_info.fork.PREVIOUS_VERSION"},
		{"epoch", "fork_info.fork.EPOCH"}, // the first "epoch"
		{"genesis_validators_root", "fork_info.GENESIS_VALIDATORS_ROOT"},
		{"attestation", "ATTESTATION"},
		{"slot", "attestation.SLOT"},
		{"beacon_block_root", "attestation.BEACON_BLOCK_ROOT"},
		{"source", "attestation.SOURCE"},
		{"target", "attestation.TARGET"},
	} {
		bad := strings.Replace(body, `"`+tc.name+`":`, `"`+strings.ToUpper(tc.name)+`":`, 1)
		_, err := signer.DecodeRequest([]byte(bad))
		if !errors.Is(err, signer.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.path+": field names are case-sensitive, want \""+tc.name+"\"") {
			t.Errorf("%s: error %v, want ErrInvalidRequest naming %s", tc.name, err, tc.path)
		}
	}
	// Only one letter changed, and a Unicode fold encoding/json also honours (ſ = long s).
	for _, bad := range []string{
		strings.Replace(body, `"target":`, `"Target":`, 1),
		strings.Replace(body, `"slot":`, `"ſlot":`, 1),
	} {
		if _, err := signer.DecodeRequest([]byte(bad)); !errors.Is(err, signer.ErrInvalidRequest) || !strings.Contains(err.Error(), "case-sensitive") {
			t.Errorf("error %v, want a case-sensitivity refusal", err)
		}
	}
}

func TestDecodeRequestDuplicateFields(t *testing.T) {
	t.Parallel()
	body := benchAttestation
	for _, tc := range []struct{ old, new, path string }{
		// A second target with another epoch: which one would a proxy check?
		{`"target":{`, `"target":{"epoch":"1","root":"0x` + strings.Repeat("00", 32) + `"},"target":{`, "attestation.target"},
		{`"type":"ATTESTATION"`, `"type":"ATTESTATION","type":"BLOCK"`, "type"},
		{`"epoch":"9"`, `"epoch":"9","epoch":"8"`, "attestation.source.epoch"},
		{`"type":`, `"x-unknown":1,"x-unknown":2,"type":`, "x-unknown"},
	} {
		bad := strings.Replace(body, tc.old, tc.new, 1)
		if bad == body {
			t.Fatalf("test edit %q did not apply", tc.old)
		}
		_, err := signer.DecodeRequest([]byte(bad))
		if !errors.Is(err, signer.ErrInvalidRequest) || !strings.Contains(err.Error(), tc.path+": duplicate field name") {
			t.Errorf("%s: error %v, want ErrInvalidRequest naming the duplicate %s", tc.path, err, tc.path)
		}
	}
	// Unknown fields stay ignored (DESIGN §2), whatever their case.
	extra := strings.Replace(body, `"type":`, `"Extra":{"Whatever":1},"type":`, 1)
	if _, err := signer.DecodeRequest([]byte(extra)); err != nil {
		t.Fatalf("an unknown field is refused: %v", err)
	}
}

package keystore

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// EIP-2335 keystores: a repeated field or a case variant of a known field is malformed (before,
// encoding/json took "CRYPTO" for "crypto" and the last of two "cipher"s; another tool reading
// the same file could decrypt other bytes or refuse it).
func TestParseKeystoreExactFieldNames(t *testing.T) {
	base := encryptT(t, 1, "pw", KDFParams{Function: KDFPBKDF2, C: 16})
	if _, err := ParseKeystore(base); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		edit       func([]byte) []byte
		field, why string
	}{
		{"case variant at the top", replace(`"crypto":`, `"Crypto":`), "Crypto", `field names are case-sensitive, want "crypto"`},
		{"case variant in kdf params", replace(`"salt":`, `"SALT":`), "crypto.kdf.params.SALT", `want "salt"`},
		{"case variant of the cipher iv", replace(`"iv":`, `"IV":`), "crypto.cipher.params.IV", `want "iv"`},
		{"duplicate message", replace(`"message": "`, `"message": "00", "message": "`), "crypto.checksum.message", "duplicate field name"},
		{"duplicate pubkey", replace(`"pubkey":`, `"pubkey": "", "pubkey":`), "pubkey", "duplicate field name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.edit(base)
			if bytes.Equal(data, base) {
				t.Fatalf("edit did not apply to %s", base)
			}
			_, err := ParseKeystore(data)
			var me *MalformedError
			if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) || me.Field != tc.field || !strings.Contains(me.Reason, tc.why) {
				t.Fatalf("error %v, want malformed %s: %s", err, tc.field, tc.why)
			}
		})
	}
}

func replace(old, new string) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
}

package vault

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
)

func kv2Body(field, value string) []byte {
	return fmt.Appendf(nil, `{"request_id":"x","data":{"data":{%q:%s},"metadata":{"version":1}},"warnings":null}`, field, value)
}

func TestVaultSecretKey(t *testing.T) {
	sk := interopKey(t, 0)
	h := secretHex(sk)
	good := [][]byte{
		kv2Body("value", `"0x`+h+`"`),
		kv2Body("value", `"`+strings.ToUpper(h)+`"`),
		kv2Body("value", `" 0X`+h+` \r\n"`),
	}
	for i, body := range good {
		got, err := vaultSecretKey(body, "value", true)
		if err != nil || got.PublicKey() != sk.PublicKey() {
			t.Fatalf("good %d: %v", i, err)
		}
	}
	// KV v1 shape, accepted only outside the KV v2 store.
	v1 := fmt.Appendf(nil, `{"data":{"privkey":"0x%s"}}`, h)
	if _, err := vaultSecretKey(v1, "privkey", false); err != nil {
		t.Fatalf("kv v1: %v", err)
	}
	if _, err := vaultSecretKey(v1, "privkey", true); err == nil {
		t.Fatal("kv v1 shape accepted as kv v2")
	}
	bad := []struct {
		body []byte
		want string
		is   error
	}{
		{[]byte("not json"), "not JSON", keystore.ErrMalformed},
		{[]byte(`{"data":null}`), "data: missing", keystore.ErrMalformed},
		{kv2Body("other", `"0x`+h+`"`), "value: missing from the secret", keystore.ErrMalformed},
		{kv2Body("value", `12`), "value: not a string", keystore.ErrMalformed},
		{kv2Body("value", `"0x`+h[:62]+`zz"`), "value: not hex", keystore.ErrMalformed},
		{kv2Body("value", `"0x`+h[:62]+`"`), "has 62 hex digits, want 64", keystore.ErrMalformed},
		{kv2Body("value", `"0x`+h+`00"`), "has 66 hex digits", keystore.ErrMalformed},
		{kv2Body("value", `"0x`+strings.Repeat("ff", 32)+`"`), "not below the curve order", keystore.ErrInvalidKey},
		{kv2Body("value", `"0x`+strings.Repeat("00", 32)+`"`), "zero", keystore.ErrInvalidKey},
		{kv2Body("value", `"\u0030x`+h+`"`), "not hex", keystore.ErrMalformed},
	}
	for i, b := range bad {
		_, err := vaultSecretKey(b.body, "value", true)
		if err == nil || !strings.Contains(err.Error(), b.want) || !errors.Is(err, b.is) {
			t.Errorf("bad %d: %v, want %q", i, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), h[:16]) {
			t.Errorf("bad %d: error quotes the secret: %v", i, err)
		}
	}
}

func TestVaultDeletedVersion(t *testing.T) {
	if !vaultDeletedVersion([]byte(`{"data":{"data":null,"metadata":{"deletion_time":"2024-01-01T00:00:00Z","destroyed":false}}}`)) {
		t.Fatal("soft-deleted version not recognized")
	}
	if !vaultDeletedVersion([]byte(`{"data":{"data":null,"metadata":{"deletion_time":"","destroyed":true}}}`)) {
		t.Fatal("destroyed version not recognized")
	}
	for _, b := range []string{`{"errors":[]}`, ``, `{"data":{"data":null,"metadata":{"deletion_time":""}}}`} {
		if vaultDeletedVersion([]byte(b)) {
			t.Fatalf("%q taken for a deleted version", b)
		}
	}
}

package keystore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Unit tests of the Vault source that need no Vault server. The tests against a real (in-process)
// Vault live in the nested module keystore/vaulttest.

func TestVaultConfigValidate(t *testing.T) {
	ok := VaultConfig{Address: "https://vault.example:8200", Token: "hvs.tok"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	d := ok.withDefaults()
	if d.Mount != "secret" || d.Prefix != "vigil/validators" || d.Field != "value" || d.AppRoleMount != "approle" || d.Timeout != 10*time.Second || d.Workers != 16 {
		t.Fatalf("defaults: %+v", d)
	}
	if d := (VaultConfig{Mount: "/kv/", Prefix: "/a/b/"}).withDefaults(); d.Mount != "kv" || d.Prefix != "a/b" {
		t.Fatalf("slashes not trimmed: %+v", d)
	}
	bad := []struct {
		cfg  VaultConfig
		want string
	}{
		{VaultConfig{Token: "t"}, "address is required"},
		{VaultConfig{Address: "vault:8200", Token: "t"}, "want https://"},
		{VaultConfig{Address: "ftp://vault", Token: "t"}, "want https://"},
		{VaultConfig{Address: "https://u:p@vault", Token: "t"}, "want https://"},
		{VaultConfig{Address: "https://vault/v1", Token: "t"}, "must not have a path"},
		{VaultConfig{Address: "https://vault", Token: "t", Mount: "a//b"}, "mount"},
		{VaultConfig{Address: "https://vault", Token: "t", Prefix: "a/../b"}, "prefix"},
		{VaultConfig{Address: "https://vault"}, "a token or AppRole"},
		{VaultConfig{Address: "https://vault", Token: "t", RoleID: "r", SecretID: "s"}, "mutually exclusive"},
		{VaultConfig{Address: "https://vault", RoleID: "r"}, "both a role ID and a secret ID"},
		{VaultConfig{Address: "https://vault", Token: "hvs.secret-token\n"}, "white space"},
		{VaultConfig{Address: "http://vault", Token: "t", CAFile: "ca.pem"}, "not https://"},
		{VaultConfig{Address: "https://vault", Token: "t", Timeout: -time.Second}, "timeout"},
		{VaultConfig{Address: "https://vault", Token: "t", Workers: -1}, "workers"},
	}
	for _, b := range bad {
		err := b.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v, want %q", b.cfg, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
	if _, err := OpenVault(context.Background(), VaultConfig{Address: "https://vault"}); err == nil {
		t.Fatal("OpenVault accepted an invalid config")
	}
}

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
		{[]byte("not json"), "not JSON", ErrMalformed},
		{[]byte(`{"data":null}`), "data: missing", ErrMalformed},
		{kv2Body("other", `"0x`+h+`"`), "value: missing from the secret", ErrMalformed},
		{kv2Body("value", `12`), "value: not a string", ErrMalformed},
		{kv2Body("value", `"0x`+h[:62]+`zz"`), "value: not hex", ErrMalformed},
		{kv2Body("value", `"0x`+h[:62]+`"`), "has 62 hex digits, want 64", ErrMalformed},
		{kv2Body("value", `"0x`+h+`00"`), "has 66 hex digits", ErrMalformed},
		{kv2Body("value", `"0x`+strings.Repeat("ff", 32)+`"`), "not below the curve order", ErrInvalidKey},
		{kv2Body("value", `"0x`+strings.Repeat("00", 32)+`"`), "zero", ErrInvalidKey},
		{kv2Body("value", `"\u0030x`+h+`"`), "not hex", ErrMalformed},
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

func hashicorpDocT(t *testing.T, yaml string) keyConfigDoc {
	t.Helper()
	docs, err := parseKeyConfig([]byte(yaml))
	if err != nil || len(docs) != 1 || docs[0].err != nil {
		t.Fatalf("parse %q: %v %+v", yaml, err, docs)
	}
	return docs[0]
}

func TestParseHashicorpDoc(t *testing.T) {
	dir := t.TempDir()
	resolve := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	h, err := parseHashicorpDoc(hashicorpDocT(t, "type: hashicorp\nserverHost: vault.local\nkeyPath: /v1/secret/data/k1\ntoken: hvs.secret-token\n"), resolve)
	if err != nil {
		t.Fatal(err)
	}
	if h.address != "http://vault.local:8200" || h.keyName != "value" || h.timeout != 10*time.Second || h.tls != nil || h.keyPath != "/v1/secret/data/k1" {
		t.Fatalf("defaults: %+v", h)
	}
	h, err = parseHashicorpDoc(hashicorpDocT(t, "type: hashicorp\nserverHost: ::1\nserverPort: 8300\nkeyPath: /v1/kv/k\nkeyName: privkey\ntimeout: 2500\ntlsEnabled: true\nhttpProtocolVersion: HTTP_1_1\nauthMethod: token\ntoken: \"hvs.secret-token\"\n"), resolve)
	if err != nil {
		t.Fatal(err)
	}
	if h.address != "https://[::1]:8300" || h.keyName != "privkey" || h.timeout != 2500*time.Millisecond || h.tls == nil || h.tls.InsecureSkipVerify {
		t.Fatalf("fields: %+v", h)
	}

	fp := sha256.Sum256([]byte("cert"))
	var colon []string
	for _, b := range fp {
		colon = append(colon, fmt.Sprintf("%02X", b))
	}
	writeFile(t, filepath.Join(dir, "known"), []byte("# comment\nother:8200 "+strings.Repeat("00", 32)+"\nvault.local:8200 "+strings.Join(colon, ":")+"\n"))
	h, err = parseHashicorpDoc(hashicorpDocT(t, "type: hashicorp\nserverHost: vault.local\nkeyPath: /v1/secret/data/k1\ntoken: x\ntlsEnabled: true\ntlsKnownServersPath: known\n"), resolve)
	if err != nil {
		t.Fatal(err)
	}
	if h.tls == nil || h.tls.VerifyPeerCertificate == nil {
		t.Fatal("known servers not applied")
	}
	if err := h.tls.VerifyPeerCertificate([][]byte{[]byte("cert")}, nil); err != nil {
		t.Fatalf("pinned certificate refused: %v", err)
	}
	if err := h.tls.VerifyPeerCertificate([][]byte{[]byte("other")}, nil); err == nil || !strings.Contains(err.Error(), "not in the known-servers file") {
		t.Fatalf("unpinned certificate: %v", err)
	}

	base := "type: hashicorp\nserverHost: vault.local\nkeyPath: /v1/secret/data/k1\ntoken: hvs.secret-token\n"
	bad := []struct {
		yaml string
		want string
		is   error
	}{
		{"type: hashicorp\nkeyPath: /v1/a\ntoken: hvs.secret-token\n", "serverHost: missing", ErrMalformed},
		{"type: hashicorp\nserverHost: https://vault\nkeyPath: /v1/a\ntoken: hvs.secret-token\n", "serverHost: must be a host name", ErrMalformed},
		{"type: hashicorp\nserverHost: vault\ntoken: hvs.secret-token\n", "keyPath: missing", ErrMalformed},
		{"type: hashicorp\nserverHost: vault\nkeyPath: secret/data/a\ntoken: hvs.secret-token\n", "keyPath: must be an absolute Vault API path", ErrMalformed},
		{"type: hashicorp\nserverHost: vault\nkeyPath: /v1/a/../../sys\ntoken: hvs.secret-token\n", "keyPath: must be", ErrMalformed},
		{"type: hashicorp\nserverHost: vault\nkeyPath: /v1/a\n", "token: missing", ErrMalformed},
		{base + "serverPort: 70000\n", "serverPort", ErrMalformed},
		{base + "serverPort: http\n", "serverPort", ErrMalformed},
		{base + "timeout: -5\n", "timeout", ErrMalformed},
		{base + "tlsEnabled: yes please\n", "tlsEnabled: must be true or false", ErrMalformed},
		{base + "tlsKnownServersPath: known\n", "tlsEnabled: is false but TLS settings", ErrMalformed},
		{base + "tlsEnabled: true\ntlsKnownServersPath: missing-file\n", "tlsKnownServersPath", nil},
		{base + "tlsEnabled: true\ntlsKnownServersPath: known\ntlsCaFile: ca.pem\n", "cannot be combined", ErrMalformed},
		{base + "tlsEnabled: true\ntlsCaFile: known\n", "no PEM certificate", nil},
		{"type: hashicorp\nserverHost: nowhere\nkeyPath: /v1/a\ntoken: x\ntlsEnabled: true\ntlsKnownServersPath: known\n", "lists no fingerprint for nowhere:8200", ErrMalformed},
		{base + "httpProtocolVersion: HTTP_3\n", "httpProtocolVersion", ErrMalformed},
		{base + "authMethod: KUBERNETES\nkubernetesRole: r\n", "KUBERNETES is not supported", ErrUnsupportedKeyConfig},
		{base + "authMethod: LDAP\n", "authMethod: must be TOKEN", ErrMalformed},
	}
	for _, b := range bad {
		_, err := parseHashicorpDoc(hashicorpDocT(t, b.yaml), resolve)
		if err == nil || !strings.Contains(err.Error(), b.want) || (b.is != nil && !errors.Is(err, b.is)) {
			t.Errorf("%q: %v, want %q", b.yaml, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
	writeFile(t, filepath.Join(dir, "known-bad"), []byte("vault.local:8200\n"))
	if _, err := parseHashicorpDoc(hashicorpDocT(t, base+"tlsEnabled: true\ntlsKnownServersPath: known-bad\n"), resolve); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("malformed known-servers file: %v", err)
	}
}

// TestConfigSourceHashicorpUnreachable: a hashicorp document whose Vault does not answer is a
// LoadError wrapping ErrUnavailable that names the server and the path, not the token.
func TestConfigSourceHashicorpUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there any more
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "v.yaml"), fmt.Appendf(nil, "type: hashicorp\nserverHost: 127.0.0.1\nserverPort: %s\nkeyPath: /v1/secret/data/k1\ntoken: hvs.secret-token\n", port))
	res := loadConfig(t, dir)
	if len(res.Keys) != 0 || len(res.Errors) != 1 {
		t.Fatalf("keys %d errors %v", len(res.Keys), res.Errors)
	}
	e := res.Errors[0]
	if !errors.Is(e, ErrUnavailable) || !strings.Contains(e.Error(), "vault at http://127.0.0.1:"+port+": GET /v1/secret/data/k1: unreachable") || strings.Contains(e.Error(), "secret-token") {
		t.Fatalf("error %v", e)
	}
}

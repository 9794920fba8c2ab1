package vault

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

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
		{"type: hashicorp\nkeyPath: /v1/a\ntoken: hvs.secret-token\n", "serverHost: missing", keystore.ErrMalformed},
		{"type: hashicorp\nserverHost: https://vault\nkeyPath: /v1/a\ntoken: hvs.secret-token\n", "serverHost: must be a host name", keystore.ErrMalformed},
		{"type: hashicorp\nserverHost: vault\ntoken: hvs.secret-token\n", "keyPath: missing", keystore.ErrMalformed},
		{"type: hashicorp\nserverHost: vault\nkeyPath: secret/data/a\ntoken: hvs.secret-token\n", "keyPath: must be an absolute Vault API path", keystore.ErrMalformed},
		{"type: hashicorp\nserverHost: vault\nkeyPath: /v1/a/../../sys\ntoken: hvs.secret-token\n", "keyPath: must be", keystore.ErrMalformed},
		{"type: hashicorp\nserverHost: vault\nkeyPath: /v1/a\n", "token: missing", keystore.ErrMalformed},
		{base + "serverPort: 70000\n", "serverPort", keystore.ErrMalformed},
		{base + "serverPort: http\n", "serverPort", keystore.ErrMalformed},
		{base + "timeout: -5\n", "timeout", keystore.ErrMalformed},
		{base + "tlsEnabled: yes please\n", "tlsEnabled: must be true or false", keystore.ErrMalformed},
		{base + "tlsKnownServersPath: known\n", "tlsEnabled: is false but TLS settings", keystore.ErrMalformed},
		{base + "tlsEnabled: true\ntlsKnownServersPath: missing-file\n", "tlsKnownServersPath", nil},
		{base + "tlsEnabled: true\ntlsKnownServersPath: known\ntlsCaFile: ca.pem\n", "cannot be combined", keystore.ErrMalformed},
		{base + "tlsEnabled: true\ntlsCaFile: known\n", "no PEM certificate", nil},
		{"type: hashicorp\nserverHost: nowhere\nkeyPath: /v1/a\ntoken: x\ntlsEnabled: true\ntlsKnownServersPath: known\n", "lists no fingerprint for nowhere:8200", keystore.ErrMalformed},
		{base + "httpProtocolVersion: HTTP_3\n", "httpProtocolVersion", keystore.ErrMalformed},
		{base + "authMethod: KUBERNETES\nkubernetesRole: r\n", "KUBERNETES is not supported", keystore.ErrUnsupportedKeyConfig},
		{base + "authMethod: LDAP\n", "authMethod: must be TOKEN", keystore.ErrMalformed},
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
	if !errors.Is(e, keystore.ErrUnavailable) || !strings.Contains(e.Error(), "vault at http://127.0.0.1:"+port+": GET /v1/secret/data/k1: unreachable") || strings.Contains(e.Error(), "secret-token") {
		t.Fatalf("error %v", e)
	}
}

// TestConfigSourceHashicorpMalformed: a hashicorp document with a missing field is a LoadError
// naming the field (ErrMalformed), and the messages about types are those of a build with the
// hashicorp loader registered.
func TestConfigSourceHashicorpMalformed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), []byte("type: hashicorp\nkeyType: BLS\nkeyPath: /v1/secret/data/k\nkeyName: value\nserverHost: vault\n"))
	writeFile(t, filepath.Join(dir, "d.yaml"), []byte("type: aws-secret\n"))
	writeFile(t, filepath.Join(dir, "e.yaml"), []byte("serverHost: vault\n"))
	writeFile(t, filepath.Join(dir, "f.yaml"), []byte("type: HashiCorp\nserverHost: vault\nkeyPath: /v1/a\ntoken: [a, b]\n"))
	res := loadConfig(t, dir)
	expect := []struct {
		file string
		is   error
		text string
	}{
		{"c.yaml", keystore.ErrMalformed, "token: missing"},
		{"d.yaml", keystore.ErrUnsupportedKeyConfig, `unsupported key config type "aws-secret" (supported: file-raw, file-keystore, hashicorp)`},
		{"e.yaml", keystore.ErrMalformed, "type: missing (want file-raw, file-keystore or hashicorp)"},
		{"f.yaml", keystore.ErrMalformed, "token: must be a single value"},
	}
	if len(res.Keys) != 0 || len(res.Errors) != len(expect) {
		t.Fatalf("keys %d errors %v", len(res.Keys), res.Errors)
	}
	for i, x := range expect {
		e := res.Errors[i]
		if e.Item != filepath.Join(dir, x.file) || !errors.Is(e, x.is) || !strings.Contains(e.Error(), x.text) {
			t.Errorf("%s: %v, want %q", x.file, e, x.text)
		}
	}
}

package clients

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `clients:
  - name: vc1
    listen: 127.0.0.1:9101
    token_file: vc1.token
    keymanager_url: http://127.0.0.1:5062
    signer_url: http://127.0.0.1:9101
  - name: vc2
    role: standby
    priority: 1
    tls_names: [vc2.example, spiffe://vigil/vc2]
`

func TestParseAndIdentify(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vc1.token", "s3cret-1\n")
	s, err := Parse([]byte(good), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Configured() || len(s.Clients()) != 2 {
		t.Fatalf("clients %v", s.Clients())
	}
	vc1, _ := s.Get("vc1")
	if vc1.Role != Active || !vc1.HasToken() {
		t.Errorf("vc1 = %+v", vc1)
	}
	if n, ok := s.ByToken("s3cret-1"); !ok || n != "vc1" {
		t.Errorf("ByToken = %q %v", n, ok)
	}
	if _, ok := s.ByToken("s3cret-2"); ok {
		t.Error("a wrong token names a client")
	}
	u, _ := url.Parse("spiffe://vigil/vc2")
	for _, c := range []*x509.Certificate{
		{Subject: pkix.Name{CommonName: "vc2.example"}},
		{DNSNames: []string{"vc2.example"}},
		{URIs: []*url.URL{u}},
	} {
		if n, ok := s.ByCertificate(c); !ok || n != "vc2" {
			t.Errorf("ByCertificate(%v) = %q %v", c.Subject, n, ok)
		}
	}
	if _, ok := s.ByCertificate(&x509.Certificate{Subject: pkix.Name{CommonName: "mallory"}}); ok {
		t.Error("an unknown certificate names a client")
	}
	// Names of two clients in one certificate: no one.
	s2, err := Parse([]byte(good+"  - name: vc3\n    tls_names: [vc3.example]\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.ByCertificate(&x509.Certificate{DNSNames: []string{"vc2.example", "vc3.example"}}); ok {
		t.Error("a certificate naming two clients was accepted")
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.token", "tok-xyzzy")
	write(t, dir, "b.token", "tok-xyzzy")
	write(t, dir, "empty.token", " \n")
	cases := map[string]string{
		"bad name":         "clients:\n  - name: 'a b'\n",
		"twice":            "clients:\n  - name: a\n  - name: a\n",
		"role":             "clients:\n  - name: a\n    role: boss\n",
		"listen":           "clients:\n  - name: a\n    listen: nope\n",
		"shared listen":    "clients:\n  - name: a\n    listen: 127.0.0.1:1\n  - name: b\n    listen: 127.0.0.1:1\n",
		"shared cert name": "clients:\n  - name: a\n    tls_names: [x]\n  - name: b\n    tls_names: [x]\n",
		"same token":       "clients:\n  - name: a\n    token_file: a.token\n  - name: b\n    token_file: b.token\n",
		"empty token":      "clients:\n  - name: a\n    token_file: empty.token\n",
		"missing token":    "clients:\n  - name: a\n    token_file: nope.token\n",
		"bad url":          "clients:\n  - name: a\n    keymanager_url: ftp://x\n",
		"unknown field":    "clients:\n  - name: a\n    colour: red\n",
	}
	for name, doc := range cases {
		if _, err := Parse([]byte(doc), dir); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "xyzzy") {
			t.Errorf("%s: the error shows a token: %v", name, err)
		}
	}
}

func TestRegistryReload(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vc1.token", "s3cret-1")
	p := write(t, dir, "clients.yaml", good)
	r, err := NewRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "clients.yaml", "clients:\n  - name: vc1\n  - name: vc1\n")
	if _, err := r.Reload(); err == nil || !r.Known("vc1") {
		t.Fatalf("a broken file replaced the set: %v", err)
	}
	write(t, dir, "clients.yaml", "clients:\n  - name: vc1\n    listen: 127.0.0.1:9999\n")
	restart, err := r.Reload()
	if err != nil || r.Known("vc2") || len(restart) == 0 {
		t.Fatalf("reload: %v %v known vc2 %v", restart, err, r.Known("vc2"))
	}
	if _, ok := r.ByToken("s3cret-1"); ok {
		t.Error("a token removed by the reload still names a client")
	}
}

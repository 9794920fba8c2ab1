package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/signingtest"
)

// testCA is a certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate (server when ip is set, else client) valid from notBefore.
func (ca *testCA) issue(t *testing.T, cn string, ip net.IP, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ip != nil {
		tmpl.IPAddresses, tmpl.ExtKeyUsage = []net.IP{ip}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	kder, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// freeAddr is a loopback address with a port from haFreePort (outside the ephemeral range).
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(haFreePort(t))
}

// signAs sends one RANDAO_REVEAL sign request for interop key k with client (TLS config,
// bearer token).
func signAs(t *testing.T, client *http.Client, url, token string, k, epoch uint64) (int, string, error) {
	t.Helper()
	f := signingtest.MainnetFork("FULU")
	body, _ := json.Marshal(signingtest.RandaoRequest(f, signingtest.NowEpoch()-phase0.Epoch(epoch)))
	req, _ := http.NewRequest(http.MethodPost, url+signPath(interopPub(t, k)), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Client identity on real listeners with real certificates: a client's own listener, its
// bearer token and its TLS client certificate name it; no credential, an unknown token or an
// unknown subject is 401; a certificate of another CA or an expired one fails the handshake.
func TestE2EClientIdentity(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "vigil test clients CA"), newCA(t, "someone else's CA")
	srvCert, srvKey := writePEM(t, dir, "server", ca.issue(t, "vigil", net.ParseIP("127.0.0.1"), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)))
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vc3.token"), []byte("vc3-secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vc1Addr := freeAddr(t)
	clientsFile := filepath.Join(dir, "clients.yaml")
	doc := fmt.Sprintf("clients:\n  - name: vc1\n    listen: %s\n  - name: vc2\n    tls_names: [vc2.example]\n  - name: vc3\n    token_file: vc3.token\n", vc1Addr)
	if err := os.WriteFile(clientsFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	v := start(t, append(writeKeystores(t, 0, 1, 2), "--clients-file", clientsFile, "--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-client-ca-file", caFile)...)
	if !strings.HasPrefix(v.URL, "https://") {
		t.Fatalf("URL %s: want https", v.URL)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	// The client presents its certificate whatever CAs the server names (as curl --cert does),
	// not only one the server says it accepts.
	clientWith := func(certs ...tls.Certificate) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if len(certs) > 0 {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	now := time.Now()
	good := ca.issue(t, "vc2.example", nil, now.Add(-time.Hour), now.Add(time.Hour))
	cases := []struct {
		name      string
		client    *http.Client
		url       string
		token     string
		key       uint64 // vc3 signs with key 0, vc2 with key 1, vc1 with key 2: each adopts its own
		status    int
		handshake bool // the TLS handshake must fail
	}{
		{"no credential", clientWith(), v.URL, "", 0, http.StatusUnauthorized, false},
		{"bearer token", clientWith(), v.URL, "vc3-secret-token", 0, http.StatusOK, false},
		{"unknown token", clientWith(), v.URL, "guess", 0, http.StatusUnauthorized, false},
		{"client certificate", clientWith(good), v.URL, "", 1, http.StatusOK, false},
		{"unknown subject", clientWith(ca.issue(t, "mallory", nil, now.Add(-time.Hour), now.Add(time.Hour))), v.URL, "", 1, http.StatusUnauthorized, false},
		{"certificate and another client's token", clientWith(good), v.URL, "vc3-secret-token", 1, http.StatusUnauthorized, false},
		{"another CA", clientWith(other.issue(t, "vc2.example", nil, now.Add(-time.Hour), now.Add(time.Hour))), v.URL, "", 1, 0, true},
		{"expired certificate", clientWith(ca.issue(t, "vc2.example", nil, now.Add(-2*time.Hour), now.Add(-time.Hour))), v.URL, "", 1, 0, true},
		{"own listener", clientWith(), "https://" + vc1Addr, "", 2, http.StatusOK, false},
		{"own listener, another client's token", clientWith(), "https://" + vc1Addr, "vc3-secret-token", 2, http.StatusUnauthorized, false},
	}
	for i, c := range cases {
		status, body, err := signAs(t, c.client, c.url, c.token, c.key, uint64(1+i))
		switch {
		case c.handshake:
			if err == nil {
				t.Errorf("%s: the handshake succeeded (%d %s)", c.name, status, body)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case status != c.status:
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		case status == http.StatusUnauthorized && (strings.Contains(body, "vc1") || strings.Contains(body, "vc2") || strings.Contains(body, "vc3")):
			t.Errorf("%s: the refusal names a client: %s", c.name, body)
		}
	}
	v.Stderr.waitFor(t, "sign request refused: unidentified client", 10*time.Second)

	// Assignment by observation: each key belongs to the client that signed it first; another
	// client is refused (403, naming no client), and a client lists only its own and
	// unassigned keys.
	if status, body, err := signAs(t, clientWith(good), v.URL, "", 0, 50); err != nil || status != http.StatusForbidden ||
		!strings.Contains(body, "assigned to another validator client") || strings.Contains(body, "vc3") {
		t.Errorf("vc2 signing vc3's key: %d %s %v, want 403", status, body, err)
	}
	if status, _, err := signAs(t, clientWith(), v.URL, "vc3-secret-token", 0, 51); err != nil || status != http.StatusOK {
		t.Errorf("vc3 signing its own key again: %d %v", status, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+vc1Addr+"/api/v1/eth2/publicKeys", nil)
	resp, err := clientWith().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	_ = json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if len(listed) != 1 || listed[0] != interopPub(t, 2) {
		t.Errorf("vc1 lists %v, want only its own key %s", listed, interopPub(t, 2))
	}
	v.Stderr.waitFor(t, "key adopted by the validator client that signs for it", 10*time.Second)

	// A manual failover: the operator moves vc3's key to vc2; vc3 is refused from the next
	// refresh on, vc2 signs.
	out, err := exec.Command(vigilBin, "failover", "assign", "--client", "vc2", "--pubkeys", interopPub(t, 0), "--data-dir", v.DataDir,
		"--clients-file", clientsFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "assigned 1 keys to vc2") {
		t.Fatalf("vigil failover assign: %v\n%s", err, out)
	}
	v.Stderr.waitFor(t, "key assignments changed in the database", 20*time.Second)
	if status, body, err := signAs(t, clientWith(), v.URL, "vc3-secret-token", 0, 52); err != nil || status != http.StatusForbidden {
		t.Errorf("vc3 after its key moved: %d %s %v, want 403", status, body, err)
	}
	if status, body, err := signAs(t, clientWith(good), v.URL, "", 0, 53); err != nil || status != http.StatusOK {
		t.Errorf("vc2 after the key moved to it: %d %s %v", status, body, err)
	}
	st, err := exec.Command(vigilBin, "failover", "status", "--data-dir", v.DataDir, "--clients-file", clientsFile).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "3 keys assigned") {
		t.Errorf("vigil failover status: %v\n%s", err, st)
	}
	for _, args := range [][]string{{"fence", "--client", "vc1", "--reason", "maintenance"}, {"status"}, {"unfence", "--client", "vc1"}, {"history"}} {
		out, err := exec.Command(vigilBin, append(append([]string{"failover"}, args...), "--data-dir", v.DataDir, "--clients-file", clientsFile)...).CombinedOutput()
		if err != nil {
			t.Fatalf("vigil failover %v: %v\n%s", args, err, out)
		}
		switch args[0] {
		case "status":
			if !strings.Contains(string(out), "FENCED (maintenance)") {
				t.Errorf("status after fence:\n%s", out)
			}
		case "history":
			if !strings.Contains(string(out), "unfence") || !strings.Contains(string(out), "fence ") {
				t.Errorf("history:\n%s", out)
			}
		}
	}
}

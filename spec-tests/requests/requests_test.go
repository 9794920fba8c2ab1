// Package requests replays real validator-client sign requests (Lodestar v1.5.1 on a minimal-preset
// dev chain, interop keys) through the signer and checks the computed signing root against the one
// Lodestar sent and the signature against the one the reference signer returned.
//
// VIGIL_SPEC_REQUESTS_DIR points at the directory of samples (default:
// shared/testdata/lodestar-v1.5.1-requests).
package requests_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
	"github.com/vigil-signer/vigil/signer"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

func samplesDir() string {
	if d := os.Getenv("VIGIL_SPEC_REQUESTS_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "shared", "testdata", "lodestar-v1.5.1-requests")
}

type sample struct {
	Request struct {
		Path string `json:"path"`
	} `json:"request"`
	Index    uint64          `json:"interop_validator_index"`
	Body     json.RawMessage `json:"body"`
	Response struct {
		Status int `json:"status"`
		Body   struct {
			Signature string `json:"signature"`
		} `json:"body"`
	} `json:"response"`
}

func TestLodestarRequests(t *testing.T) {
	dir := samplesDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	net, err := signer.LoadNetwork("minimal")
	if err != nil {
		t.Fatal(err)
	}
	keys := keyset.New(nil)
	s, err := signer.New(signer.Config{Network: net, Keys: keys, Store: slashingtest.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	var loaded []keystore.Key
	cases := 0
	seenTypes := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var smp sample
		if err := json.Unmarshal(data, &smp); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.HasPrefix(smp.Request.Path, "/api/v1/eth2/sign/") || smp.Response.Status != 200 {
			continue // not a sign request sample (e.g. keymanager samples)
		}
		cases++
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			sk, err := keystore.InteropSecretKey(smp.Index)
			if err != nil {
				t.Fatal(err)
			}
			pub := strings.TrimPrefix(smp.Request.Path, "/api/v1/eth2/sign/")
			if sk.PublicKey().String() != strings.ToLower(pub) {
				t.Fatalf("interop key %d is %s, request path names %s", smp.Index, sk.PublicKey(), pub)
			}
			loaded = append(loaded, keystore.NewLocalKey(sk))
			keys.Replace(loaded)

			req, err := signer.DecodeRequest(smp.Body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			seenTypes[string(req.Type)] = true
			if req.SigningRoot == nil {
				t.Fatal("sample carries no signingRoot to compare against")
			}
			msg, err := net.Compute(req)
			if err != nil {
				t.Fatalf("compute: %v", err)
			}
			if msg.Root != *req.SigningRoot {
				t.Fatalf("signing root %#x, Lodestar sent %#x", msg.Root, *req.SigningRoot)
			}
			sig, err := s.Sign(context.Background(), pub, req)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			if sig.String() != smp.Response.Body.Signature {
				t.Fatalf("signature %s, reference signer returned %s", sig, smp.Response.Body.Signature)
			}
		})
	}
	if cases == 0 {
		t.Fatalf("no Lodestar request samples found in %s (set VIGIL_SPEC_REQUESTS_DIR)", dir)
	}
	t.Logf("Lodestar request samples: %d cases, %d request types", cases, len(seenTypes))
}

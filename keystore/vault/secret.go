package vault

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hashicorp/vault/api"
	"github.com/vigil-signer/vigil/keystore"
)

// errVaultVersionDeleted: the current version of a KV v2 secret is deleted or destroyed.
var errVaultVersionDeleted = errors.New("the current version of the secret is deleted or destroyed (undelete it, or delete the secret's metadata)")

// maxVaultResponse bounds the response to a secret read.
const maxVaultResponse = 1 << 20

// rawGet GETs an absolute API path ("/v1/…") into a buffer the caller zeroes. A 404 is returned
// as a status with the (non-secret) body; other error statuses as the client's error. token, when
// set, replaces the client's token for this request.
func (s *Store) rawGet(ctx context.Context, path, token string) ([]byte, int, error) {
	return vaultRawGet(ctx, s.client, path, token)
}

func vaultRawGet(ctx context.Context, c *api.Client, path, token string) ([]byte, int, error) {
	r := c.NewRequest(http.MethodGet, path)
	if token != "" {
		r.ClientToken = token
	}
	ctx, cancel := context.WithTimeout(ctx, c.ClientTimeout())
	defer cancel()
	//nolint:staticcheck // RawRequestWithContext is the only way to GET an arbitrary /v1 path raw.
	resp, err := c.RawRequestWithContext(ctx, r)
	if resp != nil {
		defer resp.Body.Close()
	}
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		b, rerr := readAllInto(make([]byte, 0, 512), io.LimitReader(resp.Body, maxVaultResponse))
		if rerr != nil {
			clear(b)
			return nil, 0, rerr
		}
		return b, http.StatusNotFound, nil
	}
	if err != nil {
		return nil, 0, err
	}
	b, err := readAllInto(make([]byte, 0, 1024), io.LimitReader(resp.Body, maxVaultResponse+1))
	if err == nil && len(b) > maxVaultResponse {
		err = fmt.Errorf("response larger than %d bytes", maxVaultResponse)
	}
	if err != nil {
		clear(b)
		return nil, 0, fmt.Errorf("reading the response: %w", err)
	}
	return b, resp.StatusCode, nil
}

// vaultDeletedVersion reports whether a KV v2 404 body describes a deleted or destroyed current
// version (rather than no secret at all).
func vaultDeletedVersion(body []byte) bool {
	var r struct {
		Data *struct {
			Metadata *struct {
				DeletionTime string `json:"deletion_time"`
				Destroyed    bool   `json:"destroyed"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &r) != nil || r.Data == nil || r.Data.Metadata == nil {
		return false
	}
	return r.Data.Metadata.DeletionTime != "" || r.Data.Metadata.Destroyed
}

// vaultSecretKey extracts field from a read response and builds the key. kv2Only: the secret is
// under data.data (KV v2); otherwise data.data (when it holds field) or data (KV v1). Every copy
// of the secret made here is a []byte that is zeroed; none is a string.
func vaultSecretKey(body []byte, field string, kv2Only bool) (*keystore.SecretKey, error) {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	defer func() { clear(env.Data) }()
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, &keystore.MalformedError{Reason: "the response is not JSON"}
	}
	outer := map[string]json.RawMessage{}
	defer zeroRaw(outer)
	if len(env.Data) == 0 || json.Unmarshal(env.Data, &outer) != nil {
		return nil, &keystore.MalformedError{Field: "data", Reason: "missing or not an object"}
	}
	inner := map[string]json.RawMessage{}
	defer zeroRaw(inner)
	v, ok := json.RawMessage(nil), false
	if d, has := outer["data"]; has && len(d) > 0 && d[0] == '{' && json.Unmarshal(d, &inner) == nil {
		v, ok = inner[field]
	}
	if !ok && !kv2Only {
		v, ok = outer[field]
	}
	if !ok {
		if kv2Only && (len(outer["data"]) == 0 || string(outer["data"]) == "null") {
			return nil, &keystore.MalformedError{Field: "data.data", Reason: "missing (is the mount KV version 2?)"}
		}
		return nil, &keystore.MalformedError{Field: field, Reason: "missing from the secret"}
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, &keystore.MalformedError{Field: field, Reason: "not a string"}
	}
	h := trimJSONSpace(v[1 : len(v)-1])
	if bytes.HasPrefix(h, []byte("0x")) || bytes.HasPrefix(h, []byte("0X")) {
		h = h[2:]
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return nil, &keystore.MalformedError{Field: field, Reason: "not hex"}
		}
	}
	if len(h) != 64 {
		return nil, &keystore.MalformedError{Field: field, Reason: fmt.Sprintf("has %d hex digits, want 64 (0x followed by 32 bytes)", len(h))}
	}
	var b [32]byte
	defer clear(b[:])
	if _, err := hex.Decode(b[:], h); err != nil {
		return nil, &keystore.MalformedError{Field: field, Reason: "not hex"}
	}
	sk, err := keystore.NewSecretKey(b[:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return sk, nil
}

// trimJSONSpace trims white space, written as is or as the JSON escapes \n, \r and \t, from both
// ends of the inside of a JSON string (a key file stored with its trailing newline).
func trimJSONSpace(b []byte) []byte {
	for {
		n := len(b)
		b = bytes.TrimSpace(b)
		for _, esc := range []string{`\n`, `\r`, `\t`} {
			b = bytes.TrimPrefix(b, []byte(esc))
			if bytes.HasSuffix(b, []byte(esc)) && !bytes.HasSuffix(b, []byte(`\`+esc)) {
				b = b[:len(b)-len(esc)]
			}
		}
		if len(b) == n {
			return b
		}
	}
}

func zeroRaw(m map[string]json.RawMessage) {
	for _, v := range m {
		clear(v)
	}
}

// readAllInto is io.ReadAll that zeroes every buffer it outgrows, so that no copy of a secret
// response is left behind in freed memory.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), 2*cap(b)+512)
			copy(nb, b)
			clear(b)
			b = nb
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

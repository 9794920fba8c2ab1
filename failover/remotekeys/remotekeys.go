// Package remotekeys drives a validator client's keymanager API for remote (Web3Signer) keys:
// list, import (with the URL by which that VC reaches Vigil) and delete — how validator-client
// failover stages keys on a standby VC and takes them off a failed one.
package remotekeys

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/vigil-signer/vigil/internal/jsonhttp"
)

// Client talks to one VC's keymanager API.
type Client struct {
	URL       string // the VC's keymanager base URL
	TokenFile string // its bearer token (read at every call: VCs rewrite it on restart)
	HTTP      *http.Client
}

// Key is one remote key a VC holds.
type Key struct {
	Pubkey   string `json:"pubkey"`
	URL      string `json:"url"`
	Readonly bool   `json:"readonly"`
}

// Result is the VC's answer for one key of an import or delete: imported, duplicate, deleted,
// not_found, not_active or error.
type Result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func (c *Client) do(ctx context.Context, method string, body, out any) error {
	header := http.Header{}
	if c.TokenFile != "" {
		tok, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("keymanager token: %w", err)
		}
		header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if err := jsonhttp.Do(ctx, hc, method, strings.TrimRight(c.URL, "/")+"/eth/v1/remotekeys", header, body, out); err != nil {
		return fmt.Errorf("keymanager %s /eth/v1/remotekeys: %w", method, err)
	}
	return nil
}

// List is GET /eth/v1/remotekeys.
func (c *Client) List(ctx context.Context) ([]Key, error) {
	var out struct {
		Data []Key `json:"data"`
	}
	err := c.do(ctx, http.MethodGet, nil, &out)
	return out.Data, err
}

// Import is POST /eth/v1/remotekeys of pubkeys, each to be signed at signerURL.
func (c *Client) Import(ctx context.Context, pubkeys []string, signerURL string) ([]Result, error) {
	type rk struct {
		Pubkey string `json:"pubkey"`
		URL    string `json:"url"`
	}
	keys := make([]rk, len(pubkeys))
	for i, p := range pubkeys {
		keys[i] = rk{p, signerURL}
	}
	var out struct {
		Data []Result `json:"data"`
	}
	if err := c.do(ctx, http.MethodPost, map[string]any{"remote_keys": keys}, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != len(pubkeys) {
		return out.Data, errors.New("keymanager: the import answer does not list every key")
	}
	return out.Data, nil
}

// Delete is DELETE /eth/v1/remotekeys of pubkeys.
func (c *Client) Delete(ctx context.Context, pubkeys []string) ([]Result, error) {
	var out struct {
		Data []Result `json:"data"`
	}
	if err := c.do(ctx, http.MethodDelete, map[string]any{"pubkeys": pubkeys}, &out); err != nil {
		return nil, err
	}
	if len(out.Data) != len(pubkeys) {
		return out.Data, errors.New("keymanager: the delete answer does not list every key")
	}
	return out.Data, nil
}

// Holds reports which of pubkeys the VC lists (lower-case hex compare).
func Holds(keys []Key, pubkeys []string) map[string]bool {
	have := map[string]bool{}
	for _, k := range keys {
		have[strings.ToLower(k.Pubkey)] = true
	}
	out := map[string]bool{}
	for _, p := range pubkeys {
		out[p] = have[strings.ToLower(p)]
	}
	return out
}

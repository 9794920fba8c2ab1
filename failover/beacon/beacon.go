// Package beacon is the little of the standard beacon-node API that validator-client failover
// reads: sync status and head (is the chain healthy?), validator index and status per key (only
// active validators are expected to attest) and liveness (did a validator attest in an epoch?).
// Several nodes may be given for redundancy; each call tries them in order and answers from the
// first that does.
//
// It is written on net/http rather than go-eth2-client's HTTP service: that service pulls in
// zerolog, OpenTelemetry and an SSE client, and does not speak the pre-standard
// `GET /eth/v1/validator/liveness?indices=…&epoch=E` that Lodestar 1.5.1 serves (the standard
// `POST /eth/v1/validator/liveness/{epoch}` is tried first).
package beacon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/internal/jsonhttp"
)

// Client reads from one or more beacon nodes.
type Client struct {
	urls []string
	http *http.Client
}

// New returns a client of the nodes at urls (tried in order).
func New(urls []string, timeout time.Duration) (*Client, error) {
	if len(urls) == 0 {
		return nil, errors.New("beacon: no beacon node URL")
	}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("beacon: %q is not an http(s) URL", u)
		}
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Client{urls: urls, http: &http.Client{Timeout: timeout}}, nil
}

func (c *Client) do(ctx context.Context, base, method, path string, body any, out any) error {
	return jsonhttp.Do(ctx, c.http, method, strings.TrimRight(base, "/")+path, nil, body, out)
}

// each runs fn against every node in order until one succeeds.
func (c *Client) each(ctx context.Context, fn func(base string) error) error {
	var errs []error
	for _, u := range c.urls {
		err := fn(u)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", hostOf(u), err))
	}
	return errors.Join(errs...)
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return "beacon node"
}

// Sync is a node's sync status.
type Sync struct {
	HeadSlot     phase0.Slot
	SyncDistance uint64
	IsSyncing    bool
}

type quoted uint64

func (q *quoted) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseUint(s, 10, 64)
	*q = quoted(v)
	return err
}

// Syncing reads GET /eth/v1/node/syncing.
func (c *Client) Syncing(ctx context.Context) (Sync, error) {
	var s Sync
	err := c.each(ctx, func(base string) error {
		var out struct {
			Data struct {
				HeadSlot     quoted `json:"head_slot"`
				SyncDistance quoted `json:"sync_distance"`
				IsSyncing    bool   `json:"is_syncing"`
			} `json:"data"`
		}
		if err := c.do(ctx, base, http.MethodGet, "/eth/v1/node/syncing", nil, &out); err != nil {
			return err
		}
		s = Sync{HeadSlot: phase0.Slot(out.Data.HeadSlot), SyncDistance: uint64(out.Data.SyncDistance), IsSyncing: out.Data.IsSyncing}
		return nil
	})
	return s, err
}

// Validator is one validator's index and status ("active_ongoing", "pending_queued", …).
type Validator struct {
	Index  phase0.ValidatorIndex
	Status string
}

// Active reports whether the validator is expected to attest.
func (v Validator) Active() bool { return strings.HasPrefix(v.Status, "active_") }

// Validators reads GET /eth/v1/beacon/states/head/validators for keys (at most 64 per call);
// keys the chain does not know are absent from the map.
func (c *Client) Validators(ctx context.Context, keys []phase0.BLSPubKey) (map[phase0.BLSPubKey]Validator, error) {
	out := map[phase0.BLSPubKey]Validator{}
	for i := 0; i < len(keys); i += 64 {
		chunk := keys[i:min(i+64, len(keys))]
		// Repeated id= parameters: every client splits those; Lodestar 1.5.1 does not split
		// the comma-separated form (it answers an empty list).
		q := url.Values{}
		for _, k := range chunk {
			q.Add("id", fmt.Sprintf("%#x", k[:]))
		}
		err := c.each(ctx, func(base string) error {
			var res struct {
				Data []struct {
					Index     quoted `json:"index"`
					Status    string `json:"status"`
					Validator struct {
						Pubkey string `json:"pubkey"`
					} `json:"validator"`
				} `json:"data"`
			}
			if err := c.do(ctx, base, http.MethodGet, "/eth/v1/beacon/states/head/validators?"+q.Encode(), nil, &res); err != nil {
				return err
			}
			for _, d := range res.Data {
				var pk phase0.BLSPubKey
				b, err := decodeHex(d.Validator.Pubkey)
				if err != nil || len(b) != len(pk) {
					return fmt.Errorf("bad pubkey %q in the validators answer", d.Validator.Pubkey)
				}
				copy(pk[:], b)
				out[pk] = Validator{Index: phase0.ValidatorIndex(d.Index), Status: d.Status}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Liveness reports, per index, whether the validator was seen attesting (or proposing) in
// epoch: POST /eth/v1/validator/liveness/{epoch}, falling back to the pre-standard GET that
// Lodestar 1.5.1 serves (current or previous epoch only).
func (c *Client) Liveness(ctx context.Context, epoch phase0.Epoch, indices []phase0.ValidatorIndex) (map[phase0.ValidatorIndex]bool, error) {
	out := map[phase0.ValidatorIndex]bool{}
	if len(indices) == 0 {
		return out, nil
	}
	strs := make([]string, len(indices))
	for i, x := range indices {
		strs[i] = strconv.FormatUint(uint64(x), 10)
	}
	err := c.each(ctx, func(base string) error {
		var res struct {
			Data []struct {
				Index  quoted `json:"index"`
				IsLive bool   `json:"is_live"`
			} `json:"data"`
		}
		err := c.do(ctx, base, http.MethodPost, fmt.Sprintf("/eth/v1/validator/liveness/%d", epoch), strs, &res)
		var st *jsonhttp.StatusError
		if errors.As(err, &st) && (st.Code == http.StatusNotFound || st.Code == http.StatusMethodNotAllowed) {
			q := url.Values{"epoch": {strconv.FormatUint(uint64(epoch), 10)}}
			for _, s := range strs {
				q.Add("indices", s)
			}
			err = c.do(ctx, base, http.MethodGet, "/eth/v1/validator/liveness?"+q.Encode(), nil, &res)
		}
		if err != nil {
			return err
		}
		for _, d := range res.Data {
			out[phase0.ValidatorIndex(d.Index)] = d.IsLive
		}
		return nil
	})
	return out, err
}

func decodeHex(s string) ([]byte, error) {
	s = strings.TrimPrefix(s, "0x")
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

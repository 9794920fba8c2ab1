// Package jsonhttp is the one JSON-over-HTTP call the failover packages make to other
// processes' APIs (beacon nodes, validator clients' keymanagers): encode a body, send it, and
// decode a 2xx answer, with a bounded read and a short error for any other status.
package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// MaxBody bounds the answer read (a validators list of a large chain fits).
const MaxBody = 32 << 20

// StatusError is an answer with a non-2xx status; Body is its first 200 bytes.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Body) }

// Do sends method url with body as JSON (nil: no body) and the extra header fields, and decodes
// a 2xx answer into out.
func Do(ctx context.Context, c *http.Client, method, url string, header http.Header, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		if len(b) > 200 {
			b = b[:200]
		}
		return &StatusError{Code: resp.StatusCode, Body: string(b)}
	}
	return json.Unmarshal(b, out)
}

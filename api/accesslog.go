package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigil-signer/vigil/signer"
)

// accessInfo is what a handler tells the access log about its request (the sign handler: the
// key and the decoded request). It never holds the body.
type accessInfo struct {
	key string
	req *signer.Request
}

type accessKey struct{}

// noteAccess records the key and decoded request of a sign request for the access log.
func noteAccess(r *http.Request, key string, req *signer.Request) {
	if a, ok := r.Context().Value(accessKey{}).(*accessInfo); ok {
		a.key, a.req = key, req
	}
}

// accessRecorder keeps the status code for the access log.
type accessRecorder struct {
	http.ResponseWriter
	status int
}

func (a *accessRecorder) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *accessRecorder) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (read/write deadlines).
func (a *accessRecorder) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// Unwrap lets http.ResponseController reach the connection through the metrics middleware: the
// keymanager extends its deadlines that way.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLog writes one line per request to log: method, path, remote address, user agent,
// status, latency and, for sign requests, the key, type, slot and epochs. Never the body.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &accessInfo{}
		rec := &accessRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), accessKey{}, info)))
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		ua := r.UserAgent()
		if len(ua) > 100 {
			ua = ua[:100]
		}
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("remote", r.RemoteAddr),
			slog.Int("status", status),
			slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
		)
		if info.key != "" {
			attrs = append(attrs, slog.String("key", info.key))
		}
		if info.req != nil {
			attrs = append(attrs, slog.String("type", string(info.req.Type)))
			sub := info.req.Subject()
			if sub.Slot != nil {
				attrs = append(attrs, slog.Uint64("slot", uint64(*sub.Slot)))
			}
			if sub.Epoch != nil {
				attrs = append(attrs, slog.Uint64("epoch", uint64(*sub.Epoch)))
			}
			if sub.SourceEpoch != nil {
				attrs = append(attrs, slog.Uint64("source_epoch", uint64(*sub.SourceEpoch)))
			}
		}
		if ua != "" {
			attrs = append(attrs, slog.String("user_agent", ua))
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

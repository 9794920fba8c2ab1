// Package api is Vigil's HTTP layer: the Web3Signer-compatible eth2 signing API, health
// endpoints and Prometheus metrics. It decodes into signer request types, calls the signer,
// encodes replies and maps the signer's error vocabulary to status codes in exactly one function
// (statusFor). It holds no signing logic of its own.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-signer/vigil/signer"
)

// DefaultMaxBodyBytes bounds a sign request body. The largest legitimate body is a phase0 or
// Altair full block: a maximal mainnet Altair BLOCK_V2 request (every list at its preset maximum,
// every number at 20 digits) is 405,474 bytes (cmd/vigil TestE2EHostAllowlistAndJSONOnly), so
// 1 MiB leaves a margin of about 2.6x (for pretty-printed JSON, say). Later forks sign only a
// block header.
const DefaultMaxBodyBytes = 1 << 20

// Signer is what the API needs from the signing core.
type Signer interface {
	Sign(ctx context.Context, identifier string, r *signer.Request) (signer.Signature, error)
	Keys() *signer.KeySet
	Health(ctx context.Context, timeout time.Duration) signer.Health
	// CheckLeader is nil when this instance may write (always, unless it is an HA standby).
	CheckLeader(ctx context.Context) error
	// Admitting is nil when a sign request arriving now would be admitted (a slot or a place
	// in the queue), else the ErrOverloaded it would get: checked before the body is read.
	Admitting() error
}

// Options configure the HTTP handler.
type Options struct {
	Signer       Signer
	Logger       *slog.Logger
	Metrics      *Metrics // nil: no HTTP metrics
	MaxBodyBytes int64    // zero: DefaultMaxBodyBytes
	// HealthTimeout bounds the slashing-database ping of /healthcheck and /readyz.
	HealthTimeout time.Duration

	// Keymanager API (keymanager.go): registered only when KeyManager is set.
	KeyManager             KeyManager
	KeyManagerToken        string        // bearer token; empty: every request is refused
	KeyManagerMaxBodyBytes int64         // zero: DefaultKeyManagerMaxBodyBytes
	KeyManagerTimeout      time.Duration // zero: DefaultKeyManagerTimeout

	// Hot reload (reload.go): POST/GET /reload, registered only when Reloader is set.
	Reloader      Reloader
	ReloadTimeout time.Duration // zero: DefaultReloadTimeout

	// HostAllowlist (hostcheck.go): requests with another Host get 403, except the probe routes.
	// nil: no Host check (cmd always sets one; --http-host-allowlist defaults to
	// DefaultHostAllowlist).
	HostAllowlist *HostAllowlist
	// BodyBudget (bodybudget.go) bounds the sign-request bytes buffered across all connections;
	// nil: a budget of DefaultMaxBufferedBytes for this handler.
	BodyBudget *BodyBudget
	// AccessLog (accesslog.go): one line per request when set; nil: no access log.
	AccessLog *slog.Logger
	// Clients (identity.go) names the validator client of each signing request; nil: everyone
	// is anonymous. AllowUnidentified serves requests that name no client once clients exist.
	Clients           ClientIdentifier
	AllowUnidentified bool
	// KeyVisible filters GET /api/v1/eth2/publicKeys per caller (nil: every key).
	KeyVisible func(signer.Caller, signer.PublicKey) bool
	// Failover (keymanager.go) serves GET /vigil/v1/failover/status and /history behind the
	// keymanager's bearer token; nil: not served.
	Failover FailoverReporter
}

type server struct {
	Options
	lastBudgetLog atomic.Int64 // unix nanos of the last "budget spent" log line (rate limit)
	lastShedLog   atomic.Int64 // unix nanos of the last "overloaded" log line (rate limit)
	shed          atomic.Int64 // overloaded refusals since that line
}

// Handler returns the router for the signing listener.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 2 * time.Second
	}
	if o.BodyBudget == nil {
		o.BodyBudget = NewBodyBudget(DefaultMaxBufferedBytes)
	}
	s := &server{Options: o}
	r := chi.NewRouter()
	// Metrics wrap the recoverer so that a 500 from a recovered panic is counted too.
	if o.Metrics != nil {
		r.Use(o.Metrics.middleware)
	}
	// The Host check comes before anything else a request can reach (counted by the metrics as
	// route "unmatched").
	r.Use(func(next http.Handler) http.Handler { return HostGuard(o.HostAllowlist, o.Logger, next) })
	r.Use(s.recoverer)
	if o.KeyManager != nil {
		r.Use(keyManagerJSONOnly)
	}
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.Post("/api/v1/eth2/sign/{identifier}", s.sign)
	r.Get("/api/v1/eth2/publicKeys", s.publicKeys)
	r.Get("/upcheck", s.upcheck)
	r.Get("/livez", s.upcheck)
	r.Get("/readyz", s.readyz)
	r.Get("/healthcheck", s.healthcheck)
	if o.KeyManager != nil {
		s.keyManagerRoutes(r) // keymanager.go
	}
	if o.Reloader != nil {
		r.Post("/reload", s.startReload) // reload.go
		r.Get("/reload", s.reloadStatus)
	}
	var h http.Handler = r
	if o.AccessLog != nil {
		h = accessLog(o.AccessLog, h)
	}
	return signingHandler{h}
}

// signingHandler marks the handler that Handler returns: it applies Options.HostAllowlist
// itself, so the listener must not add another Host check (see ChecksHost).
type signingHandler struct{ http.Handler }

// ChecksHost reports whether h is a signing-API handler made by Handler, which checks the Host
// header itself. The listener setup wraps every other handler it serves (the metrics listener)
// in the metrics allowlist, so no listener goes unchecked.
func ChecksHost(h http.Handler) bool {
	_, ok := h.(signingHandler)
	return ok
}

// keyManagerJSONOnly answers 415 to a keymanager POST or DELETE without Content-Type:
// application/json (the keymanager API's media type; requireJSON says why). It runs before the
// bearer-token check, like the Host check. GET, and POST /reload (no body), are not checked.
func keyManagerJSONOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPost || r.Method == http.MethodDelete) && strings.HasPrefix(r.URL.Path, "/eth/v1/") && !requireJSON(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusFor maps the signer's error vocabulary to an HTTP status. It is the only place that does.
func statusFor(err error) int {
	switch signer.OutcomeOf(err) {
	case signer.OutcomeSigned:
		return http.StatusOK
	case signer.OutcomeInvalid:
		return http.StatusBadRequest
	case signer.OutcomeUnknownKey:
		return http.StatusNotFound
	case signer.OutcomeForbidden:
		return http.StatusForbidden
	case signer.OutcomeRefused:
		return http.StatusPreconditionFailed
	case signer.OutcomeNotLeader, signer.OutcomeOverloaded, signer.OutcomeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func (s *server) sign(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "identifier")
	noteAccess(r, id, nil)
	if !requireJSON(w, r) {
		return
	}
	caller, why, known := s.identify(r)
	if !known {
		s.Logger.Info("sign request refused: unidentified client", "key", id, "remote", r.RemoteAddr, "why", why)
		refuseUnidentified(w, why)
		return
	}
	if err := s.Signer.Admitting(); err != nil {
		s.refuse(w, id, nil, err) // before reading the body: the excess costs next to nothing
		return
	}
	body, reserved, ok := s.readBody(w, r)
	if !ok {
		return
	}
	defer s.BodyBudget.Release(reserved)
	req, err := signer.DecodeRequest(body)
	noteAccess(r, id, req)
	if err == nil {
		var sig signer.Signature
		sig, err = s.Signer.Sign(signer.WithCaller(r.Context(), caller), id, req)
		if err == nil {
			if req.Type == signer.TypeDeposit {
				// Deposits are signed for the fork version they carry, whichever network this is.
				s.Logger.Info("deposit signed", "key", id, "genesis_fork_version", fmt.Sprintf("%#x", req.Deposit.GenesisForkVersion[:]))
			}
			writeSignature(w, r, sig)
			return
		}
	}
	s.refuse(w, id, req, err)
}

// refuse answers a sign request that failed with err, and logs it.
func (s *server) refuse(w http.ResponseWriter, id string, req *signer.Request, err error) {
	status := statusFor(err)
	msg := err.Error()
	switch {
	case status == http.StatusPreconditionFailed:
		s.Logger.Warn("signing refused by slashing protection", "key", id, "type", typeOf(req), "reason", msg)
	case signer.OutcomeOf(err) == signer.OutcomeNotLeader:
		// An HA standby (or a deposed leader): close the connection, so that a client behind a
		// VIP or a Kubernetes Service reconnects, and lands on the leader, instead of reusing
		// a keep-alive connection to this instance.
		w.Header().Set("Connection", "close")
		s.Logger.Debug("sign request refused: not the active instance", "key", id, "type", typeOf(req), "err", msg)
	case signer.OutcomeOf(err) == signer.OutcomeOverloaded:
		// Under overload this is most requests: one line a second, not one per request.
		w.Header().Set("Retry-After", "1")
		n := s.shed.Add(1)
		if now := time.Now().UnixNano(); now-s.lastShedLog.Load() > int64(time.Second) {
			s.lastShedLog.Store(now)
			s.shed.Add(-n)
			s.Logger.Warn("sign requests refused: overloaded (see --signing-concurrency, --max-queue-delay, --max-in-flight)",
				"refused_since_last_line", n, "last", msg)
		}
	case status >= 500:
		s.Logger.Error("sign request failed", "key", id, "type", typeOf(req), "status", status, "err", msg)
		if status == http.StatusInternalServerError {
			msg = "internal error" // details are in the log; never leak internals to callers
		}
	default:
		s.Logger.Info("sign request rejected", "key", id, "type", typeOf(req), "status", status, "err", msg)
	}
	writeError(w, status, msg)
}

// readBody reads a sign request body within the body limit and the process-wide body budget
// (bodybudget.go). It reserves the declared Content-Length (the limit when there is none)
// before reading a byte; the caller releases the reserved bytes when done with the request. On failure it has answered:
// 413 over the limit (before reading, when Content-Length says so), 503 when the budget is
// spent, 408 when the body does not arrive within the listener's body timeout, 400 otherwise.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, reserved int64, ok bool) {
	limit := s.MaxBodyBytes
	if r.ContentLength > limit {
		s.Logger.Info("sign request refused: body too large", "content_length", r.ContentLength, "limit", limit)
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
		return nil, 0, false
	}
	want := limit // no Content-Length (chunked): reserve the most it may be
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	if !s.BodyBudget.Reserve(want) {
		if now := time.Now().UnixNano(); now-s.lastBudgetLog.Load() > int64(time.Second) {
			s.lastBudgetLog.Store(now)
			s.Logger.Warn("sign request refused: request-body budget spent (--http-max-buffered-bytes)",
				"reserved", s.BodyBudget.Reserved(), "budget", s.BodyBudget.Max(), "wanted", want, "refused_total", s.BodyBudget.Rejected())
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded: too many request bytes in flight, try again")
		return nil, 0, false
	}
	// One allocation of exactly the declared size (plus one byte to see a body longer than
	// declared, which net/http refuses anyway); no growth by doubling.
	buf := make([]byte, 0, want+1)
	body, err := readAllInto(buf, http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body, want, true
	}
	s.BodyBudget.Release(want)
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooBig):
		s.Logger.Info("sign request refused: body too large", "limit", tooBig.Limit)
		writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds "+strconv.FormatInt(tooBig.Limit, 10)+" bytes")
	case errors.As(err, &netErr) && netErr.Timeout():
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, "request body not received in time")
	default:
		writeError(w, http.StatusBadRequest, "cannot read request body: "+err.Error())
	}
	return nil, 0, false
}

// readAllInto reads rd to EOF into buf's spare capacity, growing only if the body turns out
// longer than buf's capacity (then MaxBytesReader stops it at the limit).
func readAllInto(buf []byte, rd io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func typeOf(r *signer.Request) string {
	if r == nil {
		return ""
	}
	return string(r.Type)
}

// wantsJSON applies Web3Signer's negotiation: JSON if any Accept entry is application/json or
// */*; otherwise (including no Accept header) text/plain.
func wantsJSON(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, _, _ := strings.Cut(part, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if mt == "application/json" || mt == "*/*" {
				return true
			}
		}
	}
	return false
}

func writeSignature(w http.ResponseWriter, r *http.Request, sig signer.Signature) {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"signature": sig.String()})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, sig.String())
}

func (s *server) publicKeys(w http.ResponseWriter, r *http.Request) {
	caller, why, known := s.identify(r)
	if !known {
		refuseUnidentified(w, why)
		return
	}
	keys := s.Signer.Keys().PublicKeys()
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		// A client sees its own keys and unassigned ones: a restarted VC that fetches its keys
		// from the signer gets none that were moved away from it.
		if s.KeyVisible == nil || s.KeyVisible(caller, k) {
			out = append(out, k.String())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) upcheck(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "OK")
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	h := s.Signer.Health(r.Context(), s.HealthTimeout)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.Store != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready: "+publicText(h.Store.Error()))
		return
	}
	// An HA pair: only the leader is ready, so load balancers route signing to it alone.
	if h.Leader != nil && h.Leader.Role != "leader" {
		w.WriteHeader(http.StatusServiceUnavailable)
		msg := "not ready: " + h.Leader.Role
		if err := s.Signer.CheckLeader(r.Context()); err != nil {
			msg = "not ready: " + err.Error()
		}
		_, _ = io.WriteString(w, msg)
		return
	}
	_, _ = io.WriteString(w, "OK")
}

type check struct {
	ID     string         `json:"id"`
	Status string         `json:"status"`
	Data   map[string]any `json:"data,omitempty"`
	Checks []check        `json:"checks,omitempty"`
}

// sourceCheckIDs gives Web3Signer's sub-check names to Vigil's key sources.
var sourceCheckIDs = map[string]string{
	"keystore-dir": "keystores-bulk-loading",
	"key-config":   "config-files-loading",
}

func updown(ok bool) string {
	if ok {
		return "UP"
	}
	return "DOWN"
}

func (s *server) healthcheck(w http.ResponseWriter, r *http.Request) {
	h := s.Signer.Health(r.Context(), s.HealthTimeout)
	db := check{ID: "slashing-protection-db-health-check", Status: updown(h.Store == nil)}
	if h.Store != nil {
		db.Data = map[string]any{"error": publicText(h.Store.Error())}
	}
	keys := check{ID: "keys-check", Status: "UP", Checks: []check{}}
	if len(h.Disabled) > 0 {
		// Loaded but refused by the slashing database (keymanager DELETE): they would silently
		// never attest, so say which. Public keys are public.
		d := make([]string, len(h.Disabled))
		for i, pk := range h.Disabled {
			d[i] = pk.String()
		}
		keys.Data = map[string]any{"disabled-keys": d}
	}
	if len(h.Importing) > 0 {
		// Refused while a chunked slashing-protection import runs; an interrupted one stays
		// refused until the import is run again (vigil slashing import, or the keymanager).
		var running, interrupted []string
		for _, k := range h.Importing {
			if k.Interrupted {
				interrupted = append(interrupted, k.Key.String())
			} else {
				running = append(running, k.Key.String())
			}
		}
		if keys.Data == nil {
			keys.Data = map[string]any{}
		}
		if len(running) > 0 {
			keys.Data["importing-keys"] = running
		}
		if len(interrupted) > 0 {
			keys.Data["interrupted-import-keys"] = interrupted
			keys.Data["interrupted-import-hint"] = "these keys are refused until the slashing-protection import that was interrupted is run again to completion"
		}
	}
	for _, src := range h.Sources {
		id := sourceCheckIDs[src.Name]
		if id == "" {
			id = src.Name + "-loading"
		}
		c := check{ID: id, Status: updown(src.OK()), Data: map[string]any{
			"keys-loaded": src.Loaded, "error-count": len(src.Errors),
		}}
		if src.Err != nil {
			c.Data["source-error"] = publicSourceError(src.Err) // reload.go: no paths, no Vault address
		}
		if src.Kept > 0 {
			c.Data["keys-kept-from-earlier-load"] = src.Kept
		}
		if len(src.Errors) > 0 {
			errs := make([]string, len(src.Errors))
			for i, e := range src.Errors {
				errs[i] = publicLoadError(e)
			}
			c.Data["errors"] = errs
		}
		if !src.OK() {
			keys.Status = "DOWN"
		}
		keys.Checks = append(keys.Checks, c)
	}
	checks := []check{{ID: "default-check", Status: "UP"}, db, keys}
	if l := h.Leader; l != nil {
		// Role, leader and term are what an operator looks for in a pair; the standby is healthy.
		checks = append(checks, check{ID: "ha-check", Status: updown(l.Role != "stopped"), Data: map[string]any{
			"role": l.Role, "instance": l.Instance, "leader": l.Leader, "leader-url": l.LeaderURL,
			"term": l.Term, "lease-age-ms": l.LeaseAge.Milliseconds(), "lease-valid": l.LeaseValid,
		}})
	}
	overall := updown(h.OK())
	status := http.StatusOK
	if !h.OK() {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{
		"status":  overall,
		"checks":  checks,
		"outcome": overall,
	})
}

func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Logger.Error("panic in HTTP handler", "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError writes the JSON error body every non-2xx response carries: {"message": "..."}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}

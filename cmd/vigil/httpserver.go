package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/api"
)

// Defaults of the HTTP listener settings.
const (
	defaultMaxConnections = 1024
	defaultReadTimeout    = 5 * time.Second
	// fdReserve is the file descriptors kept for everything but client connections (database,
	// key files, Vault, HSM, the 503 writers of both listeners).
	fdReserve = 256 + 2*maxRejecting
)

// httpFlags are the HTTP listener settings: connection limits, timeouts, host allowlist and the
// access log.
type httpFlags struct {
	hostAllowlist    string
	metricsAllowlist string
	maxConns         int
	maxBuffered      int64
	readTimeout      time.Duration
	accessLog        bool

	// Set by apply.
	hostAllow, metricsAllow *api.HostAllowlist
	connCap                 int // maxConns, lowered to what the file-descriptor limit allows
	stats                   connStats
	log                     *slog.Logger
}

func (h *httpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.hostAllowlist, "http-host-allowlist", api.DefaultHostAllowlist,
		"Host header values the signing API answers, comma-separated, without port (* or all: any); other Hosts get 403. /upcheck, /livez and /readyz answer any Host")
	fs.StringVar(&h.metricsAllowlist, "metrics-host-allowlist", api.DefaultHostAllowlist,
		"Host header values the metrics listener answers, comma-separated, without port (* or all: any); other Hosts get 403")
	fs.IntVar(&h.maxConns, "http-max-connections", defaultMaxConnections,
		"open connections per listener; at the cap the oldest idle (or not yet requesting) connection is closed for a new one, and when all are busy the new one gets 503")
	fs.Int64Var(&h.maxBuffered, "http-max-buffered-bytes", api.DefaultMaxBufferedBytes,
		"sign-request body bytes buffered across all connections at once; a request that does not fit gets 503")
	fs.DurationVar(&h.readTimeout, "http-read-timeout", defaultReadTimeout,
		"longest a client may take to send the request headers, and then the body (408)")
	fs.BoolVar(&h.accessLog, "http-access-log", false,
		"log one line per HTTP request (component=access): remote address, key, type, slot/epoch, status, latency; never the body")
}

// apply checks the HTTP settings, raises the file-descriptor limit and copies the settings into
// the API options.
func (h *httpFlags) apply(o *api.Options, log *slog.Logger) error {
	var err error
	if h.hostAllow, err = api.ParseHostAllowlist("http-host-allowlist", h.hostAllowlist); err != nil {
		return usagef("%v", err)
	}
	if h.metricsAllow, err = api.ParseHostAllowlist("metrics-host-allowlist", h.metricsAllowlist); err != nil {
		return usagef("%v", err)
	}
	if h.maxConns < 1 {
		return usagef("--http-max-connections must be at least 1")
	}
	if h.readTimeout <= 0 {
		return usagef("--http-read-timeout must be positive")
	}
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = api.DefaultMaxBodyBytes
	}
	if h.maxBuffered < maxBody {
		return usagef("--http-max-buffered-bytes (%d) must be at least --http-max-body-bytes (%d)", h.maxBuffered, maxBody)
	}
	h.log = log
	h.connCap = h.maxConns
	if soft, ok := raiseFileLimit(log); ok {
		// Both listeners may fill up; what is left must still open databases and key files.
		if fit := (int(soft) - fdReserve) / 2; h.connCap > fit {
			h.connCap = max(fit, 1)
			log.Warn("--http-max-connections lowered to fit the file-descriptor limit (raise the hard limit: LimitNOFILE in systemd, ulimit -Hn)",
				"requested", h.maxConns, "used", h.connCap, "fd_limit", soft)
		}
	}
	o.HostAllowlist = h.hostAllow
	o.BodyBudget = api.NewBodyBudget(h.maxBuffered)
	if h.accessLog {
		o.AccessLog = slog.New(alwaysEnabled{log.Handler()}).With("component", "access")
	}
	if o.Metrics != nil {
		budget := o.BodyBudget
		o.Metrics.CounterFunc("vigil_http_connections_evicted_total",
			"Idle or not-yet-requesting connections closed to admit a new one at --http-max-connections.",
			func() float64 { return float64(h.stats.evicted.Load()) })
		o.Metrics.CounterFunc("vigil_http_connections_refused_total",
			"New connections answered 503 and closed because every connection was busy at --http-max-connections.",
			func() float64 { return float64(h.stats.refused.Load()) })
		o.Metrics.CounterFunc("vigil_http_body_budget_refused_total",
			"Sign requests answered 503 because their body did not fit --http-max-buffered-bytes.",
			func() float64 { return float64(budget.Rejected()) })
		o.Metrics.Registry().MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_http_open_connections", Help: "Open client connections on both listeners."},
				func() float64 { return float64(h.stats.open.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_http_body_buffered_bytes", Help: "Sign-request body bytes reserved now (see --http-max-buffered-bytes)."},
				func() float64 { return float64(budget.Reserved()) }),
		)
	}
	log.Info("HTTP listener limits", "http_host_allowlist", h.hostAllow.String(), "metrics_host_allowlist", h.metricsAllow.String(),
		"max_connections", h.connCap, "max_buffered_bytes", h.maxBuffered, "max_body_bytes", maxBody,
		"read_timeout", h.readTimeout, "access_log", h.accessLog)
	return nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (the Go runtime usually has
// done so already at start; this makes it explicit and logs the result) and returns the soft
// limit in force.
func raiseFileLimit(log *slog.Logger) (uint64, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the file-descriptor limit", "err", err)
		return 0, false
	}
	old := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("cannot raise the file-descriptor limit", "soft", old, "hard", lim.Max, "err", err)
			return old, true
		}
	}
	log.Info("file-descriptor limit", "soft_before", old, "soft", lim.Cur, "hard", lim.Max)
	return lim.Cur, true
}

// server builds an http.Server for handler with the listener's timeouts. A handler other than the
// signing API (which checks Host itself) gets the metrics allowlist.
func (h *httpFlags) server(handler http.Handler, log *slog.Logger) *http.Server {
	if !api.ChecksHost(handler) {
		handler = api.HostGuard(h.metricsAllow, log, handler)
	}
	readTimeout := h.readTimeout
	if readTimeout <= 0 {
		readTimeout = defaultReadTimeout
	}
	return &http.Server{
		Handler: bodyDeadline(readTimeout, handler),
		// Headers must arrive within the read timeout, the body within the same time again
		// (bodyDeadline). Server.ReadTimeout stays 0: net/http would keep that deadline while the
		// handler runs and cancel the request's context when it passes, failing a slow signature.
		ReadHeaderTimeout: readTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ConnState:         connStateHook,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
}

// listen opens a TCP listener that holds at most the connection cap (connlimit.go).
func (h *httpFlags) listen(host string, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	capacity := h.connCap
	if capacity <= 0 {
		capacity = defaultMaxConnections
	}
	log := h.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !isLoopback(host) && (h.hostAllowlist == api.DefaultHostAllowlist || h.metricsAllowlist == api.DefaultHostAllowlist) {
		log.Warn("listening beyond loopback with the default Host allowlist: clients that reach this address by another name or IP get 403 (set --http-host-allowlist / --metrics-host-allowlist)",
			"address", ln.Addr().String())
	}
	return newConnLimiter(ln, capacity, &h.stats, log), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bodyDeadline gives a request body readTimeout to arrive, then lifts the read deadline once it
// has (so that net/http's background read, which watches for a closed connection while the
// handler runs, never times out and cancels a signature in progress). A request without a body
// runs with no read deadline; a handler that leaves its body unread leaves the deadline on, so
// the server's discard of the rest is bounded too.
func bodyDeadline(readTimeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(readTimeout))
		// A shallow copy: net/http must still see its own body type on its request, or it would
		// wait to drain a large unread body (up to the deadline) before sending an early reply.
		r = r.WithContext(r.Context())
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		next.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// alwaysEnabled logs every record whatever the level of the handler it wraps: the access log is
// switched on by its own flag, not by --log-level.
type alwaysEnabled struct{ slog.Handler }

func (alwaysEnabled) Enabled(context.Context, slog.Level) bool { return true }

func (a alwaysEnabled) WithAttrs(attrs []slog.Attr) slog.Handler {
	return alwaysEnabled{a.Handler.WithAttrs(attrs)}
}

func (a alwaysEnabled) WithGroup(name string) slog.Handler {
	return alwaysEnabled{a.Handler.WithGroup(name)}
}

package main

import (
	"flag"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-signer/vigil/api"
)

// httpFlags are the HTTP listener settings: connection limits, timeouts, host allowlist and the
// access log.
type httpFlags struct{}

func (h *httpFlags) register(fs *flag.FlagSet) {}

// apply copies the HTTP settings into the API options.
func (h *httpFlags) apply(o *api.Options, log *slog.Logger) error { return nil }

// server builds an http.Server for handler with the listener's timeouts.
func (h *httpFlags) server(handler http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// listen opens a TCP listener.
func (h *httpFlags) listen(host string, port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

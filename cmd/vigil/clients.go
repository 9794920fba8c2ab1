package main

// Validator-client identity in `vigil serve`: the clients file, the TLS server (with client
// certificates) and each client's own listener.

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-signer/vigil/api"
	"github.com/vigil-signer/vigil/failover/assignment"
	"github.com/vigil-signer/vigil/failover/clients"
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/slashing"
)

// clientFlags are the serve flags of client identity.
type clientFlags struct {
	file              string
	allowUnidentified bool
	tlsCert, tlsKey   string
	tlsClientCA       string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.file, "clients-file", "", "YAML file of the validator clients Vigil serves (names, own listeners, TLS certificate names, bearer tokens, keymanager URLs, roles); reloaded on SIGHUP. Once it names a client, sign requests that name none get 401")
	fs.BoolVar(&f.allowUnidentified, "allow-unidentified-clients", false, "with --clients-file, still serve sign requests that name no client (as anonymous)")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "PEM certificate (chain) of the signing listeners: serve HTTPS (TLS 1.2+) instead of HTTP")
	fs.StringVar(&f.tlsKey, "tls-key-file", "", "PEM private key of --tls-cert-file")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca-file", "", "PEM CA certificates that sign validator clients' certificates: a client presenting one is identified by its subject or SAN (clients file tls_names); a certificate from another CA, or expired, is refused in the TLS handshake")
}

func (f *clientFlags) validate() error {
	switch {
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usagef("--tls-cert-file and --tls-key-file go together")
	case f.tlsClientCA != "" && f.tlsCert == "":
		return usagef("--tls-client-ca-file needs --tls-cert-file and --tls-key-file (client certificates are checked by the TLS server)")
	case f.allowUnidentified && f.file == "":
		return usagef("--allow-unidentified-clients needs --clients-file")
	}
	return nil
}

// tlsConfig is the signing listeners' TLS configuration (nil: plain HTTP).
func (f *clientFlags) tlsConfig() (*tls.Config, error) {
	if f.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, usagef("--tls-cert-file/--tls-key-file: %v", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if f.tlsClientCA != "" {
		pem, err := os.ReadFile(f.tlsClientCA)
		if err != nil {
			return nil, usagef("--tls-client-ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-client-ca-file: no PEM certificate in %s", f.tlsClientCA)
		}
		// A certificate is optional (a client may use its listener or token instead); one that
		// is presented must verify against the CA, else the handshake fails.
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// load reads the clients file (nil without --clients-file).
func (f *clientFlags) load(log *slog.Logger) (*clients.Registry, error) {
	if f.file == "" {
		return nil, nil
	}
	reg, err := clients.NewRegistry(f.file)
	if err != nil {
		return nil, usagef("--clients-file: %v", err)
	}
	for _, c := range reg.Current().Clients() {
		log.Info("validator client configured", "client", c.Name, "role", string(c.Role), "listen", c.Listen,
			"tls_names", len(c.TLSNames), "token", c.HasToken())
	}
	return reg, nil
}

// authorizer is the key-assignment fence of the clients (nil without clients): it goes into the
// signer's Authorizer seam.
func authorizer(reg *clients.Registry, store slashing.Store, isLeader func() bool, preg prometheus.Registerer, log *slog.Logger) (*assignment.Authorizer, error) {
	if reg == nil {
		return nil, nil
	}
	asg, ok := store.(slashing.Assigner)
	if !ok {
		return nil, fmt.Errorf("the slashing store %T keeps no key assignments", store)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_sign_forbidden_total",
		Help: "Sign requests refused (403) because the key is not this validator client's, by reason.",
	}, []string{"reason"})
	for _, r := range []string{assignment.ReasonOtherClient, assignment.ReasonStandby, assignment.ReasonUnknown} {
		refused.WithLabelValues(r)
	}
	preg.MustRegister(refused)
	return assignment.New(assignment.Config{Store: asg, Clients: reg.Current, IsLeader: isLeader,
		OnRefuse: func(r string) { refused.WithLabelValues(r).Inc() },
		OnAdopt: func(k keystore.PublicKey, c string) {
			log.Info("key adopted by the validator client that signs for it", "pubkey", k.String(), "client", c)
		},
		OnChange: func(n int) { log.Info("key assignments changed in the database", "keys", n) },
	}), nil
}

// clientListeners are the own listeners of the clients that have one, serving handler as
// that client's.
func clientListeners(reg *clients.Registry, c *serveConfig, handler http.Handler, tlsCfg *tls.Config, failed chan<- error, log *slog.Logger) ([]*httpService, error) {
	if reg == nil {
		return nil, nil
	}
	var out []*httpService
	for _, cl := range reg.Current().Clients() {
		if cl.Listen == "" {
			continue
		}
		host, portS, _ := net.SplitHostPort(cl.Listen)
		port, err := strconv.Atoi(portS)
		if err != nil {
			return nil, usagef("--clients-file: client %q: listen %q: bad port", cl.Name, cl.Listen)
		}
		out = append(out, &httpService{name: "listener of client " + cl.Name, srv: c.http.server(api.ForClient(cl.Name, handler), log),
			grace: c.shutdownGrace, log: log, failed: failed, listen: tlsListen(tlsCfg, func() (net.Listener, error) { return c.http.listen(host, port) })})
	}
	return out, nil
}

// tlsListen wraps a listener factory in TLS when tlsCfg is set.
func tlsListen(tlsCfg *tls.Config, listen func() (net.Listener, error)) func() (net.Listener, error) {
	if tlsCfg == nil {
		return listen
	}
	return func() (net.Listener, error) {
		ln, err := listen()
		if err != nil {
			return nil, err
		}
		return tls.NewListener(ln, tlsCfg), nil
	}
}

// reloadClients re-reads the clients file (SIGHUP). A file that does not parse keeps the
// current clients.
func reloadClients(reg *clients.Registry, log *slog.Logger) {
	if reg == nil {
		return
	}
	restart, err := reg.Reload()
	if err != nil {
		log.Error("SIGHUP: clients file not reloaded; the current clients stay in force", "err", err)
		return
	}
	for _, r := range restart {
		log.Warn("SIGHUP: clients file reloaded, but a listener change needs a restart", "change", r)
	}
	log.Info("SIGHUP: clients file reloaded", "clients", len(reg.Current().Clients()))
}

package api

// Client identity: which validator client sent a request (failover/clients resolves the names).
// The api only names the caller; the signer's Authorizer decides what it may do.

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"

	"github.com/vigil-signer/vigil/signer"
)

// ClientIdentifier names the validator client behind a credential (failover/clients.Registry).
type ClientIdentifier interface {
	// Configured reports whether any client is configured: then a request that names none is
	// refused (401) unless Options.AllowUnidentified.
	Configured() bool
	ByToken(token string) (name string, ok bool)
	ByCertificate(c *x509.Certificate) (name string, ok bool)
	// Known reports whether name is still a configured client (its listener may outlive it).
	Known(name string) bool
}

type listenerClientKey struct{}

// ForClient is the handler of a client's own listener: every request on it comes from client
// name (it works with every VC, none of which needs to send a credential).
func ForClient(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), listenerClientKey{}, name)))
	})
}

// identify names the caller of r: its listener's client, else its verified TLS client
// certificate's, else its bearer token's. A credential that names no client, or two credentials
// that name different clients, is refused (msg says why, never which clients exist); so is a
// request with no credential once clients are configured, unless AllowUnidentified.
func (s *server) identify(r *http.Request) (c signer.Caller, msg string, ok bool) {
	if s.Clients == nil {
		return signer.Anonymous, "", true
	}
	name := ""
	if l, isClient := r.Context().Value(listenerClientKey{}).(string); isClient {
		if !s.Clients.Known(l) {
			return c, "this listener's client is no longer configured", false
		}
		name = l
	}
	if st := r.TLS; st != nil && len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
		n, found := s.Clients.ByCertificate(st.PeerCertificates[0])
		switch {
		case !found:
			return c, "the client certificate names no configured client", false
		case name != "" && n != name:
			return c, "the client certificate names another client than this listener's", false
		}
		name = n
	}
	if tok, hasToken := bearer(r); hasToken {
		n, found := s.Clients.ByToken(tok)
		switch {
		case !found:
			return c, "unknown bearer token", false
		case name != "" && n != name:
			return c, "the bearer token names another client than the connection's", false
		}
		name = n
	}
	if name != "" {
		return signer.Caller{Name: name}, "", true
	}
	if s.Clients.Configured() && !s.AllowUnidentified {
		return c, "unidentified client: use the client's own listener, its TLS client certificate or its bearer token (or start Vigil with --allow-unidentified-clients)", false
	}
	return signer.Anonymous, "", true
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// refuseUnidentified answers 401 for a request identify refused.
func refuseUnidentified(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	writeError(w, http.StatusUnauthorized, msg)
}

package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/vigil-signer/vigil/keystore"
)

// vaultError is an error of the Vault backend; its message is built here (address, request,
// reason) and never holds a credential or a secret.
type vaultError struct {
	msg  string
	errs []error
}

func (e *vaultError) Error() string   { return e.msg }
func (e *vaultError) Unwrap() []error { return e.errs }

// unavailable is keystore.ErrUnavailable for op with reason.
func (s *Store) unavailable(op, reason string) error {
	return &vaultError{msg: fmt.Sprintf("%s: vault at %s: %s: %s", keystore.ErrUnavailable, s.cfg.Address, op, reason), errs: []error{keystore.ErrUnavailable}}
}

// failure turns an error of the Vault client for request op into one wrapping
// keystore.ErrUnavailable (or the context's error when the caller gave up), with a reason an
// operator can act on.
func (s *Store) failure(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("vault at %s: %s: %w", s.cfg.Address, op, cerr)
	}
	var ve *vaultError
	if errors.As(err, &ve) {
		return err
	}
	reason := vaultReason(err)
	switch vaultStatus(err) {
	case http.StatusServiceUnavailable:
		if st, serr := s.client.Sys().SealStatusWithContext(ctx); serr == nil && st.Sealed {
			reason = "sealed"
		}
	case http.StatusForbidden:
		if terr := s.tokenCheck(ctx); terr != nil {
			return terr
		}
		reason = "permission denied: the token's policies do not allow this request"
	}
	e := s.unavailable(op, reason).(*vaultError)
	e.errs = append(e.errs, err)
	return e
}

// tokenCheck looks the token up; an error wrapping keystore.ErrUnavailable when it is invalid,
// expired or revoked (or Vault cannot be asked), nil when it is valid.
func (s *Store) tokenCheck(ctx context.Context) error {
	_, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	switch {
	case err == nil:
		return nil
	case vaultStatus(err) == http.StatusForbidden:
		return s.unavailable("token", "invalid, expired or revoked")
	}
	var ve *vaultError
	if errors.As(err, &ve) {
		return err
	}
	e := s.unavailable("GET auth/token/lookup-self", vaultReason(err)).(*vaultError)
	e.errs = append(e.errs, err)
	return e
}

// vaultStatus is the HTTP status of a Vault error response, 0 for other errors.
func vaultStatus(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// vaultMessages returns Vault's own error messages (joined, shortened), or def when none.
func vaultMessages(err error, def string) string {
	var re *api.ResponseError
	if !errors.As(err, &re) || len(re.Errors) == 0 || re.RawError {
		return def
	}
	var msgs []string
	for _, m := range re.Errors {
		if m = strings.TrimSpace(m); m != "" {
			msgs = append(msgs, truncate(m, 200))
		}
	}
	if len(msgs) == 0 {
		return def
	}
	return strings.Join(msgs, "; ")
}

// vaultReason describes a client error without the request URL (already named) or any body that
// is not Vault's JSON error list.
func vaultReason(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		def := "no error message"
		if re.RawError {
			// The body is not quoted: it did not come from Vault's API and could echo anything.
			def = "the response is not from the Vault API (wrong address or scheme, or a proxy in between?)"
		}
		return fmt.Sprintf("%d %s: %s", re.StatusCode, http.StatusText(re.StatusCode), vaultMessages(err, def))
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var (
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recErr     tls.RecordHeaderError
		pinErr     *pinError
		netErr     net.Error
	)
	switch {
	case errors.As(err, &pinErr):
		return "TLS: " + pinErr.msg
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return "TLS: cannot verify Vault's certificate (check the CA file and server name): " + err.Error()
	case errors.As(err, &recErr):
		return "TLS: the server did not answer with TLS (is the address http://?): " + err.Error()
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return "timed out: " + err.Error()
	case errors.As(err, &netErr):
		return "unreachable: " + err.Error()
	}
	return err.Error()
}

// pinError: the server's certificate is not in the known-servers file.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }

// truncate shortens untrusted strings quoted in error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

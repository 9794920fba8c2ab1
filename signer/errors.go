package signer

import (
	"errors"
	"fmt"

	"github.com/vigil-signer/vigil/slashing"
)

// The error vocabulary of the signing pipeline. Every error Sign returns wraps exactly one of
// these; the HTTP layer maps them to status codes in one place (api.statusFor). Anything that
// wraps none of them is an internal error.
var (
	// ErrInvalidRequest: the request is malformed, inconsistent with the network, or its supplied
	// signing root differs from the one computed from its payload. The client must not retry.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrUnknownKey: no key with that public key is loaded.
	ErrUnknownKey = errors.New("unknown key")
	// ErrForbidden: the caller is not allowed to use this key.
	ErrForbidden = errors.New("forbidden")
	// ErrNotLeader: this instance is a standby and does not sign.
	ErrNotLeader = errors.New("not the active instance")
	// ErrSlashable: refused for safety by slashing protection (or the far-future guard). An outcome,
	// not a failure.
	ErrSlashable = slashing.ErrSlashable
	// ErrOverloaded: too many requests are already in flight; retry later.
	ErrOverloaded = errors.New("overloaded")
	// ErrUnavailable: a dependency (slashing database, key backend) is down; nothing was signed.
	ErrUnavailable = slashing.ErrUnavailable
)

// invalid builds an ErrInvalidRequest with a message that says what is wrong.
func invalid(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// Invalid builds an error that wraps ErrInvalidRequest and reads exactly as the message (no
// "invalid request:" prefix), for the services beside the pipeline (signer/keymanager).
func Invalid(format string, args ...any) error { return invalid(format, args...) }

type requestError struct{ msg string }

func (e *requestError) Error() string        { return e.msg }
func (e *requestError) Is(target error) bool { return target == ErrInvalidRequest }

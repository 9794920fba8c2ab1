package hsm

import (
	"errors"

	"github.com/miekg/pkcs11"
)

// Errors of Open and of a reconnect that retrying cannot cure (they do not wrap
// keystore.ErrUnavailable).
var (
	// ErrPIN: the token rejected the PIN (incorrect, locked, expired), or this process is already
	// logged in to the token with a different PIN.
	ErrPIN = errors.New("PIN rejected")
	// ErrNoKEK: the token holds no key-encryption key under the configured label and Open was not
	// asked to create one.
	ErrNoKEK = errors.New("no key-encryption key on the token")
)

var (
	// errClosed: an operation on a closed Store.
	errClosed = errors.New("hsm: store is closed")
	// errGone marks a failure that a reconnect may cure although the module reported no session
	// error (the KEK vanished from a logged-in search).
	errGone = errors.New("token state lost")
	// errObjectGone: a data object was destroyed between the search and the read.
	errObjectGone = errors.New("object destroyed")
)

// goneCodes are the return values after which the session, the login or the module state must
// be rebuilt.
var goneCodes = map[pkcs11.Error]bool{
	pkcs11.CKR_SESSION_HANDLE_INVALID:   true,
	pkcs11.CKR_SESSION_CLOSED:           true,
	pkcs11.CKR_USER_NOT_LOGGED_IN:       true,
	pkcs11.CKR_TOKEN_NOT_PRESENT:        true,
	pkcs11.CKR_TOKEN_NOT_RECOGNIZED:     true,
	pkcs11.CKR_DEVICE_REMOVED:           true,
	pkcs11.CKR_DEVICE_ERROR:             true,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED: true,
	pkcs11.CKR_SLOT_ID_INVALID:          true,
	pkcs11.CKR_KEY_HANDLE_INVALID:       true, // only the KEK is ever used as a key
	pkcs11.CKR_OPERATION_ACTIVE:         true, // a session left mid-operation: replace it
}

// isGone reports whether err calls for a reconnect.
func isGone(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errGone) {
		return true
	}
	var e pkcs11.Error
	return errors.As(err, &e) && goneCodes[e]
}

// hasCode reports whether err is the PKCS#11 return value code.
func hasCode(err error, codes ...uint) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if uint(e) == c {
			return true
		}
	}
	return false
}

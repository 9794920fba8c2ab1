package signer

import (
	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keyset"
)

// The key vocabulary the signer's callers see, re-exported from keystore and keystore/keyset so
// that the HTTP layer depends on signer alone (DESIGN §1). They are aliases: the same types.
type (
	// PublicKey is a BLS public key (48 bytes, compressed).
	PublicKey = keystore.PublicKey
	// Signature is a BLS signature (96 bytes, compressed).
	Signature = keystore.Signature
	// Key is one signing key.
	Key = keystore.Key
	// LoadError is one key item that failed to load.
	LoadError = keystore.LoadError
	// MalformedError names the field of a malformed key item.
	MalformedError = keystore.MalformedError
	// KeySet is the set of loaded keys.
	KeySet = keyset.Set
	// SourceReport is the outcome of loading one key source.
	SourceReport = keyset.SourceReport
	// ReloadStatus describes the last (or current) key reload.
	ReloadStatus = keyset.ReloadStatus
	// ReloadState is where the last key reload stands.
	ReloadState = keyset.ReloadState
)

// Key reload states (keyset).
const (
	ReloadIdle      = keyset.ReloadIdle
	ReloadRunning   = keyset.ReloadRunning
	ReloadCompleted = keyset.ReloadCompleted
	ReloadDegraded  = keyset.ReloadDegraded
	ReloadFailed    = keyset.ReloadFailed
)

// ErrReloadRunning: a key (re)load is already in progress (keyset).
var ErrReloadRunning = keyset.ErrReloadRunning

package signer

// The vocabulary of the keymanager API operations (list, import, delete: /eth/v1/keystores),
// shared by the HTTP layer and the keymanager service (signer/keymanager), which implements
// them over the key set, the slashing-protection store and the managed key directory.

// KeyInfo is one key of the keymanager's list.
type KeyInfo struct {
	Pubkey PublicKey
	// DerivationPath is the EIP-2334 path of the keystore ("" when unknown; always "" for keys of
	// operator-managed sources).
	DerivationPath string
	// Readonly: the key comes from an operator-managed source and cannot be deleted through the API.
	Readonly bool
}

// ImportStatus is the outcome of importing one keystore (keymanager API enum).
type ImportStatus string

// Import statuses.
const (
	ImportImported  ImportStatus = "imported"
	ImportDuplicate ImportStatus = "duplicate"
	ImportError     ImportStatus = "error"
)

// ImportResult is the outcome for keystores[i].
type ImportResult struct {
	Status  ImportStatus
	Message string    // why, for errors (never secret material)
	Pubkey  PublicKey // zero when the keystore could not be read far enough to know it
}

// DeleteStatus is the outcome of deleting one key (keymanager API enum).
type DeleteStatus string

// Delete statuses.
const (
	DeleteDeleted   DeleteStatus = "deleted"
	DeleteNotActive DeleteStatus = "not_active"
	DeleteNotFound  DeleteStatus = "not_found"
	DeleteError     DeleteStatus = "error"
)

// DeleteResult is the outcome for pubkeys[i].
type DeleteResult struct {
	Status  DeleteStatus
	Message string
}

// DeleteResponse is what Delete returns: one result per requested key, in request order, and the
// EIP-3076 interchange document holding the history of the deleted and not_active keys.
type DeleteResponse struct {
	Results            []DeleteResult
	SlashingProtection []byte
}

// Package hsm is the PKCS#11 key store: BLS secret keys sealed by an AES-256 key-encryption key
// (KEK) that is generated inside the token and never leaves it, with the ciphertexts kept as token
// objects. It implements keystore.Store and passes keystoretest.RunStore against SoftHSM2.
//
// Standard PKCS#11 has no BLS mechanism, so signing happens in process memory: Load asks the
// token to decrypt every secret and returns keystore.LocalKeys. What the HSM adds is that the
// secrets are useless without the token and its PIN, and that the KEK can never be read out.
//
// # On-token format
//
// The KEK is one token object:
//
//	CKA_CLASS=CKO_SECRET_KEY  CKA_KEY_TYPE=CKK_AES  CKA_VALUE_LEN=32  CKA_LABEL=Config.KEKLabel
//	CKA_TOKEN=true  CKA_PRIVATE=true  CKA_SENSITIVE=true  CKA_EXTRACTABLE=false
//	CKA_ENCRYPT=true  CKA_DECRYPT=true  (no wrap/unwrap/sign)
//
// generated with CKM_AES_KEY_GEN by Open when Config.CreateKEK is set (`vigil keys import`).
// Open refuses a KEK that is extractable, not sensitive, not AES-256 or not allowed to
// encrypt/decrypt, and refuses a label shared by several secret keys.
//
// Each BLS secret is one data object:
//
//	CKA_CLASS=CKO_DATA  CKA_TOKEN=true  CKA_PRIVATE=true
//	CKA_APPLICATION=Config.Application
//	CKA_LABEL="0x" + 96 lowercase hex digits of the 48-byte public key
//	CKA_VALUE = version (1 byte, 0x01) || IV (12 bytes) || ciphertext+tag (48 bytes) = 61 bytes
//
// where ciphertext+tag is CKM_AES_GCM under the KEK, computed inside the token, of the 32-byte
// big-endian secret, with a fresh random 96-bit IV per record, a 128-bit tag and associated data
//
//	AAD = "vigil-hsm-v1:" (13 ASCII bytes) || the 48-byte compressed public key
//
// so a ciphertext copied under another label fails authentication. After decryption the public
// key derived from the secret must equal the label's (keystore.ErrPubkeyMismatch otherwise).
// Objects of Config.Application are Vigil's: Load reports any of them it cannot read as a
// keystore.LoadError named "hsm:<token label>/<object label>", with Pubkey set when the label
// parses, and still returns every other key. An authentication failure (tampering, or a record
// sealed under another KEK) wraps keystore.ErrWrongPassword; a bad label or layout wraps
// keystore.ErrMalformed. An object deleted while Load runs is simply absent.
//
// # Secrets in memory
//
// The PIN is kept in the Store for the whole of its life, to log in again after a reconnect; it
// never appears in errors, logs or Config.String. Decrypted secret bytes are zeroed once the
// keystore.SecretKey is built, and sk.Bytes() copies made by Put are zeroed after encryption. Two
// copies are outside this package's reach: the C buffer in which github.com/miekg/pkcs11 receives
// a C_Decrypt result is freed without being wiped, and the returned keys hold their secrets (as
// every keystore.LocalKey does) until LocalKey.Zero.
//
// # Concurrency
//
// A Store is safe for concurrent use. PKCS#11 sessions are not, so a Store owns a pool of
// Config.Sessions read/write sessions and every operation borrows one per goroutine; Load
// decrypts in parallel over the whole pool. Put and Delete are serialised by a mutex shared by
// every Store of the process on the same token, so racing Puts of one key in one process yield
// exactly one success and ErrDuplicate for the rest. Across processes (two `keys import` at once) nothing is atomic in PKCS#11: two objects
// with one label can result, and they hold the same secret (the label is bound by the AAD and the
// public-key check), so Load and List report the key once and Delete removes all of them. Two
// processes creating the KEK at the same moment can likewise leave two KEKs; Open then refuses
// with an error naming the label, and the operator deletes the unused one.
//
// A PKCS#11 module can be initialised once per process and login state is per token and
// process, so Stores share one loaded module per module path (reference-counted; the last Close
// logs out and calls C_Finalize). A second Store logging in to a token this process is already
// logged in to gets CKR_USER_ALREADY_LOGGED_IN without the token checking its PIN; the Store then
// compares the PIN with the one the first login used and refuses a different one (ErrPIN).
// SoftHSM2 reads its configuration and scans its token directory in C_Initialize only, so a token
// created while a Store of this process is open is seen after the next re-initialisation. If
// other code in the process initialised the module first (CKR_CRYPTOKI_ALREADY_INITIALIZED), the
// last Close leaves it initialised, but a reconnect still finalises and re-initialises it.
//
// # Cost
//
// Open is a few milliseconds plus C_Initialize. Load is two KEK searches, one search over the
// data objects and, per object, one C_GetAttributeValue, one C_DecryptInit/C_Decrypt and the
// public-key derivation. Put is one search by label and one C_CreateObject. Searches on SoftHSM2
// cost time proportional to the number of objects on the token (it checks every object file),
// and its file backend rewrites files on every object creation; hardware HSMs index objects.
//
// # Reconnect
//
// When an operation fails because the session or the token went away (CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN, CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_RECOGNIZED,
// CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_SLOT_ID_INVALID,
// CKR_KEY_HANDLE_INVALID for the KEK, or the KEK no longer being visible to a logged-in search)
// the Store closes its sessions, finalises and re-initialises the module (once for all Stores
// sharing it: a generation counter tells the others to only reopen their sessions), finds the
// token by label again, logs in, finds the KEK again (never creating one) and retries the
// operation once (twice when another Store re-initialised the module under the retry). If that
// fails the error wraps keystore.ErrUnavailable and the Store stays usable: the next operation
// tries the whole reconnect again, so a token that comes back is picked up without reopening the
// Store. The exception is a login refused during a reconnect (the PIN was changed): the Store
// then fails every operation with that ErrPIN error rather than presenting the PIN again, which
// could lock the token. A re-initialisation takes the module's lock exclusively, so C_Finalize
// never runs while another goroutine of any Store is inside the library, and a connection of an
// older generation is never used again (the module hands out the same session and object handle
// numbers after C_Initialize, so they could name another connection's sessions). Put and Delete retried
// after a failure that happened after the token had already acted may report ErrDuplicate or
// ErrNotFound for work that was in fact done.
//
// Load and List never report an empty or partial key set by mistake: a session that lost its
// login, or a token whose storage vanished, finds no private objects and cannot read them, without
// any session error. So Load and List check that the KEK is visible before their search and again
// after their last read (a lost login stays lost until this package logs in again, which only
// Open and a reconnect do, under the exclusive lock), and Put and Delete check it before believing
// a failure or ErrNotFound; a KEK that is not visible triggers the reconnect. (Code outside this
// package that logs the token out in the middle of a call defeats this; nothing else in the
// process should log in to or out of Vigil's token.)
//
// # Errors
//
// Whole-store failures are returned errors that name the token label and module path, never the
// PIN: a token that cannot be found or reached wraps keystore.ErrUnavailable (retrying may help);
// ErrPIN (wrong, locked or expired PIN) and ErrNoKEK do not, since retrying cannot help and
// repeating a wrong PIN can lock the token.
//
// Name returns "hsm" for every Store, keeping metric labels bounded; items carry the token label.
package hsm

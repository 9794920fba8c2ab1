package api

// The keymanager API (ethereum/keymanager-APIs, local keystores): GET, POST and DELETE
// /eth/v1/keystores on the signing listener, behind a bearer token.
//
// Status codes: 401 when the request carries no bearer token, 403 when it carries a wrong one
// (the spec's Unauthorized and Forbidden), 400 for a body that is not the documented JSON, for
// keystores and passwords of different lengths, for a pubkey that is not 0x + 96 hex digits and
// for a slashing_protection document that is malformed or for another network, 413 for a body
// over the limit, 200 with per-item statuses otherwise (a DELETE never answers 404). Errors
// are {"message": ...}; passwords and secrets never reach a reply or a log line.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/vigil-signer/vigil/internal/jsonfield"
	"github.com/vigil-signer/vigil/internal/strictjson"
	"github.com/vigil-signer/vigil/signer"
)

// DefaultKeyManagerMaxBodyBytes bounds a keymanager request body: keystores (about 1 KiB each)
// plus a slashing-protection interchange document, which can be large for many keys.
const DefaultKeyManagerMaxBodyBytes = 64 << 20

// DefaultKeyManagerTimeout is how long one keymanager request may take (reading the body,
// decrypting keystores, writing the reply). It replaces the listener's shorter read and write
// timeouts for these routes: decrypting many scrypt keystores takes minutes on few cores.
const DefaultKeyManagerTimeout = 15 * time.Minute

// KeyManager is what the keymanager routes need (implemented by *keymanager.Manager, package
// signer/keymanager).
type KeyManager interface {
	List() []signer.KeyInfo
	Import(ctx context.Context, keystores, passwords []string, slashingProtection string) ([]signer.ImportResult, error)
	Delete(ctx context.Context, pubkeys []signer.PublicKey) (signer.DeleteResponse, error)
}

type keyManagerAPI struct {
	km        KeyManager
	tokenHash [sha256.Size]byte
	hasToken  bool
	maxBody   int64
	timeout   time.Duration
	s         *server
}

// keyManagerRoutes registers /eth/v1/keystores (called by Handler when o.KeyManager is set).
func (s *server) keyManagerRoutes(r chi.Router) {
	k := &keyManagerAPI{km: s.KeyManager, maxBody: s.KeyManagerMaxBodyBytes, timeout: s.KeyManagerTimeout, s: s}
	if k.maxBody <= 0 {
		k.maxBody = DefaultKeyManagerMaxBodyBytes
	}
	if k.timeout <= 0 {
		k.timeout = DefaultKeyManagerTimeout
	}
	if s.KeyManagerToken != "" {
		k.tokenHash, k.hasToken = sha256.Sum256([]byte(s.KeyManagerToken)), true
	}
	r.Group(func(r chi.Router) {
		r.Use(k.auth)
		r.Get("/eth/v1/keystores", k.list)
		r.With(k.leaderOnly).Post("/eth/v1/keystores", k.importKeystores)
		r.With(k.leaderOnly).Delete("/eth/v1/keystores", k.deleteKeys)
		if s.Failover != nil {
			// Validator-client failover for operators, as `vigil failover status|history` prints it.
			r.Get("/vigil/v1/failover/status", func(w http.ResponseWriter, r *http.Request) { k.admin(w, r, s.Failover.FailoverStatus) })
			r.Get("/vigil/v1/failover/history", func(w http.ResponseWriter, r *http.Request) { k.admin(w, r, s.Failover.FailoverHistory) })
		}
	})
}

// FailoverReporter answers the failover admin routes (cmd wires the clients, assignments and
// the failover ledger). The values are written as JSON.
type FailoverReporter interface {
	FailoverStatus(ctx context.Context) (any, error)
	FailoverHistory(ctx context.Context) (any, error)
}

func (k *keyManagerAPI) admin(w http.ResponseWriter, r *http.Request, fn func(context.Context) (any, error)) {
	v, err := fn(r.Context())
	if err != nil {
		k.fail(w, "failover report", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": v})
}

// auth checks "Authorization: Bearer <token>" in constant time (comparing hashes, so not even
// the token's length leaks) and extends the connection deadlines for the slow operations.
func (k *keyManagerAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil keymanager"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token> (the token is in the file given by --key-manager-api-token-file)")
			return
		}
		got := sha256.Sum256([]byte(token))
		if !k.hasToken || subtle.ConstantTimeCompare(got[:], k.tokenHash[:]) != 1 {
			k.s.Logger.Warn("keymanager request refused: invalid bearer token", "method", r.Method, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "invalid bearer token")
			return
		}
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(k.timeout)
		_ = rc.SetReadDeadline(deadline) // not supported by every ResponseWriter (tests): fine
		_ = rc.SetWriteDeadline(deadline)
		next.ServeHTTP(w, r)
	})
}

type keyInfoJSON struct {
	ValidatingPubkey string `json:"validating_pubkey"`
	DerivationPath   string `json:"derivation_path,omitempty"`
	Readonly         bool   `json:"readonly"`
}

func (k *keyManagerAPI) list(w http.ResponseWriter, _ *http.Request) {
	keys := k.km.List()
	out := make([]keyInfoJSON, len(keys))
	for i, key := range keys {
		out[i] = keyInfoJSON{ValidatingPubkey: key.Pubkey.String(), DerivationPath: key.DerivationPath, Readonly: key.Readonly}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

type statusJSON struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// readBody reads a keymanager request body within the limit; on failure it has written the reply.
func (k *keyManagerAPI) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, k.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			k.s.Logger.Warn("keymanager request refused: body too large", "limit", tooBig.Limit)
			writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds "+strconv.FormatInt(tooBig.Limit, 10)+" bytes (--key-manager-api-max-body-bytes)")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "cannot read request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// Known member names of the keymanager bodies (strictjson.Check). Keystores and the interchange
// document inside them are checked again, with their own names, by their parsers.
var (
	importBodySchema = strictjson.Object(map[string]*strictjson.Schema{"keystores": nil, "passwords": nil, "slashing_protection": nil})
	deleteBodySchema = strictjson.Object(map[string]*strictjson.Schema{"pubkeys": nil})
)

// decodeObject decodes a JSON object body into a map of raw members (unknown members ignored).
// Member names are matched exactly and may appear once per object (at any depth): a duplicate
// or a case variant of a known name is a bad request.
func decodeObject(body []byte, known *strictjson.Schema) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("request body must be a JSON object")
	}
	if err := strictjson.Check(trimmed, known); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, fmt.Errorf("request body is not valid JSON: %s", jsonProblem(err))
	}
	return m, nil
}

// jsonProblem describes a JSON decoding error without quoting input values (a password could be
// one of them).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("a JSON %s where %s was expected", typ.Value, typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "malformed"
}

// stringArray decodes a required array member. With objectsToo, an element that is a JSON object
// is taken as its own text (some clients send keystores as objects rather than strings).
func stringArray(m map[string]json.RawMessage, name string, objectsToo bool) ([]string, error) {
	raw := m[name]
	if jsonfield.Absent(raw) {
		return nil, fmt.Errorf("%q is required", name)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%q must be an array of strings", name)
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		e = bytes.TrimSpace(e)
		if objectsToo && len(e) > 0 && e[0] == '{' {
			out[i] = string(e)
			continue
		}
		if err := json.Unmarshal(e, &out[i]); err != nil {
			return nil, fmt.Errorf("%s[%d] must be a string", name, i)
		}
	}
	return out, nil
}

func (k *keyManagerAPI) importKeystores(w http.ResponseWriter, r *http.Request) {
	body, ok := k.readBody(w, r)
	if !ok {
		return
	}
	m, err := decodeObject(body, importBodySchema)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	keystores, err := stringArray(m, "keystores", true)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	passwords, err := stringArray(m, "passwords", false)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(keystores) != len(passwords) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d keystores but %d passwords: passwords[i] must unlock keystores[i]", len(keystores), len(passwords)))
		return
	}
	var slashingProtection string
	if raw := bytes.TrimSpace(m["slashing_protection"]); !jsonfield.Absent(raw) {
		switch raw[0] {
		case '"':
			if err := json.Unmarshal(raw, &slashingProtection); err != nil {
				writeError(w, http.StatusBadRequest, "slashing_protection must be a string holding an EIP-3076 interchange document")
				return
			}
		case '{': // the document itself rather than its JSON string: accepted
			slashingProtection = string(raw)
		default:
			writeError(w, http.StatusBadRequest, "slashing_protection must be a string holding an EIP-3076 interchange document")
			return
		}
	}

	start := time.Now()
	results, err := k.km.Import(r.Context(), keystores, passwords, slashingProtection)
	if err != nil {
		k.fail(w, "import", err)
		return
	}
	out := make([]statusJSON, len(results))
	counts := map[signer.ImportStatus]int{}
	for i, res := range results {
		out[i] = statusJSON{Status: string(res.Status), Message: res.Message}
		counts[res.Status]++
		if res.Status == signer.ImportError {
			k.s.Logger.Warn("keymanager: keystore not imported", "index", i, "pubkey", pubkeyOrEmpty(res.Pubkey), "err", res.Message)
		}
	}
	k.s.Logger.Info("keymanager import", "keystores", len(results), "imported", counts[signer.ImportImported],
		"duplicate", counts[signer.ImportDuplicate], "error", counts[signer.ImportError], "took", time.Since(start).Round(time.Millisecond))
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func pubkeyOrEmpty(pk signer.PublicKey) string {
	if pk == (signer.PublicKey{}) {
		return ""
	}
	return pk.String()
}

func (k *keyManagerAPI) deleteKeys(w http.ResponseWriter, r *http.Request) {
	body, ok := k.readBody(w, r)
	if !ok {
		return
	}
	m, err := decodeObject(body, deleteBodySchema)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	raw, err := stringArray(m, "pubkeys", false)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	pubkeys := make([]signer.PublicKey, len(raw))
	for i, s := range raw {
		pk, err := signer.ParseIdentifier(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("pubkeys[%d]: %v", i, err))
			return
		}
		pubkeys[i] = pk
	}
	resp, err := k.km.Delete(r.Context(), pubkeys)
	if err != nil {
		k.fail(w, "delete", err)
		return
	}
	out := make([]statusJSON, len(resp.Results))
	counts := map[signer.DeleteStatus]int{}
	for i, res := range resp.Results {
		out[i] = statusJSON{Status: string(res.Status), Message: res.Message}
		counts[res.Status]++
	}
	k.s.Logger.Info("keymanager delete", "pubkeys", len(pubkeys), "deleted", counts[signer.DeleteDeleted],
		"not_active", counts[signer.DeleteNotActive], "not_found", counts[signer.DeleteNotFound], "error", counts[signer.DeleteError])
	writeJSON(w, http.StatusOK, map[string]any{"data": out, "slashing_protection": string(resp.SlashingProtection)})
}

// parsePubkey reads a keymanager pubkey: 0x + 96 hex digits, any case (the spec's pattern). The
// point itself is not validated: an unknown key is simply not_found.

// fail writes the reply for an error of a whole keymanager request, with the status from
// statusFor (400 for an invalid request, 503 for an unavailable database, 500 otherwise).
// leaderOnly refuses keymanager writes on an HA standby (503, the message of a standby's sign
// refusal): only the leader writes keys and slashing history; reads work on both.
func (k *keyManagerAPI) leaderOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := k.s.Signer.CheckLeader(r.Context()); err != nil {
			writeError(w, statusFor(err), err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (k *keyManagerAPI) fail(w http.ResponseWriter, op string, err error) {
	status := statusFor(err)
	msg := err.Error()
	if status >= 500 {
		k.s.Logger.Error("keymanager "+op+" failed", "status", status, "err", msg)
		if status == http.StatusInternalServerError {
			msg = "internal error"
		}
	} else {
		k.s.Logger.Info("keymanager "+op+" rejected", "status", status, "err", msg)
	}
	writeError(w, status, msg)
}

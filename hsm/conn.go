package hsm

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"

	"github.com/vigil-signer/vigil/keystore"
)

// conn is one logged-in connection to the token: the slot, the KEK handle and a pool of sessions,
// all valid for one module generation.
type conn struct {
	gen      uint64
	slot     uint
	kek      pkcs11.ObjectHandle
	sessions []pkcs11.SessionHandle
	pool     chan pkcs11.SessionHandle
}

// get borrows a session; put returns it.
func (c *conn) get(ctx context.Context) (pkcs11.SessionHandle, error) {
	select {
	case sh := <-c.pool:
		return sh, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *conn) put(sh pkcs11.SessionHandle) { c.pool <- sh }

// findBatch is how many object handles one C_FindObjects call asks for.
const findBatch = 1000

// findAll runs one search to completion on sh.
func findAll(p *pkcs11.Ctx, sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := p.FindObjects(sh, findBatch)
		if err != nil {
			_ = p.FindObjectsFinal(sh)
			return nil, err
		}
		if len(hs) == 0 {
			break
		}
		out = append(out, hs...)
	}
	return out, p.FindObjectsFinal(sh)
}

// connectLocked finds the token, opens the session pool, logs in and finds (or, with create,
// generates) the KEK. s.mu, s.mod.ops (exclusively) and s.mod.mu must be held.
func (s *Store) connectLocked(ctx context.Context, create bool) (_ *conn, err error) {
	m := s.mod
	if !m.initialized {
		return nil, s.unavailable("PKCS#11 module %q is not initialised", m.path)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := m.ctx
	slot, err := s.findSlotLocked()
	if err != nil {
		return nil, err
	}
	c := &conn{gen: m.generation(), slot: slot, pool: make(chan pkcs11.SessionHandle, s.cfg.Sessions)}
	loggedIn := false
	defer func() {
		if err == nil {
			return
		}
		if l := m.logins[slot]; loggedIn && l != nil && l.users == 0 {
			_ = p.Logout(c.sessions[0])
			delete(m.logins, slot)
		}
		for _, sh := range c.sessions {
			_ = p.CloseSession(sh)
		}
	}()
	for range s.cfg.Sessions {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return nil, s.unavailable("opening a session: %v", err)
		}
		c.sessions = append(c.sessions, sh)
		c.pool <- sh
	}
	if err := s.loginLocked(c); err != nil {
		return nil, err
	}
	loggedIn = true
	if c.kek, err = s.findKEK(c.sessions[0], create); err != nil {
		return nil, err
	}
	m.logins[slot].users++
	return c, nil
}

// findSlotLocked returns the slot holding the token labelled cfg.TokenLabel.
func (s *Store) findSlotLocked() (uint, error) {
	p := s.mod.ctx
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, s.unavailable("listing slots: %v", err)
	}
	var found []uint
	var labels []string
	for _, sl := range slots {
		ti, err := p.GetTokenInfo(sl)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue // a token that cannot describe itself, or the module's spare empty slot
		}
		l := strings.TrimRight(ti.Label, " \x00")
		labels = append(labels, l)
		if l == s.cfg.TokenLabel {
			found = append(found, sl)
		}
	}
	switch len(found) {
	case 0:
		return 0, s.unavailable("token not found (tokens present: %q)", labels)
	case 1:
		return found[0], nil
	default:
		return 0, fmt.Errorf("hsm: token %q (module %q): %d tokens carry this label; token labels must be unique", s.cfg.TokenLabel, s.mod.path, len(found))
	}
}

// loginLocked logs in on the first session of c (login state covers every session of the token
// in this process).
func (s *Store) loginLocked(c *conn) error {
	m := s.mod
	p := m.ctx
	pinHash := sha256.Sum256([]byte(s.cfg.PIN))
	err := p.Login(c.sessions[0], pkcs11.CKU_USER, s.cfg.PIN)
	switch {
	case err == nil:
		if l := m.logins[c.slot]; l != nil {
			l.pinHash = pinHash // the earlier login had lapsed
		} else {
			m.logins[c.slot] = &login{pinHash: pinHash}
		}
	case hasCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		// The token did not look at this PIN: compare it with the one that logged in.
		l := m.logins[c.slot]
		if l == nil {
			// Logged in by code outside this package; nothing to compare with.
			m.logins[c.slot] = &login{pinHash: pinHash}
		} else if subtle.ConstantTimeCompare(l.pinHash[:], pinHash[:]) != 1 {
			return fmt.Errorf("hsm: token %q (module %q): this process is already logged in to the token with a different PIN: %w", s.cfg.TokenLabel, m.path, ErrPIN)
		}
	case hasCode(err, pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_LOCKED):
		return fmt.Errorf("hsm: token %q (module %q): login: %v: %w", s.cfg.TokenLabel, m.path, err, ErrPIN)
	case hasCode(err, pkcs11.CKR_USER_PIN_NOT_INITIALIZED):
		return fmt.Errorf("hsm: token %q (module %q): the user PIN is not initialised (initialise the token first)", s.cfg.TokenLabel, m.path)
	default:
		return s.unavailable("login: %v", err)
	}
	info, err := p.GetSessionInfo(c.sessions[0])
	if err != nil {
		return s.unavailable("reading the session state after login: %v", err)
	}
	if info.State != pkcs11.CKS_RW_USER_FUNCTIONS {
		return s.unavailable("session is in state %d after login, not a read/write user session", info.State)
	}
	return nil
}

// kekTemplate selects the KEK.
func (s *Store) kekTemplate() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, s.cfg.KEKLabel),
	}
}

// findKEK finds the KEK by label, generating it when create is set and there is none, and checks
// that it is fit for its purpose.
func (s *Store) findKEK(sh pkcs11.SessionHandle, create bool) (pkcs11.ObjectHandle, error) {
	p := s.mod.ctx
	hs, err := findAll(p, sh, s.kekTemplate())
	if err != nil {
		return 0, s.unavailable("searching for KEK %q: %v", s.cfg.KEKLabel, err)
	}
	switch {
	case len(hs) == 0 && !create:
		return 0, fmt.Errorf("hsm: token %q (module %q): no secret key labelled %q (`vigil keys import` creates it): %w", s.cfg.TokenLabel, s.mod.path, s.cfg.KEKLabel, ErrNoKEK)
	case len(hs) == 0:
		h, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, s.cfg.KEKLabel),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		})
		if err != nil {
			return 0, fmt.Errorf("hsm: token %q (module %q): generating KEK %q with CKM_AES_KEY_GEN: %w", s.cfg.TokenLabel, s.mod.path, s.cfg.KEKLabel, err)
		}
		s.log.Info("hsm: generated key-encryption key", "token", s.cfg.TokenLabel, "kek", s.cfg.KEKLabel)
		return h, s.checkKEK(sh, h)
	case len(hs) > 1:
		return 0, fmt.Errorf("hsm: token %q (module %q): %d secret keys are labelled %q; the KEK label must be unique", s.cfg.TokenLabel, s.mod.path, len(hs), s.cfg.KEKLabel)
	}
	return hs[0], s.checkKEK(sh, hs[0])
}

// checkKEK refuses a KEK that could leave the token or cannot do AES-256-GCM.
func (s *Store) checkKEK(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
	attrs, err := s.mod.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
	})
	if err != nil {
		return s.unavailable("reading the attributes of KEK %q: %v", s.cfg.KEKLabel, err)
	}
	bad := func(why string) error {
		return fmt.Errorf("hsm: token %q (module %q): KEK %q is unusable: %s", s.cfg.TokenLabel, s.mod.path, s.cfg.KEKLabel, why)
	}
	switch {
	case ulong(attrs[0].Value) != pkcs11.CKK_AES || ulong(attrs[1].Value) != 32:
		return bad("not an AES-256 key")
	case !boolean(attrs[2].Value):
		return bad("CKA_SENSITIVE is false")
	case boolean(attrs[3].Value):
		return bad("CKA_EXTRACTABLE is true")
	case !boolean(attrs[4].Value) || !boolean(attrs[5].Value):
		return bad("CKA_ENCRYPT or CKA_DECRYPT is false")
	}
	return nil
}

// checkKEKVisible fails with errGone unless a search on sh still finds c's KEK: a session that
// lost its login, or a token whose storage vanished, finds no private objects without failing,
// and an empty result must not pass for an empty store.
func (s *Store) checkKEKVisible(c *conn, sh pkcs11.SessionHandle) error {
	hs, err := findAll(s.mod.ctx, sh, s.kekTemplate())
	if err != nil { // whatever failed, the session is not in a state to trust
		return fmt.Errorf("hsm: token %q: searching for KEK %q: %w: %w", s.cfg.TokenLabel, s.cfg.KEKLabel, err, errGone)
	}
	for _, h := range hs {
		if h == c.kek {
			return nil
		}
	}
	return fmt.Errorf("hsm: token %q: KEK %q is no longer visible: %w", s.cfg.TokenLabel, s.cfg.KEKLabel, errGone)
}

// dropConnLocked logs out (when c is the last connection relying on the login) and closes c's
// sessions, unless they died with an earlier generation. s.mod.mu must be held.
func (s *Store) dropConnLocked(c *conn) {
	m := s.mod
	if c == nil || c.gen != m.generation() || !m.initialized {
		return
	}
	if l := m.logins[c.slot]; l != nil {
		l.users--
		if l.users <= 0 {
			_ = m.ctx.Logout(c.sessions[0])
			delete(m.logins, c.slot)
		}
	}
	for _, sh := range c.sessions {
		_ = m.ctx.CloseSession(sh)
	}
}

// unavailable builds an error wrapping keystore.ErrUnavailable that names the token and module.
func (s *Store) unavailable(format string, args ...any) error {
	return fmt.Errorf("hsm: token %q (module %q): %s: %w", s.cfg.TokenLabel, s.mod.path, fmt.Sprintf(format, args...), keystore.ErrUnavailable)
}

// boolean decodes a CK_BBOOL attribute value.
func boolean(b []byte) bool { return len(b) == 1 && b[0] != 0 }

// ulong decodes a CK_ULONG attribute value (native byte order and width).
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}

package hsm

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strings"
	"unicode"

	"github.com/miekg/pkcs11"

	"github.com/vigil-signer/vigil/keystore"
)

// Record layout (CKA_VALUE of a data object); see the package documentation.
const (
	recordVersion = 0x01
	ivLen         = 12
	tagBits       = 128
	secretLen     = 32
	sealedLen     = secretLen + tagBits/8           // 48
	recordLen     = 1 + ivLen + sealedLen           // 61
	aadPrefix     = "vigil-hsm-v1:"                 // 13 bytes, followed by the public key
	labelLen      = 2 + 2*len(keystore.PublicKey{}) // "0x" + 96 hex digits
)

// aad is the GCM associated data binding a record to its public key.
func aad(pub keystore.PublicKey) []byte { return append([]byte(aadPrefix), pub[:]...) }

// recordTemplate selects the data objects of this store, or with label one of them.
func (s *Store) recordTemplate(label string) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, s.cfg.Application),
	}
	if label != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	return t
}

// seal encrypts the 32-byte secret under the KEK inside the token, with associated data for pub,
// and returns the record. Put passes a secret and its own public key; tests pass others.
func (s *Store) seal(c *conn, sh pkcs11.SessionHandle, pub keystore.PublicKey, secret []byte) ([]byte, error) {
	iv := make([]byte, ivLen)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	params := pkcs11.NewGCMParams(iv, aad(pub), tagBits)
	defer params.Free()
	p := s.mod.ctx
	if err := p.EncryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, c.kek); err != nil {
		return nil, fmt.Errorf("hsm: token %q: key %s: CKM_AES_GCM encrypt init: %w", s.cfg.TokenLabel, pub, err)
	}
	ct, err := p.Encrypt(sh, secret)
	if err != nil {
		return nil, fmt.Errorf("hsm: token %q: key %s: CKM_AES_GCM encrypt: %w", s.cfg.TokenLabel, pub, err)
	}
	// Some modules ignore the caller's IV and write their own into the parameters.
	if got := params.IV(); len(got) == ivLen {
		iv = got
	}
	if len(ct) != sealedLen {
		return nil, fmt.Errorf("hsm: token %q: key %s: CKM_AES_GCM gave %d bytes, want %d", s.cfg.TokenLabel, pub, len(ct), sealedLen)
	}
	rec := make([]byte, 0, recordLen)
	rec = append(rec, recordVersion)
	rec = append(rec, iv...)
	return append(rec, ct...), nil
}

// openRecord reads one data object and decrypts it. It returns the item name and, once the label
// parsed, the public key even on failure. Errors for which isGone holds, and errObjectGone, are
// not per-object failures; every other error is.
func (s *Store) openRecord(c *conn, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (sk *keystore.SecretKey, item string, pub keystore.PublicKey, err error) {
	p := s.mod.ctx
	item = fmt.Sprintf("hsm:%s/object#%d", s.cfg.TokenLabel, h)
	attrs, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
	})
	if hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
		return nil, item, pub, errObjectGone
	}
	if err != nil {
		return nil, item, pub, fmt.Errorf("reading label and value: %w", err)
	}
	label, rec := string(attrs[0].Value), attrs[1].Value
	item = s.item(label)
	pub, err = parseLabel(label)
	if err != nil {
		return nil, item, keystore.PublicKey{}, err
	}
	if len(rec) != recordLen || rec[0] != recordVersion {
		return nil, item, pub, fmt.Errorf("%w: value is %d bytes with version %#x; want %d bytes with version %#x (version || 12-byte IV || 48-byte AES-GCM ciphertext)",
			keystore.ErrMalformed, len(rec), first(rec), recordLen, recordVersion)
	}
	params := pkcs11.NewGCMParams(rec[1:1+ivLen], aad(pub), tagBits)
	defer params.Free()
	if err := p.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, c.kek); err != nil {
		return nil, item, pub, fmt.Errorf("CKM_AES_GCM decrypt init: %w", err)
	}
	secret, err := p.Decrypt(sh, rec[1+ivLen:])
	defer clear(secret)
	switch {
	case isGone(err):
		return nil, item, pub, err
	case hasCode(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE):
		// SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR.
		return nil, item, pub, fmt.Errorf("ciphertext fails AES-GCM authentication under KEK %q (tampered, or sealed under another KEK or for another public key; %v): %w",
			s.cfg.KEKLabel, err, keystore.ErrWrongPassword)
	case err != nil:
		return nil, item, pub, fmt.Errorf("CKM_AES_GCM decrypt: %w", err)
	case len(secret) != secretLen:
		return nil, item, pub, fmt.Errorf("%w: decrypted secret has %d bytes, want %d", keystore.ErrMalformed, len(secret), secretLen)
	}
	sk, err = keystore.NewSecretKey(secret)
	if err != nil {
		return nil, item, pub, err
	}
	if got := sk.PublicKey(); subtle.ConstantTimeCompare(got[:], pub[:]) != 1 {
		sk.Zero()
		return nil, item, pub, fmt.Errorf("%w: the secret belongs to %s", keystore.ErrPubkeyMismatch, got)
	}
	return sk, item, pub, nil
}

// parseLabel parses a data object label, which must be the canonical form PublicKey.String().
func parseLabel(label string) (keystore.PublicKey, error) {
	if len(label) != labelLen || !strings.HasPrefix(label, "0x") {
		return keystore.PublicKey{}, fmt.Errorf("%w: label is not 0x and 96 lowercase hex digits of a public key", keystore.ErrMalformed)
	}
	pub, err := keystore.ParsePublicKey(label)
	if err != nil {
		return keystore.PublicKey{}, fmt.Errorf("%w: label: %v", keystore.ErrMalformed, err)
	}
	if pub.String() != label {
		return pub, fmt.Errorf("%w: label is not in lowercase hex", keystore.ErrMalformed)
	}
	return pub, nil
}

// item names an object in LoadErrors: "hsm:<token>/<label>", the label made printable and short.
func (s *Store) item(label string) string {
	const max = 120
	if len(label) > max {
		label = label[:max] + "…"
	}
	label = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, label)
	return "hsm:" + s.cfg.TokenLabel + "/" + label
}

func first(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

package hsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/vigil-signer/vigil/keystore"
	"github.com/vigil-signer/vigil/keystore/keystoretest"
)

var bg = context.Background()

func TestConformance(t *testing.T) {
	cfg := newToken(t)
	open(t, cfg) // creates the KEK; the handles below must find it
	cfg.CreateKEK = false
	keystoretest.RunStore(t, keystoretest.Backend{Open: func(t *testing.T) keystore.Store {
		cfg := cfg
		cfg.Logger = testLogger(t)
		return open(t, cfg)
	}})
}

// TestKEKNeverLeaves: the KEK is generated sensitive and non-extractable, its value cannot be
// read, and a stored record does not contain the secret.
func TestKEKNeverLeaves(t *testing.T) {
	s := open(t, newToken(t))
	sk := keystoretest.Key(t, 1)
	if err := s.Put(bg, sk); err != nil {
		t.Fatal(err)
	}
	p, sh := rawSession(t, s)

	kek, err := findAll(p, sh, s.kekTemplate())
	if err != nil || len(kek) != 1 {
		t.Fatalf("KEK search = %v, %v; want one", kek, err)
	}
	_, err = p.GetAttributeValue(sh, kek[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if !hasCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		t.Fatalf("reading the KEK value = %v; want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	attrs, err := p.GetAttributeValue(sh, kek[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !boolean(attrs[0].Value) || !boolean(attrs[1].Value) || boolean(attrs[2].Value) || !boolean(attrs[3].Value) ||
		boolean(attrs[4].Value) || ulong(attrs[5].Value) != 32 || !boolean(attrs[6].Value) {
		t.Fatalf("KEK attributes sensitive=%v always=%v extractable=%v never=%v wrap=%v len=%d private=%v",
			attrs[0].Value, attrs[1].Value, attrs[2].Value, attrs[3].Value, attrs[4].Value, ulong(attrs[5].Value), attrs[6].Value)
	}

	recs, err := findAll(p, sh, s.recordTemplate(sk.PublicKey().String()))
	if err != nil || len(recs) != 1 {
		t.Fatalf("record search = %v, %v; want one", recs, err)
	}
	attrs, err = p.GetAttributeValue(sh, recs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	secret := sk.Bytes()
	defer clear(secret)
	rec := attrs[0].Value
	if len(rec) != recordLen || rec[0] != recordVersion || bytes.Contains(rec, secret) || bytes.Contains(rec, secret[:8]) {
		t.Fatalf("record is %d bytes (version %#x) or contains the secret", len(rec), first(rec))
	}
	if !boolean(attrs[1].Value) {
		t.Fatal("record is not CKA_PRIVATE")
	}

	// A KEK that could leave the token is refused.
	_, err = p.CreateObject(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "weak-kek"),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, bytes.Repeat([]byte{7}, 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	cfg.KEKLabel, cfg.CreateKEK = "weak-kek", false
	if _, err := Open(bg, cfg); err == nil || !strings.Contains(err.Error(), "weak-kek") ||
		!strings.Contains(err.Error(), "CKA_SENSITIVE is false") {
		t.Fatalf("Open with an extractable KEK = %v; want a refusal naming it", err)
	}
}

// TestOpenErrors: each bad input gives a clear error naming the token or file, never the PIN.
func TestOpenErrors(t *testing.T) {
	cfg := newToken(t)
	cfg.Logger = nil
	first := open(t, cfg) // creates the KEK
	first.Close()         // no Store is logged in to the token now

	notADir := filepath.Join(t.TempDir(), "not-a-module.so")
	if err := os.WriteFile(notADir, []byte("not ELF"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		edit        func(*Config)
		is          error
		unavailable bool
		mention     string
	}{
		{"WrongPIN", func(c *Config) { c.PIN = wrongPIN }, ErrPIN, false, cfg.TokenLabel},
		{"MissingToken", func(c *Config) { c.TokenLabel = "no-such-token" }, keystore.ErrUnavailable, true, "no-such-token"},
		{"MissingModule", func(c *Config) { c.ModulePath = "/nonexistent/libpkcs11.so" }, nil, false, "/nonexistent/libpkcs11.so"},
		{"NotAModule", func(c *Config) { c.ModulePath = notADir }, nil, false, notADir},
		{"NoKEK", func(c *Config) { c.KEKLabel, c.CreateKEK = "other-kek", false }, ErrNoKEK, false, "other-kek"},
		{"NoModulePath", func(c *Config) { c.ModulePath = "" }, nil, false, "ModulePath"},
		{"NoPIN", func(c *Config) { c.PIN = "" }, nil, false, "PIN"},
		{"TooManySessions", func(c *Config) { c.Sessions = MaxSessions + 1 }, nil, false, "Sessions"},
		{"LongLabel", func(c *Config) { c.TokenLabel = strings.Repeat("x", 33) }, nil, false, "TokenLabel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.edit(&c)
			s, err := Open(bg, c)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error does not wrap %v", tc.is)
			}
			if got := errors.Is(err, keystore.ErrUnavailable); got != tc.unavailable {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v; want %v", got, tc.unavailable)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error does not name %q", tc.mention)
			}
			for _, pin := range []string{testPIN, wrongPIN} {
				if strings.Contains(err.Error(), pin) {
					t.Errorf("error contains a PIN")
				}
			}
		})
	}

	// The token does not check the PIN of a second login in one process: the Store does.
	t.Run("WrongPINWhileLoggedIn", func(t *testing.T) {
		open(t, cfg)
		c := cfg
		c.PIN = wrongPIN
		s, err := Open(bg, c)
		if err == nil {
			s.Close()
			t.Fatal("a wrong PIN was accepted because the token was already logged in")
		}
		if !errors.Is(err, ErrPIN) || strings.Contains(err.Error(), wrongPIN) || strings.Contains(err.Error(), testPIN) {
			t.Fatalf("Open = %v; want ErrPIN without the PIN", err)
		}
		again := open(t, cfg) // the right PIN still works alongside
		if _, err := again.List(bg); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLoadBadObjects: every damaged object is one LoadError naming it; the others still load.
func TestLoadBadObjects(t *testing.T) {
	s := open(t, newToken(t))
	keys := map[int]*keystore.SecretKey{}
	for i := range 8 {
		keys[i] = keystoretest.Key(t, 500+i)
	}
	for _, i := range []int{1, 2, 3} {
		if err := s.Put(bg, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	p, sh := rawSession(t, s)
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	label := func(i int) string { return keys[i].PublicKey().String() }
	record := func(i int) (pkcs11.ObjectHandle, []byte) {
		t.Helper()
		hs, err := findAll(p, sh, s.recordTemplate(label(i)))
		if err != nil || len(hs) != 1 {
			t.Fatalf("record of key %d: %v, %v", i, hs, err)
		}
		a, err := p.GetAttributeValue(sh, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			t.Fatal(err)
		}
		return hs[0], a[0].Value
	}
	create := func(app, label string, value []byte) {
		t.Helper()
		tmpl := s.recordTemplate(label)
		tmpl[3] = pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, app)
		if _, err := p.CreateObject(sh, append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_VALUE, value))); err != nil {
			t.Fatal(err)
		}
	}

	// Key 1: one ciphertext bit flipped.
	h, rec := record(1)
	if err := p.DestroyObject(sh, h); err != nil {
		t.Fatal(err)
	}
	tampered := slices.Clone(rec)
	tampered[1+ivLen+5] ^= 0x01
	create("vigil", label(1), tampered)
	// Key 4's label, key 5's secret sealed for key 4's public key: decrypts, then mismatches.
	secret := keys[5].Bytes()
	mis, err := s.seal(c, sh, keys[4].PublicKey(), secret)
	clear(secret)
	if err != nil {
		t.Fatal(err)
	}
	create("vigil", label(4), mis)
	// Key 2's record copied under key 6's label: the AAD binds it to key 2.
	_, rec2 := record(2)
	create("vigil", label(6), rec2)
	// Key 7's label with a truncated value; a label that is no public key.
	create("vigil", label(7), rec2[:20])
	create("vigil", "not-a-public-key", rec2)
	// Another application's object is not ours.
	create("someone-else", label(0), []byte("whatever"))

	res, err := s.Load(bg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []keystore.PublicKey
	for _, k := range res.Keys {
		got = append(got, k.PublicKey())
	}
	if want := []keystore.PublicKey{keys[2].PublicKey(), keys[3].PublicKey()}; len(got) != 2 || !slices.Contains(got, want[0]) || !slices.Contains(got, want[1]) {
		t.Fatalf("Load gave keys %v; want keys 2 and 3", got)
	}
	root := sha256.Sum256([]byte("root"))
	for _, k := range res.Keys {
		sig, _ := k.Sign(bg, root)
		if !keystore.Verify(k.PublicKey(), root[:], sig) {
			t.Fatalf("key %s does not sign", k.PublicKey())
		}
	}
	type wantErr struct {
		pub keystore.PublicKey
		is  error
	}
	want := map[string]wantErr{
		s.item(label(1)):           {keys[1].PublicKey(), keystore.ErrWrongPassword},
		s.item(label(4)):           {keys[4].PublicKey(), keystore.ErrPubkeyMismatch},
		s.item(label(6)):           {keys[6].PublicKey(), keystore.ErrWrongPassword},
		s.item(label(7)):           {keys[7].PublicKey(), keystore.ErrMalformed},
		s.item("not-a-public-key"): {keystore.PublicKey{}, keystore.ErrMalformed},
	}
	if len(res.Errors) != len(want) {
		t.Fatalf("Load errors: %v; want %d", res.Errors, len(want))
	}
	for _, le := range res.Errors {
		t.Log(le)
		w, ok := want[le.Item]
		if !ok {
			t.Fatalf("unexpected LoadError %v", le)
		}
		if le.Pubkey != w.pub || !errors.Is(le, w.is) {
			t.Errorf("%s: Pubkey %s, err %v; want %s and %v", le.Item, le.Pubkey, le.Err, w.pub, w.is)
		}
		if !strings.HasPrefix(le.Item, "hsm:"+s.cfg.TokenLabel+"/") || strings.Contains(le.Error(), testPIN) {
			t.Errorf("bad item or PIN in %v", le)
		}
	}
	// List names every parseable label without decrypting.
	pubs, err := s.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 6 { // keys 1, 2, 3, 4, 6, 7
		t.Fatalf("List = %d keys; want 6", len(pubs))
	}
	// A damaged key can be deleted and stored again.
	if err := s.Delete(bg, keys[1].PublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(bg, keys[1]); err != nil {
		t.Fatal(err)
	}
}

// TestDeletedBetweenListAndLoad: a key deleted after List, or while Load runs, is simply gone.
func TestDeletedBetweenListAndLoad(t *testing.T) {
	cfg := newToken(t)
	s := open(t, cfg)
	other := open(t, cfg)
	var sks []*keystore.SecretKey
	for i := range 4 {
		sks = append(sks, keystoretest.Key(t, 600+i))
		if err := s.Put(bg, sks[i]); err != nil {
			t.Fatal(err)
		}
	}
	if pubs, err := s.List(bg); err != nil || len(pubs) != 4 {
		t.Fatalf("List = %v, %v", pubs, err)
	}
	if err := other.Delete(bg, sks[0].PublicKey()); err != nil {
		t.Fatal(err)
	}
	res, err := s.Load(bg)
	if err != nil || len(res.Keys) != 3 || len(res.Errors) != 0 {
		t.Fatalf("Load after Delete = %d keys, %v, %v; want 3 keys", len(res.Keys), res.Errors, err)
	}

	// Destroyed between Load's search and its reads.
	p, sh := rawSession(t, other)
	testHookFound = func() {
		hs, err := findAll(p, sh, s.recordTemplate(sks[1].PublicKey().String()))
		if err != nil || len(hs) != 1 {
			t.Errorf("hook search: %v, %v", hs, err)
			return
		}
		if err := p.DestroyObject(sh, hs[0]); err != nil {
			t.Errorf("hook destroy: %v", err)
		}
	}
	t.Cleanup(func() { testHookFound = nil })
	res, err = s.Load(bg)
	testHookFound = nil
	if err != nil || len(res.Keys) != 2 || len(res.Errors) != 0 {
		t.Fatalf("Load with a key destroyed mid-way = %d keys, %v, %v; want 2 keys", len(res.Keys), res.Errors, err)
	}
	for _, k := range res.Keys {
		if k.PublicKey() == sks[1].PublicKey() || k.PublicKey() == sks[0].PublicKey() {
			t.Fatalf("Load returned deleted key %s", k.PublicKey())
		}
	}
}

// TestRacingPutsAcrossStores: Puts of one key through different Stores of the process race to
// exactly one success.
func TestRacingPutsAcrossStores(t *testing.T) {
	cfg := newToken(t)
	stores := []*Store{open(t, cfg), open(t, cfg), open(t, cfg)}
	sk := keystoretest.Key(t, 720)
	var wg sync.WaitGroup
	errs := make([]error, 9)
	for i := range errs {
		wg.Go(func() { errs[i] = stores[i%3].Put(bg, sk) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, keystore.ErrDuplicate):
			t.Fatalf("racing Put: %v", err)
		}
	}
	p, sh := rawSession(t, stores[0])
	hs, err := findAll(p, sh, stores[0].recordTemplate(sk.PublicKey().String()))
	if won != 1 || err != nil || len(hs) != 1 {
		t.Fatalf("%d Puts succeeded, %d objects (%v); want exactly one of each", won, len(hs), err)
	}
}

// TestDuplicateObjects: two objects for one key (a cross-process Put race) load and list once and
// are deleted together.
func TestDuplicateObjects(t *testing.T) {
	s := open(t, newToken(t))
	sk := keystoretest.Key(t, 700)
	if err := s.Put(bg, sk); err != nil {
		t.Fatal(err)
	}
	p, sh := rawSession(t, s)
	hs, err := findAll(p, sh, s.recordTemplate(sk.PublicKey().String()))
	if err != nil || len(hs) != 1 {
		t.Fatal(hs, err)
	}
	if _, err := p.CopyObject(sh, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, sk.PublicKey().String())}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Load(bg)
	if err != nil || len(res.Keys) != 1 || len(res.Errors) != 0 {
		t.Fatalf("Load = %d keys, %v, %v; want 1 key", len(res.Keys), res.Errors, err)
	}
	if pubs, err := s.List(bg); err != nil || len(pubs) != 1 {
		t.Fatalf("List = %v, %v; want 1 key", pubs, err)
	}
	if err := s.Delete(bg, sk.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if pubs, err := s.List(bg); err != nil || len(pubs) != 0 {
		t.Fatalf("List after Delete = %v, %v; want none", pubs, err)
	}
}

// TestReconnect: the token going away underneath is survived without reopening the Store.
func TestReconnect(t *testing.T) {
	cfg := newToken(t)
	s := open(t, cfg)
	other := open(t, cfg) // a second Store sharing the module and the login
	n := 0
	put := func(st *Store) error {
		n++
		return st.Put(bg, keystoretest.Key(t, 800+n))
	}
	expectKeys := func(st *Store) {
		t.Helper()
		res, err := st.Load(bg)
		if err != nil || len(res.Errors) != 0 || len(res.Keys) != n {
			t.Fatalf("Load = %d keys, %v, %v; want %d keys", len(res.Keys), res.Errors, err, n)
		}
	}
	for range 3 {
		if err := put(s); err != nil {
			t.Fatal(err)
		}
	}
	expectKeys(s)

	t.Run("FinalizedUnderneath", func(t *testing.T) {
		if err := s.mod.ctx.Finalize(); err != nil {
			t.Fatal(err)
		}
		expectKeys(s)
		expectKeys(other) // reopens its sessions in the new generation without another reset
		if err := put(other); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SessionsClosedUnderneath", func(t *testing.T) {
		s.mu.Lock()
		slot := s.conn.slot
		s.mu.Unlock()
		if err := s.mod.ctx.CloseAllSessions(slot); err != nil {
			t.Fatal(err)
		}
		if err := put(s); err != nil {
			t.Fatalf("Put after CloseAllSessions: %v", err)
		}
		expectKeys(other)
	})
	t.Run("LoggedOutUnderneath", func(t *testing.T) {
		// Without the login a search silently finds no private objects: Load must not report an
		// empty store.
		s.mu.Lock()
		sh := s.conn.sessions[0]
		s.mu.Unlock()
		if err := s.mod.ctx.Logout(sh); err != nil {
			t.Fatal(err)
		}
		expectKeys(s)
		if pubs, err := other.List(bg); err != nil || len(pubs) != n {
			t.Fatalf("List = %d, %v; want %d", len(pubs), err, n)
		}
	})
	t.Run("TokenRemovedAndRestored", func(t *testing.T) {
		away := softhsm.tokens + ".away"
		if err := os.Rename(softhsm.tokens, away); err != nil {
			t.Fatal(err)
		}
		restored := false
		restore := func() {
			if !restored {
				restored = true
				if err := os.Rename(away, softhsm.tokens); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Cleanup(restore)
		res, err := s.Load(bg)
		if !errors.Is(err, keystore.ErrUnavailable) || len(res.Keys) != 0 {
			t.Fatalf("Load without the token = %d keys, %v; want ErrUnavailable", len(res.Keys), err)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), cfg.TokenLabel) || strings.Contains(err.Error(), testPIN) {
			t.Fatalf("error %q should name the token and not the PIN", err)
		}
		if err := put(other); !errors.Is(err, keystore.ErrUnavailable) {
			t.Fatalf("Put without the token = %v; want ErrUnavailable", err)
		}
		n-- // that Put stored nothing
		if _, err := s.List(bg); !errors.Is(err, keystore.ErrUnavailable) {
			t.Fatalf("List without the token = %v; want ErrUnavailable", err)
		}
		restore()
		expectKeys(s)
		if err := put(other); err != nil {
			t.Fatalf("Put after the token came back: %v", err)
		}
		expectKeys(s)
	})
}

// TestConcurrentReconnect: Loads and Puts from two Stores keep working while the token state is
// repeatedly lost between their calls (the module finalised, or the login dropped), each reconnect
// re-initialising the module under the other Store's operations. Every operation either succeeds
// with a complete result or reports ErrUnavailable; none returns a partial or empty key set.
//
// The state is lost with the module's ops lock held, i.e. between PKCS#11 calls: SoftHSM2's
// C_Logout racing a C_CreateObject in another thread can fail the creation with
// CKR_GENERAL_ERROR while the login still looks intact, which no caller could tell apart from a
// real failure, and nothing but foreign code in the process can log the token out mid-call.
func TestConcurrentReconnect(t *testing.T) {
	cfg := newToken(t)
	a, b := open(t, cfg), open(t, cfg)
	const initial = 20
	for i := range initial {
		if err := a.Put(bg, keystoretest.Key(t, 1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	p := a.mod.ctx
	a.mu.Lock()
	slot := a.conn.slot
	a.mu.Unlock()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok, unavailable, putsTried, putsDone atomic.Int64
	progress := make(chan struct{}, 64) // an operation finished (paces the faults by events)
	for g := range 6 {
		st := []*Store{a, b}[g%2]
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if g == 0 && i%5 == 0 {
					err = st.Put(bg, keystoretest.Key(t, 2000+int(putsTried.Add(1))))
					if err == nil {
						putsDone.Add(1)
					}
				} else {
					var res keystore.LoadResult
					res, err = st.Load(bg)
					if err == nil && (len(res.Errors) != 0 || len(res.Keys) < initial) {
						t.Errorf("Load = %d keys, %v; want at least %d and no errors", len(res.Keys), res.Errors, initial)
					}
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, keystore.ErrUnavailable):
					unavailable.Add(1)
				default:
					t.Errorf("operation during reconnects: %v", err)
				}
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	for i := range 10 {
		a.mod.ops.Lock()
		if i%2 == 0 {
			_ = p.Finalize() // the module forgot everything: sessions, login
		} else {
			// A logged-out token hides its private objects: the next search notices. (Fails
			// harmlessly when nothing reconnected since the last Finalize.)
			if sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION); err == nil {
				_ = p.Logout(sh) // the login is per token: every session loses it
				_ = p.CloseSession(sh)
			}
		}
		a.mod.ops.Unlock()
		// Let the workers run into the fault: six more operations before the next one.
		for range 6 {
			select {
			case <-progress:
			case <-time.After(30 * time.Second):
				t.Fatal("no operation finished after a fault")
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d operations succeeded, %d reported ErrUnavailable; %d of %d Puts succeeded",
		ok.Load(), unavailable.Load(), putsDone.Load(), putsTried.Load())
	for _, st := range []*Store{a, b} {
		res, err := st.Load(bg)
		n := int64(len(res.Keys))
		if err != nil || len(res.Errors) != 0 || n < initial+putsDone.Load() || n > initial+putsTried.Load() {
			t.Fatalf("final Load = %d keys, %v, %v; want %d to %d keys", n, res.Errors, err,
				initial+putsDone.Load(), initial+putsTried.Load())
		}
	}
}

// TestPINChangedWhileRunning: a reconnect whose login is refused does not present the PIN again.
func TestPINChangedWhileRunning(t *testing.T) {
	s := open(t, newToken(t))
	if err := s.Put(bg, keystoretest.Key(t, 950)); err != nil {
		t.Fatal(err)
	}
	p, sh := rawSession(t, s)
	if err := p.SetPIN(sh, testPIN, "changed-pin-4410"); err != nil {
		t.Fatalf("SetPIN: %v", err)
	}
	if err := p.Finalize(); err != nil { // force a reconnect, hence a new login
		t.Fatal(err)
	}
	_, err := s.Load(bg)
	if !errors.Is(err, ErrPIN) || errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Load after the PIN changed = %v; want ErrPIN", err)
	}
	_, err2 := s.Load(bg)
	if !errors.Is(err2, ErrPIN) || err2.Error() != err.Error() {
		t.Fatalf("second Load = %v; want the same ErrPIN", err2)
	}
	for _, e := range []error{err, err2} {
		if strings.Contains(e.Error(), testPIN) || strings.Contains(e.Error(), "changed-pin-4410") {
			t.Fatal("error contains a PIN")
		}
	}
	t.Log(err)
}

// TestCanceled: a cancelled context stops an operation without touching the token.
func TestCanceled(t *testing.T) {
	s := open(t, newToken(t))
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load = %v; want context.Canceled", err)
	}
	if err := s.Put(ctx, keystoretest.Key(t, 960)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v; want context.Canceled", err)
	}
	if pubs, err := s.List(bg); err != nil || len(pubs) != 0 {
		t.Fatalf("List = %v, %v; want nothing stored", pubs, err)
	}
}

// TestClose: Close is idempotent and later operations fail cleanly.
func TestClose(t *testing.T) {
	s := open(t, newToken(t))
	s.Close()
	s.Close()
	if _, err := s.Load(bg); !errors.Is(err, errClosed) {
		t.Fatalf("Load after Close = %v", err)
	}
	if err := s.Put(bg, keystoretest.Key(t, 900)); !errors.Is(err, errClosed) {
		t.Fatalf("Put after Close = %v", err)
	}
}

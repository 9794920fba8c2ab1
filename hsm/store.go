package hsm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"

	"github.com/vigil-signer/vigil/keystore"
)

// Store is the PKCS#11 key store on one token. See the package documentation for the format,
// concurrency and reconnect rules.
type Store struct {
	cfg Config // defaults applied; holds the PIN for re-login
	log *slog.Logger
	mod *module

	// life: operations hold it shared, Close exclusively, so Close waits for them.
	life   sync.RWMutex
	closed bool

	// writeMu serialises Put and Delete of every Store of the process on this token, making
	// check-then-create atomic within the process.
	writeMu *tokenWrites

	// mu guards conn and brokenGen and serialises reconnects of this Store.
	mu   sync.Mutex
	conn *conn // nil after a failed reconnect
	// brokenGen is the module generation in which the last reconnect failed.
	brokenGen uint64
	// pinErr is set when a reconnect's login was refused: the Store then fails every operation
	// with it instead of presenting the PIN again, which could lock the token.
	pinErr error
}

var _ keystore.Store = (*Store)(nil)

// testHookFound, when set by tests, runs in Load between the search and the reads.
var testHookFound func()

// Open loads the module (shared with other Stores of the process on the same file), finds the
// token by cfg.TokenLabel, opens the session pool, logs in and finds the KEK, generating it when
// cfg.CreateKEK is set and there is none. Errors name the token label and module path, never the
// PIN; see the package documentation for which wrap keystore.ErrUnavailable, ErrPIN and ErrNoKEK.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	mod, err := acquireModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.Logger, mod: mod, writeMu: mod.writeLock(cfg.TokenLabel)}
	s.mu.Lock()
	// Exclusive, like a reconnect: a login must not happen under another Store's operation (see
	// Store.confirm).
	mod.ops.Lock()
	mod.mu.Lock()
	c, err := s.connectLocked(ctx, cfg.CreateKEK)
	mod.mu.Unlock()
	mod.ops.Unlock()
	s.conn = c
	s.mu.Unlock()
	if err != nil {
		mod.release()
		return nil, err
	}
	return s, nil
}

// Close logs out (when no other Store of the process uses the token), closes the sessions and,
// with the last Store on the module, finalises and unloads it. It waits for operations in flight
// and is safe to call twice; the Store cannot be used afterwards.
func (s *Store) Close() {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mod.mu.Lock()
	s.dropConnLocked(c)
	s.mod.mu.Unlock()
	s.mu.Unlock()
	s.mod.release()
}

// Name implements keystore.Source: "hsm" for every token (the token label is in LoadError items).
func (s *Store) Name() string { return "hsm" }

// do runs fn on the current connection and, when fn fails because the session or token went
// away, reconnects and runs fn once more. A retry that fails only because another Store
// re-initialised the shared module meanwhile (its connection is of an older generation) earns
// one more attempt; a fresh connection failing means the token is unavailable.
func (s *Store) do(ctx context.Context, op string, fn func(*conn) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	c, pinErr := s.conn, s.pinErr
	s.mu.Unlock()
	if pinErr != nil {
		return pinErr
	}
	var err error
	if c != nil {
		if err = s.run(c, fn); !isGone(err) {
			return err
		}
		s.log.Warn("hsm: lost the token, reconnecting", "token", s.cfg.TokenLabel, "op", op, "err", err)
	}
	// No connection (the last reconnect failed) or it just died: reconnect and try again.
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c, err = s.reconnect(ctx, c, op); err != nil {
			s.log.Warn("hsm: reconnect failed", "token", s.cfg.TokenLabel, "op", op, "err", err)
			return err
		}
		if err = s.run(c, fn); !isGone(err) {
			return err
		}
		if attempt > 0 || c.gen == s.mod.generation() {
			return fmt.Errorf("hsm: token %q (module %q): %s failed after reconnecting: %v: %w", s.cfg.TokenLabel, s.mod.path, op, err, keystore.ErrUnavailable)
		}
	}
}

// run runs fn with the module's ops lock held shared, so that no re-initialisation runs under it.
// A connection of an older generation is refused (errGone) without a call: after C_Initialize the
// module hands out session and object handles again, so its handles may name another connection's
// sessions.
func (s *Store) run(c *conn, fn func(*conn) error) error {
	s.mod.ops.RLock()
	defer s.mod.ops.RUnlock()
	if c.gen != s.mod.generation() {
		return fmt.Errorf("hsm: token %q: the module was re-initialised: %w", s.cfg.TokenLabel, errGone)
	}
	return fn(c)
}

// reconnect replaces the connection old (nil: none) with a new one, re-initialising the module
// first unless another Store already did since old was made. When another goroutine already
// replaced old, its connection is used.
func (s *Store) reconnect(ctx context.Context, old *conn, op string) (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn != old {
		return s.conn, nil
	}
	if s.pinErr != nil {
		return nil, s.pinErr
	}
	m := s.mod
	m.ops.Lock() // waits for the operations of every Store on the module
	defer m.ops.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := s.brokenGen
	if old != nil {
		seen = old.gen
	}
	if s.conn != nil { // == old: close its sessions before replacing it
		s.dropConnLocked(s.conn)
		s.conn = nil
	}
	if m.generation() == seen || !m.initialized {
		if err := m.resetLocked(); err != nil {
			s.brokenGen = m.generation()
			return nil, s.unavailable("%s: re-initialising the module: %v", op, err)
		}
	}
	c, err := s.connectLocked(ctx, false)
	if err != nil {
		s.brokenGen = m.generation()
		if errors.Is(err, ErrPIN) {
			s.pinErr = fmt.Errorf("%w (the PIN is not presented again until the Store is reopened)", err)
			return nil, s.pinErr
		}
		if isGone(err) && !errors.Is(err, keystore.ErrUnavailable) {
			err = s.unavailable("%s: reconnecting: %v", op, err)
		}
		return nil, err
	}
	s.conn = c
	s.log.Info("hsm: reconnected", "token", s.cfg.TokenLabel, "op", op)
	return c, nil
}

// Put implements keystore.Store: it seals sk under the KEK and stores the record as a token
// object labelled with the public key; ErrDuplicate when that label exists.
func (s *Store) Put(ctx context.Context, sk *keystore.SecretKey) error {
	pub := sk.PublicKey()
	label := pub.String()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.do(ctx, "put", func(c *conn) error {
		sh, err := c.get(ctx)
		if err != nil {
			return err
		}
		defer c.put(sh)
		// A search that lost the login finds nothing, but creating a private object then fails,
		// and failures are confirmed against the KEK before they are believed.
		if s.writeMu.labels == nil {
			labels, err := s.recordLabels(ctx, c, sh)
			if err != nil {
				return err
			}
			s.writeMu.labels = labels
		}
		if s.writeMu.labels[label] {
			return fmt.Errorf("hsm: token %q: key %s: %w", s.cfg.TokenLabel, pub, keystore.ErrDuplicate)
		}
		secret := sk.Bytes()
		rec, err := s.seal(c, sh, pub, secret)
		clear(secret)
		if err == nil {
			err = s.create(sh, label, rec)
		}
		if err != nil {
			err = fmt.Errorf("hsm: token %q: key %s: creating the data object: %w", s.cfg.TokenLabel, pub, err)
		} else {
			s.writeMu.labels[label] = true
		}
		return s.confirm(c, sh, err)
	})
}

// recordLabels reads the labels of every record on the token (one search).
func (s *Store) recordLabels(ctx context.Context, c *conn, sh pkcs11.SessionHandle) (map[string]bool, error) {
	hs, err := s.findRecords(c, sh)
	if err != nil {
		return nil, err
	}
	labels := make(map[string]bool, len(hs))
	for _, h := range hs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		attrs, err := s.mod.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
		if hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			continue
		}
		if err != nil {
			return nil, s.confirm(c, sh, fmt.Errorf("hsm: token %q: reading a label: %w", s.cfg.TokenLabel, err))
		}
		labels[string(attrs[0].Value)] = true
	}
	return labels, nil
}

// create creates the data object for label. SoftHSM2's file backend (2.6) re-indexes a token
// directory without holding its lock (OSToken::index), so a C_CreateObject racing searches in
// other threads can see its new object invalidated and fail with CKR_GENERAL_ERROR. After that
// error create searches for the object (Put holds writeMu, so only this call can have made it)
// and tries once more when it is absent.
func (s *Store) create(sh pkcs11.SessionHandle, label string, rec []byte) error {
	p := s.mod.ctx
	tmpl := append(s.recordTemplate(label), pkcs11.NewAttribute(pkcs11.CKA_VALUE, rec))
	_, err := p.CreateObject(sh, tmpl)
	if !hasCode(err, pkcs11.CKR_GENERAL_ERROR) {
		return err
	}
	hs, ferr := findAll(p, sh, s.recordTemplate(label))
	switch {
	case ferr != nil:
		return err
	case len(hs) > 0:
		return nil // created after all
	}
	s.log.Debug("hsm: C_CreateObject failed with CKR_GENERAL_ERROR, retrying once", "token", s.cfg.TokenLabel, "label", label)
	_, err = p.CreateObject(sh, tmpl)
	return err
}

// confirm returns err, unless the KEK is no longer visible on sh: then the failure is blamed on
// the lost login or token (errGone), and the operation is retried after a reconnect. Operations
// call it after a failure, and Load and List after success too, because a search that lost the
// login midway finds nothing without failing.
func (s *Store) confirm(c *conn, sh pkcs11.SessionHandle, err error) error {
	if isGone(err) {
		return err
	}
	if gone := s.checkKEKVisible(c, sh); gone != nil {
		return gone
	}
	return err
}

// Delete implements keystore.Store: it destroys every data object labelled with pub.
func (s *Store) Delete(ctx context.Context, pub keystore.PublicKey) error {
	label := pub.String()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.do(ctx, "delete", func(c *conn) error {
		sh, err := c.get(ctx)
		if err != nil {
			return err
		}
		defer c.put(sh)
		// A search that lost the login finds nothing: ErrNotFound is confirmed against the KEK
		// before it is believed.
		p := s.mod.ctx
		hs, err := findAll(p, sh, s.recordTemplate(label))
		if err != nil {
			return s.confirm(c, sh, fmt.Errorf("hsm: token %q: key %s: search: %w", s.cfg.TokenLabel, pub, err))
		}
		destroyed := 0
		for _, h := range hs {
			err := p.DestroyObject(sh, h)
			switch {
			case hasCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID): // destroyed meanwhile
			case err != nil:
				return s.confirm(c, sh, fmt.Errorf("hsm: token %q: key %s: destroying the data object: %w", s.cfg.TokenLabel, pub, err))
			default:
				destroyed++
			}
		}
		if s.writeMu.labels != nil {
			delete(s.writeMu.labels, label)
		}
		if destroyed == 0 {
			return s.confirm(c, sh, fmt.Errorf("hsm: token %q: key %s: %w", s.cfg.TokenLabel, pub, keystore.ErrNotFound))
		}
		return nil
	})
}

// List implements keystore.Store: the public keys named by the data objects' labels, sorted,
// without decrypting anything. Objects whose label is not a public key are left to Load to report.
func (s *Store) List(ctx context.Context) ([]keystore.PublicKey, error) {
	var out []keystore.PublicKey
	err := s.do(ctx, "list", func(c *conn) error {
		out = nil
		sh, err := c.get(ctx)
		if err != nil {
			return err
		}
		defer c.put(sh)
		labels, err := s.recordLabels(ctx, c, sh)
		if err != nil {
			return err
		}
		for label := range labels {
			if pub, err := parseLabel(label); err == nil {
				out = append(out, pub)
			}
		}
		return s.confirm(c, sh, nil)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b keystore.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// findRecords returns the handles of every data object of the store, after checking that the
// search can see private objects at all.
func (s *Store) findRecords(c *conn, sh pkcs11.SessionHandle) ([]pkcs11.ObjectHandle, error) {
	if err := s.checkKEKVisible(c, sh); err != nil {
		return nil, err
	}
	hs, err := findAll(s.mod.ctx, sh, s.recordTemplate(""))
	if err != nil {
		return nil, s.confirm(c, sh, fmt.Errorf("hsm: token %q: searching for data objects: %w", s.cfg.TokenLabel, err))
	}
	return hs, nil
}

// Load implements keystore.Source: one search over the store's data objects, then every object
// read and decrypted inside the token, in parallel over the session pool. Objects that fail are
// reported in LoadResult.Errors; objects destroyed meanwhile are skipped.
func (s *Store) Load(ctx context.Context) (keystore.LoadResult, error) {
	var res keystore.LoadResult
	err := s.do(ctx, "load", func(c *conn) error {
		var err error
		res, err = s.load(ctx, c)
		return err
	})
	if err != nil {
		return keystore.LoadResult{}, err
	}
	return res, nil
}

func (s *Store) load(ctx context.Context, c *conn) (keystore.LoadResult, error) {
	sh, err := c.get(ctx)
	if err != nil {
		return keystore.LoadResult{}, err
	}
	hs, err := s.findRecords(c, sh)
	c.put(sh)
	if err != nil {
		return keystore.LoadResult{}, err
	}
	if testHookFound != nil {
		testHookFound()
	}
	type result struct {
		sk  *keystore.SecretKey
		err *keystore.LoadError
	}
	results := make([]result, len(hs))
	var (
		next     atomic.Int64
		stop     atomic.Bool
		failOnce sync.Once
		fail     error
		wg       sync.WaitGroup
	)
	abort := func(err error) {
		failOnce.Do(func() { fail = err })
		stop.Store(true)
	}
	for range min(len(hs), cap(c.pool)) {
		wg.Go(func() {
			sh, err := c.get(ctx)
			if err != nil {
				abort(err)
				return
			}
			defer c.put(sh)
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(hs) {
					return
				}
				if err := ctx.Err(); err != nil {
					abort(err)
					return
				}
				sk, item, pub, err := s.openRecord(c, sh, hs[i])
				switch {
				case err == nil:
					results[i].sk = sk
				case errors.Is(err, errObjectGone):
				case isGone(err):
					abort(fmt.Errorf("hsm: token %q: %s: %w", s.cfg.TokenLabel, item, err))
					return
				default:
					results[i].err = &keystore.LoadError{Item: item, Pubkey: pub, Err: err}
				}
			}
		})
	}
	wg.Wait()
	if fail == nil {
		// Objects that vanished or failed to read because the login was lost midway must not
		// pass for deleted or damaged ones.
		if sh, err := c.get(ctx); err != nil {
			fail = err
		} else {
			fail = s.confirm(c, sh, nil)
			c.put(sh)
		}
	}
	if fail != nil {
		for _, r := range results {
			if r.sk != nil {
				r.sk.Zero()
			}
		}
		return keystore.LoadResult{}, fail
	}
	var res keystore.LoadResult
	seen := make(map[keystore.PublicKey]bool, len(hs))
	for _, r := range results {
		switch {
		case r.err != nil:
			res.Errors = append(res.Errors, *r.err)
		case r.sk == nil:
		case seen[r.sk.PublicKey()]:
			r.sk.Zero() // a second object for one key holds the same secret
		default:
			seen[r.sk.PublicKey()] = true
			res.Keys = append(res.Keys, keystore.NewLocalKey(r.sk))
		}
	}
	slices.SortFunc(res.Keys, func(a, b keystore.Key) int {
		pa, pb := a.PublicKey(), b.PublicKey()
		return bytes.Compare(pa[:], pb[:])
	})
	slices.SortFunc(res.Errors, func(a, b keystore.LoadError) int { return cmp.Compare(a.Item, b.Item) })
	return res, nil
}

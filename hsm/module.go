package hsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"

	"github.com/vigil-signer/vigil/keystore"
)

// module is one loaded PKCS#11 library, shared by every Store of the process that names the same
// file: C_Initialize and login state are per process, so two independent handles would finalise
// or log out each other.
type module struct {
	path string // as configured, for messages
	key  string // registry key: the resolved path
	ctx  *pkcs11.Ctx

	refs int // guarded by registry.mu

	// ops is held shared by every operation of every Store while it makes PKCS#11 calls, and
	// exclusively by a re-initialisation: C_Finalize must not run while other threads are inside
	// the library. Lock order: Store.mu, then ops, then mu.
	ops sync.RWMutex
	// mu serialises re-initialisation and connection set-up (finding the token, opening
	// sessions, logging in), and guards the fields below.
	mu sync.Mutex
	// gen counts re-initialisations; a connection made in an older generation is dead, and its
	// session and object handles may have been handed out again by the new generation. Written
	// with ops held exclusively and mu held, so it is stable for any holder of either.
	gen atomic.Uint64
	// initialized: the last C_Initialize succeeded (or found the library initialised).
	initialized bool
	// external: C_Initialize said CKR_CRYPTOKI_ALREADY_INITIALIZED, so other code in the process
	// owns the initialisation and the last Close must not finalise it.
	external bool
	// logins records, per slot, the login this package made in the current generation.
	logins map[uint]*login
	// writeLocks serialise Put and Delete of every Store of the process on one token.
	writeLocks map[string]*tokenWrites
}

// tokenWrites is the per-token write state shared by the Stores of this process.
type tokenWrites struct {
	sync.Mutex
	// labels indexes the record labels on the token (nil until the first Put builds it), so that
	// Put's duplicate check does not search the token: PKCS#11 has no index, and SoftHSM2 scans
	// every object on every search, which made a 10,000-key import quadratic. Put and Delete of
	// this process keep it current; objects another process adds meanwhile are not in it, and a
	// racing Put then leaves two records of one key, which Load and List report once and Delete
	// removes together (the same outcome as two processes racing without the index).
	labels map[string]bool
}

// writeLock returns the write state of the token labelled token.
func (m *module) writeLock(token string) *tokenWrites {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writeLocks[token] == nil {
		m.writeLocks[token] = new(tokenWrites)
	}
	return m.writeLocks[token]
}

// login is this process's login to one token.
type login struct {
	pinHash [32]byte // SHA-256 of the PIN the login used, to refuse a different one later
	users   int      // connections relying on it
}

var registry struct {
	mu   sync.Mutex
	mods map[string]*module
}

// acquireModule returns the shared module for path, loading and initialising it on first use.
func acquireModule(path string) (*module, error) {
	key := path
	if abs, err := filepath.Abs(path); err == nil {
		key = abs
	}
	if real, err := filepath.EvalSymlinks(key); err == nil {
		key = real
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if m := registry.mods[key]; m != nil {
		m.refs++
		return m, nil
	}
	if st, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hsm: PKCS#11 module %q does not exist", path)
	} else if err != nil {
		return nil, fmt.Errorf("hsm: PKCS#11 module %q: %w", path, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("hsm: PKCS#11 module %q is a directory", path)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("hsm: PKCS#11 module %q cannot be loaded (not a shared library exporting C_GetFunctionList, or one of its dependencies is missing)", path)
	}
	m := &module{path: path, key: key, ctx: ctx, logins: map[uint]*login{}, writeLocks: map[string]*tokenWrites{}}
	m.mu.Lock()
	err := m.initializeLocked()
	m.mu.Unlock()
	if err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("hsm: PKCS#11 module %q: C_Initialize: %v: %w", path, err, keystore.ErrUnavailable)
	}
	if registry.mods == nil {
		registry.mods = map[string]*module{}
	}
	m.refs = 1
	registry.mods[key] = m
	return m, nil
}

// release drops one reference; the last one logs out (already done by the connections),
// finalises the library unless other code initialised it, and unloads it.
func (m *module) release() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(registry.mods, m.key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.initialized && !m.external {
		_ = m.ctx.Finalize()
	}
	m.initialized = false
	m.ctx.Destroy()
}

// initializeLocked calls C_Initialize. m.mu must be held.
func (m *module) initializeLocked() error {
	err := m.ctx.Initialize()
	switch {
	case err == nil:
		m.initialized, m.external = true, false
	case hasCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED):
		m.initialized, m.external = true, true
		err = nil
	default:
		m.initialized = false
	}
	return err
}

// resetLocked finalises and re-initialises the library, starting a new generation: every session
// and login of the old one is gone. m.mu must be held.
func (m *module) resetLocked() error {
	m.gen.Add(1)
	m.logins = map[uint]*login{}
	_ = m.ctx.Finalize() // CKR_CRYPTOKI_NOT_INITIALIZED when someone already did
	m.initialized = false
	return m.initializeLocked()
}

// generation returns the current generation.
func (m *module) generation() uint64 { return m.gen.Load() }

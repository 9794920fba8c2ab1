package keyset

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-signer/vigil/keystore"
)

// fakeSource is a hand-written key source whose next Load outcome the test sets.
type fakeSource struct {
	name  string
	mu    sync.Mutex
	keys  []keystore.Key
	errs  []keystore.LoadError
	err   error
	block chan struct{} // when set, Load waits on it
	loads int
}

func (f *fakeSource) Name() string { return f.name }
func (f *fakeSource) Load(ctx context.Context) (keystore.LoadResult, error) {
	f.mu.Lock()
	block := f.block
	f.loads++
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return keystore.LoadResult{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return keystore.LoadResult{}, f.err
	}
	// A real source builds new key objects at every load.
	out := make([]keystore.Key, len(f.keys))
	for i, k := range f.keys {
		out[i] = &wrappedKey{k}
	}
	return keystore.LoadResult{Keys: out, Errors: f.errs}, nil
}

func (f *fakeSource) set(keys []keystore.Key, errs []keystore.LoadError, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys, f.errs, f.err = keys, errs, err
}

type wrappedKey struct{ keystore.Key }

func testKey(t *testing.T, i int) keystore.Key {
	t.Helper()
	seed := sha256.Sum256(fmt.Appendf(nil, "reload test %d", i))
	seed[0] &= 0x3f
	sk, err := keystore.NewSecretKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return keystore.NewLocalKey(sk)
}

func has(s *Set, ks ...keystore.Key) bool {
	for _, k := range ks {
		if _, ok := s.Get(k.PublicKey()); !ok {
			return false
		}
	}
	return true
}

func mustLoad(t *testing.T, l *Loader) ReloadStatus {
	t.Helper()
	st, err := l.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestReloadAddsAndRemoves(t *testing.T) {
	a, b, c := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	src := &fakeSource{name: "dir"}
	src.set([]keystore.Key{a, b}, nil, nil)
	set := New(nil)
	var published []SourceReport
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Keys: set, Publish: func(r []SourceReport) { published = r }})
	if st := l.Status(); st.State != ReloadIdle {
		t.Fatalf("state before any load = %s", st.State)
	}
	st := mustLoad(t, l)
	if st.State != ReloadCompleted || st.Added != 2 || st.Keys != 2 || !has(set, a, b) {
		t.Fatalf("first load: %+v", st)
	}
	held, _ := set.Get(a.PublicKey()) // an in-flight request holding key a

	src.set([]keystore.Key{b, c}, nil, nil)
	st = mustLoad(t, l)
	if st.Added != 1 || st.Removed != 1 || set.Len() != 2 || !has(set, b, c) || has(set, a) {
		t.Fatalf("reload: %+v, keys %v", st, set.PublicKeys())
	}
	if _, err := held.Sign(context.Background(), [32]byte{1}); err != nil {
		t.Fatalf("a request holding a removed key could not finish: %v", err)
	}
	if len(published) != 1 || published[0].Loaded != 2 || !published[0].OK() {
		t.Fatalf("published reports %+v", published)
	}
}

func TestReloadKeepsKeysOfFailingSources(t *testing.T) {
	a, b, c, d := testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 4)
	vault := &fakeSource{name: "vault"}
	dir := &fakeSource{name: "dir"}
	vault.set([]keystore.Key{a, b}, nil, nil)
	dir.set([]keystore.Key{c, d}, nil, nil)
	set := New(nil)
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{vault, dir}, Keys: set})
	mustLoad(t, l)

	// Vault sealed: its keys stay; a file of dir fails naming its key: that key stays.
	vault.set(nil, nil, fmt.Errorf("%w: sealed", keystore.ErrUnavailable))
	dir.set([]keystore.Key{c}, []keystore.LoadError{{Item: "d.json", Pubkey: d.PublicKey(), Err: keystore.ErrMalformed}}, nil)
	st := mustLoad(t, l)
	if st.State != ReloadDegraded || st.Removed != 0 || st.Kept != 3 || !has(set, a, b, c, d) {
		t.Fatalf("degraded reload lost keys: %+v, keys %v", st, set.PublicKeys())
	}
	if st.Sources[0].Err == nil || st.Sources[0].Kept != 2 || st.Sources[0].OK() || st.Sources[1].Kept != 1 {
		t.Fatalf("reports %+v", st.Sources)
	}

	// An item failing without a public key (truncated file) holds back every removal of dir.
	dir.set(nil, []keystore.LoadError{{Item: "broken.json", Err: keystore.ErrMalformed}}, nil)
	vault.set([]keystore.Key{a, b}, nil, nil)
	st = mustLoad(t, l)
	if st.Removed != 0 || !has(set, c, d) {
		t.Fatalf("unnamed item error removed keys: %+v", st)
	}

	// Healthy again, d really gone: now it is removed.
	dir.set([]keystore.Key{c}, nil, nil)
	st = mustLoad(t, l)
	if st.State != ReloadCompleted || st.Removed != 1 || has(set, d) {
		t.Fatalf("healthy reload: %+v", st)
	}
}

func TestReloadKeymanagerKeys(t *testing.T) {
	a, b, m := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	aManaged := &wrappedKey{a} // the keymanager's own copy of a
	src := &fakeSource{name: "dir"}
	src.set([]keystore.Key{a}, nil, nil)
	managed := NewManaged(t.TempDir(), 1)
	set := New(nil)
	var lock sync.Mutex
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Managed: managed, Keys: set, Lock: &lock})
	mustLoad(t, l)
	// Imports after start (what keymanager.Manager.Import does under the lock).
	managed.Remember(m.PublicKey(), ManagedKey{Key: m})
	managed.Remember(a.PublicKey(), ManagedKey{Key: aManaged})
	set.Add([]keystore.Key{m})

	src.set([]keystore.Key{a, b}, nil, nil)
	st := mustLoad(t, l)
	if !has(set, a, b, m) || st.Removed != 0 || set.Len() != 3 {
		t.Fatalf("reload dropped keymanager keys: %+v %v", st, set.PublicKeys())
	}
	if k, _ := set.Get(a.PublicKey()); k == aManaged {
		t.Fatal("the keymanager's copy won over the operator's source")
	}
	if len(st.Sources) != 2 || st.Sources[1].Name != "keymanager" || st.Sources[1].Loaded != 2 {
		t.Fatalf("keymanager report: %+v", st.Sources)
	}

	// A keymanager delete is not undone by a reload.
	managed.Forget(m.PublicKey())
	set.RemoveIf(map[keystore.PublicKey]keystore.Key{m.PublicKey(): m})
	mustLoad(t, l)
	if has(set, m) {
		t.Fatal("a reload brought back a key the keymanager deleted")
	}

	// The operator's copy of a goes: the keymanager's copy takes over, nothing is disabled.
	src.set([]keystore.Key{b}, nil, nil)
	st = mustLoad(t, l)
	if k, _ := set.Get(a.PublicKey()); k != aManaged || st.Removed != 0 {
		t.Fatalf("operator copy removed: active %v, %+v", k, st)
	}
}

// A keymanager directory that fails as a whole at start is retried at every reload until it loads.
func TestReloadRetriesFailedKeymanagerDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "km")
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := NewLoader(LoaderConfig{Managed: NewManaged(dir, 1), Keys: New(nil)})
	if st := mustLoad(t, l); st.State != ReloadDegraded || st.Sources[0].Err == nil {
		t.Fatalf("first load: %+v", st)
	}
	if st := mustLoad(t, l); st.Sources[0].Err == nil {
		t.Fatalf("still broken: %+v", st)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if st := mustLoad(t, l); st.State != ReloadCompleted || st.Sources[0].Err != nil {
		t.Fatalf("after the fix: %+v", st)
	}
}

// A source that suddenly lists nothing (an unmounted volume) keeps its keys; stray items don't
// hold back removals.
func TestReloadEmptySourceAndStrayItems(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	src := &fakeSource{name: "dir"}
	src.set([]keystore.Key{a, b}, nil, nil)
	set := New(nil)
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Keys: set})
	mustLoad(t, l)
	src.set(nil, nil, nil)
	st := mustLoad(t, l)
	if st.State != ReloadDegraded || st.Removed != 0 || !has(set, a, b) || st.Sources[0].Err == nil {
		t.Fatalf("empty source: %+v", st)
	}
	stray := keystore.LoadError{Item: "backup.key", Err: fmt.Errorf("%w: bad name", keystore.ErrStrayItem)}
	src.set([]keystore.Key{b}, []keystore.LoadError{stray}, nil)
	st = mustLoad(t, l)
	if st.Removed != 1 || has(set, a) {
		t.Fatalf("a stray item held back a removal: %+v", st)
	}
}

// logLines is a slog.Handler passing each record's message to the test: the loader logs the end
// of every load ("keys loaded", or "key reload failed: ...") after it published the final status,
// so a test waits for that line instead of polling Status.
type logLines chan string

func (c logLines) Enabled(context.Context, slog.Level) bool { return true }
func (c logLines) Handle(_ context.Context, r slog.Record) error {
	c <- r.Message
	return nil
}
func (c logLines) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c logLines) WithGroup(string) slog.Handler      { return c }

// waitLoadEnd waits for the log line that ends a load and returns it.
func (c logLines) waitLoadEnd(t *testing.T, within time.Duration) string {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m := <-c:
			if m == "keys loaded" || strings.HasPrefix(m, "key reload failed") {
				return m
			}
		case <-timer.C:
			t.Fatalf("no load ended within %v", within)
			return ""
		}
	}
}

func TestReloadOneAtATime(t *testing.T) {
	src := &fakeSource{name: "slow", block: make(chan struct{})}
	src.set([]keystore.Key{testKey(t, 1)}, nil, nil)
	set := New(nil)
	logs := make(logLines, 64) // a handful of lines per load; Handle blocks only when full
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Keys: set, Logger: slog.New(logs)})
	if err := l.Reload(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(time.Minute); !errors.Is(err, ErrReloadRunning) {
		t.Fatalf("second Reload = %v; want ErrReloadRunning", err)
	}
	if _, err := l.Load(context.Background()); !errors.Is(err, ErrReloadRunning) {
		t.Fatalf("Load during a reload = %v; want ErrReloadRunning", err)
	}
	if st := l.Status(); st.State != ReloadRunning || st.Started.IsZero() {
		t.Fatalf("status while running: %+v", st)
	}
	close(src.block)
	if m := logs.waitLoadEnd(t, 10*time.Second); m != "keys loaded" {
		t.Fatalf("the reload ended with %q", m)
	}
	if st := l.Status(); st.State != ReloadCompleted || set.Len() != 1 {
		t.Fatalf("after the reload: %+v", st)
	}
}

func TestReloadTimeoutChangesNothing(t *testing.T) {
	a := testKey(t, 1)
	src := &fakeSource{name: "dir"}
	src.set([]keystore.Key{a}, nil, nil)
	set := New(nil)
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Keys: set})
	mustLoad(t, l)
	src.mu.Lock()
	src.block = make(chan struct{}) // never released
	src.mu.Unlock()
	src.set(nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	st, err := l.Load(ctx)
	if err != nil || st.State != ReloadFailed || st.Error == "" || !has(set, a) {
		t.Fatalf("timed-out reload: %+v, %v; keys %v", st, err, set.PublicKeys())
	}
}

func TestLoaderStartStop(t *testing.T) {
	a := testKey(t, 1)
	src := &fakeSource{name: "dir"}
	src.set([]keystore.Key{a}, nil, nil)
	set := New(nil)
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Keys: set})
	if err := l.Start(context.Background()); err != nil || !has(set, a) {
		t.Fatalf("Start = %v; keys %v", err, set.PublicKeys())
	}
	// A background reload that never finishes by itself: Stop cancels it and waits for it.
	src.mu.Lock()
	src.block = make(chan struct{})
	src.mu.Unlock()
	if err := l.Reload(time.Hour); err != nil {
		t.Fatal(err)
	}
	l.Stop()
	if st := l.Status(); st.State != ReloadFailed || !has(set, a) {
		t.Fatalf("after Stop: %+v; keys %v", st, set.PublicKeys())
	}
	if err := l.Reload(time.Hour); !errors.Is(err, ErrStopped) {
		t.Fatalf("Reload after Stop = %v; want ErrStopped", err)
	}
	l.Stop() // safe twice
}

func TestLoaderStartInterrupted(t *testing.T) {
	src := &fakeSource{name: "dir", block: make(chan struct{})}
	l := NewLoader(LoaderConfig{Sources: []keystore.Source{src}, Keys: New(nil)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Start(ctx); err == nil || !strings.HasPrefix(err.Error(), "loading keys: key load interrupted") {
		t.Fatalf("Start with a cancelled context = %v", err)
	}
}

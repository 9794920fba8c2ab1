package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

func vectorsDir() string {
	if dir := os.Getenv("VIGIL_SPEC_INTERCHANGE_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "..", "shared", "testdata", "slashing-protection-interchange-tests", "tests", "generated")
}

func openTemp(t *testing.T, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "slashing.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	slashingtest.Run(t, func(t *testing.T) slashing.Store { return openTemp(t, sqlite.Options{Create: true}) })
}

func TestConformanceWithoutGroupCommit(t *testing.T) {
	slashingtest.Run(t, func(t *testing.T) slashing.Store { return openTemp(t, sqlite.Options{Create: true, MaxBatch: 1}) })
}

func TestInterchangeVectors(t *testing.T) {
	n := slashingtest.RunInterchangeVectors(t, vectorsDir(), func(t *testing.T) slashing.Store { return openTemp(t, sqlite.Options{Create: true}) })
	t.Logf("%d interchange cases passed", n)
}

func TestReopenKeepsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	b := slashing.Block{Pubkey: slashingtest.Key(1), Slot: 7, SigningRoot: slashingtest.Root(1), GenesisValidatorsRoot: slashingtest.GVR}
	if err := s.SignBlock(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnabled(ctx, slashingtest.Key(2), false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b.SigningRoot = slashingtest.Root(2)
	if err := s.SignBlock(ctx, b); !errors.Is(err, slashing.ErrSlashable) {
		t.Fatalf("after reopen the double proposal must be refused, got %v", err)
	}
	if root, ok, err := s.GenesisValidatorsRoot(ctx); err != nil || !ok || root != slashingtest.GVR {
		t.Fatalf("root after reopen: %x %v %v", root, ok, err)
	}
	b.Pubkey = slashingtest.Key(2)
	if err := s.SignBlock(ctx, b); !errors.Is(err, slashing.ErrSlashable) {
		t.Fatalf("disabled key after reopen: %v", err)
	}
}

func TestOpenRefusesCorruptFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	data := make([]byte, 8192)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(garbage, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(ctx, garbage, sqlite.Options{Create: true})
	if !errors.Is(err, sqlite.ErrCorrupt) || !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("garbage file: got %v, want ErrCorrupt", err)
	}
	t.Logf("garbage: %v", err)

	// A real database, truncated.
	path := filepath.Join(dir, "truncated.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: slashingtest.Key(i % 50), SourceEpoch: phase0.Epoch(i), TargetEpoch: phase0.Epoch(i + 1),
			SigningRoot: slashingtest.Root(byte(i)), GenesisValidatorsRoot: slashingtest.GVR}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // checkpoints the WAL into the main file
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if !errors.Is(err, sqlite.ErrCorrupt) {
		t.Fatalf("truncated file (%d of %d bytes): got %v, want ErrCorrupt", fi.Size()/2, fi.Size(), err)
	}
	t.Logf("truncated: %v", err)

	// Overwritten header.
	path2 := filepath.Join(dir, "header.db")
	s, err = sqlite.Open(ctx, path2, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	f, err := os.OpenFile(path2, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("this is not sqlite"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := sqlite.Open(ctx, path2, sqlite.Options{Create: true}); !errors.Is(err, sqlite.ErrCorrupt) {
		t.Fatalf("overwritten header: got %v, want ErrCorrupt", err)
	}
}

// rawExec runs SQL on a database file outside the store (a second process).
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpenRefusesFutureSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "future.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	rawExec(t, path, fmt.Sprintf("UPDATE schema_version SET version = %d", sqlite.SchemaVersion+1))
	_, err = sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if !errors.Is(err, sqlite.ErrSchemaTooNew) {
		t.Fatalf("future schema: got %v, want ErrSchemaTooNew", err)
	}
	t.Logf("future schema: %v", err)
}

func TestOpenRefusesForeignDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	rawExec(t, path, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
	_, err := sqlite.Open(context.Background(), path, sqlite.Options{Create: true})
	if !errors.Is(err, sqlite.ErrForeignDatabase) {
		t.Fatalf("foreign database: got %v, want ErrForeignDatabase", err)
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), sqlite.Options{Create: true, MaxBatch: -1}); err == nil {
		t.Fatal("negative MaxBatch accepted")
	}
	if _, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{Create: true}); err == nil {
		t.Fatal("a directory was accepted as the database file")
	}
}

// Another process holding the write lock past the busy timeout makes signing
// fail with ErrUnavailable, never a false nil.
func TestLockedDatabaseIsUnavailable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "locked.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true, BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	err = s.SignBlock(ctx, slashing.Block{Pubkey: slashingtest.Key(1), Slot: 1, SigningRoot: slashingtest.Root(1), GenesisValidatorsRoot: slashingtest.GVR})
	if !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("locked: got %v, want ErrUnavailable", err)
	}
	t.Logf("locked: %v", err)
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := s.SignBlock(ctx, slashing.Block{Pubkey: slashingtest.Key(1), Slot: 1, SigningRoot: slashingtest.Root(1), GenesisValidatorsRoot: slashingtest.GVR}); err != nil {
		t.Fatalf("after the lock is released: %v", err)
	}
}

// Group commit really groups: concurrent signers share commits.
func TestGroupCommitBatches(t *testing.T) {
	s := openTemp(t, sqlite.Options{Create: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				err := s.SignAttestation(ctx, slashing.Attestation{Pubkey: slashingtest.Key(g), SourceEpoch: phase0.Epoch(i), TargetEpoch: phase0.Epoch(i + 1),
					SigningRoot: slashingtest.Root(1), GenesisValidatorsRoot: slashingtest.GVR})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if failed.Load() != 0 || st.Recorded != 640 {
		t.Fatalf("failed=%d stats=%+v", failed.Load(), st)
	}
	if st.Commits >= st.SignRequests {
		t.Fatalf("no grouping: %+v", st)
	}
	t.Logf("%d sign requests in %d commits", st.SignRequests, st.Commits)
}

// A request whose statement fails gets ErrUnavailable; the requests batched
// with it are still answered correctly.
func TestFailingRequestDoesNotFailItsBatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "poison.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Slot 666 is stored as 666 XOR 2^63.
	rawExec(t, path, `CREATE TRIGGER poison BEFORE INSERT ON signed_blocks
		WHEN NEW.slot = -9223372036854775142 BEGIN SELECT RAISE(ABORT, 'poisoned'); END`)
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slot := phase0.Slot(1000*round + g)
				if g == 7 {
					slot = 666
				}
				errs[g] = s.SignBlock(ctx, slashing.Block{Pubkey: slashingtest.Key(100*round + g), Slot: slot,
					SigningRoot: slashingtest.Root(1), GenesisValidatorsRoot: slashingtest.GVR})
			}()
		}
		wg.Wait()
		for g, err := range errs {
			switch {
			case g == 7 && !errors.Is(err, slashing.ErrUnavailable):
				t.Fatalf("poisoned request: got %v, want ErrUnavailable", err)
			case g != 7 && err != nil:
				t.Fatalf("request %d batched with a failing one: %v", g, err)
			}
		}
	}
	t.Logf("stats %+v", s.Stats())
}

// Two stores on one file (as two processes would be) serialise through
// SQLite's write lock: of conflicting requests sent to both, at most one is
// accepted per slot.
func TestTwoStoresShareOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	a, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const slots = 40
	var accepted [slots]atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if g%2 == 1 {
				s = b
			}
			for slot := range slots {
				err := s.SignBlock(ctx, slashing.Block{Pubkey: slashingtest.Key(1), Slot: phase0.Slot(slot),
					SigningRoot: slashingtest.Root(byte(1 + g)), GenesisValidatorsRoot: slashingtest.GVR})
				switch {
				case err == nil:
					accepted[slot].Add(1)
				case !errors.Is(err, slashing.ErrSlashable):
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for slot := range slots {
		if n := accepted[slot].Load(); n > 1 {
			t.Fatalf("slot %d: %d different roots accepted", slot, n)
		}
	}
}

func TestMaintenance(t *testing.T) {
	slashingtest.RunMaintenance(t, func(t *testing.T) slashing.Store { return openTemp(t, sqlite.Options{Create: true}) })
}

func TestAssignmentsConformance(t *testing.T) {
	slashingtest.RunAssignments(t, func(t *testing.T) slashing.Store { return openTemp(t, sqlite.Options{Create: true}) })
}

func TestFailoverLedgerConformance(t *testing.T) {
	slashingtest.RunFailoverLedger(t, func(t *testing.T) slashing.Store { return openTemp(t, sqlite.Options{Create: true}) })
}

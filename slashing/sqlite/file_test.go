package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/attestantio/go-eth2-client/spec/phase0"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/sqlite"
)

func att(key byte, source, target phase0.Epoch, root byte) slashing.Attestation {
	return slashing.Attestation{Pubkey: phase0.BLSPubKey{key}, SourceEpoch: source, TargetEpoch: target,
		SigningRoot: phase0.Root{root}, GenesisValidatorsRoot: phase0.Root{0x4b}}
}

// A missing or empty database is never created silently: only Options.Create does it.
func TestOpenRefusesMissingOrEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "slashing.db")
	if _, err := sqlite.Open(ctx, path, sqlite.Options{}); !errors.Is(err, slashing.ErrNotInitialized) {
		t.Fatalf("open of a missing file: %v, want ErrNotInitialized", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused open created the file: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(ctx, path, sqlite.Options{}); !errors.Is(err, slashing.ErrNotInitialized) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("open of an empty file: %v, want ErrNotInitialized naming it empty", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Created() {
		t.Error("Created() is false for a new database")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new database file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if err := s.SignAttestation(ctx, att(1, 1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(path + side); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s readable by others: %v", side, fi.Mode().Perm())
		}
	}
	s.Close()

	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen without Create: %v", err)
	}
	defer s.Close()
	sum, err := s.Summary(ctx)
	if err != nil || sum.Created || sum.Validators != 1 || sum.Attestations != 1 || sum.Blocks != 0 {
		t.Fatalf("summary %+v (%v), want 1 validator, 1 attestation, not created", sum, err)
	}
}

// A database file deleted or replaced while open fails every later write closed (and Ping):
// records committed to a file nobody opens again would be lost at the next start.
func TestFileRemovedOrReplacedFailsClosed(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "slashing.db")
			s, err := sqlite.Open(ctx, path, sqlite.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SignAttestation(ctx, att(1, 1, 2, 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "deleted":
				for _, p := range []string{path, path + "-wal", path + "-shm"} {
					_ = os.Remove(p)
				}
			case "replaced": // a copy restored over it: another inode at the same path
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path+".copy", b, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path+".copy", path); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]string{"deleted": "is gone", "replaced": "was replaced by another file"}[how]
			if err := s.Ping(ctx); !errors.Is(err, slashing.ErrUnavailable) || !strings.Contains(err.Error(), want) {
				t.Errorf("Ping after the file was %s: %v", how, err)
			}
			if err := s.SignAttestation(ctx, att(2, 1, 2, 1)); !errors.Is(err, slashing.ErrUnavailable) {
				t.Errorf("sign after the file was %s: %v, want ErrUnavailable", how, err)
			}
			if err := s.SignBlock(ctx, slashing.Block{Pubkey: phase0.BLSPubKey{3}, Slot: 9, SigningRoot: phase0.Root{1}, GenesisValidatorsRoot: phase0.Root{0x4b}}); !errors.Is(err, slashing.ErrUnavailable) {
				t.Errorf("block after the file was %s: %v, want ErrUnavailable", how, err)
			}
		})
	}
}

// A write failure (here a full database: SQLite's max_page_count, which fails writes with
// SQLITE_FULL exactly as a full disk does) makes Ping report DOWN until a write succeeds again.
func TestWriteFailureKeepsHealthDown(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, sqlite.Options{Create: true, MaxBatch: 1})
	db := s.WriterDB()
	var pages int64
	if err := db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA max_page_count = "+strconv.FormatInt(pages, 10)); err != nil {
		t.Fatal(err)
	}
	var failed error
	for k := 1; k < 5000 && failed == nil; k++ {
		failed = s.SignAttestation(ctx, slashing.Attestation{Pubkey: phase0.BLSPubKey{byte(k), byte(k >> 8)}, SourceEpoch: 1, TargetEpoch: 2,
			SigningRoot: phase0.Root{1}, GenesisValidatorsRoot: phase0.Root{0x4b}})
	}
	if !errors.Is(failed, slashing.ErrUnavailable) {
		t.Fatalf("no write failed on a full database (last error %v)", failed)
	}
	if err := s.Ping(ctx); !errors.Is(err, slashing.ErrUnavailable) || !strings.Contains(err.Error(), "write") {
		t.Fatalf("Ping after a failed write: %v, want DOWN", err)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, slashing.ErrUnavailable) {
		t.Fatalf("Ping before any write succeeded again: %v, want still DOWN", err)
	}
	if err := s.SignAttestation(ctx, att(200, 1, 2, 1)); err != nil {
		t.Fatalf("sign once space is back: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after a write succeeded: %v", err)
	}
}

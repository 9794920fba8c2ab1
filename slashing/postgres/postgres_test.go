package postgres_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
	"github.com/vigil-signer/vigil/slashing/slashingtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func vectorsDir() string {
	if dir := os.Getenv("VIGIL_SPEC_INTERCHANGE_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "..", "shared", "testdata", "slashing-protection-interchange-tests", "tests", "generated")
}

// open opens a store on url, closed at the end of the test.
func open(t testing.TB, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fresh opens a store on a new database.
func fresh(t testing.TB, opts postgres.Options) (*postgres.Store, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	return open(t, url, opts), url
}

func sql(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestConformance(t *testing.T) {
	slashingtest.Run(t, func(t *testing.T) slashing.Store {
		s, _ := fresh(t, postgres.Options{Create: true})
		return s
	})
}

// TestConformanceInSchema runs the suite with every store in a schema of
// its own in one shared database.
func TestConformanceInSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var mu sync.Mutex
	n := 0
	slashingtest.Run(t, func(t *testing.T) slashing.Store {
		mu.Lock()
		n++
		schema := "Vigil Schema " + string(rune('a'+n))
		mu.Unlock()
		return open(t, url, postgres.Options{Create: true, Schema: schema})
	})
}

func TestInterchangeVectors(t *testing.T) {
	n := slashingtest.RunInterchangeVectors(t, vectorsDir(), func(t *testing.T) slashing.Store {
		s, _ := fresh(t, postgres.Options{Create: true})
		return s
	})
	t.Logf("%d interchange cases passed", n)
}

func block(key int, slot uint64, root byte) slashing.Block {
	return slashing.Block{Pubkey: slashingtest.Key(key), Slot: phase0.Slot(slot), SigningRoot: slashingtest.Root(root), GenesisValidatorsRoot: slashingtest.GVR}
}

func att(key int, source, target uint64, root byte) slashing.Attestation {
	return slashing.Attestation{Pubkey: slashingtest.Key(key), SourceEpoch: phase0.Epoch(source), TargetEpoch: phase0.Epoch(target),
		SigningRoot: slashingtest.Root(root), GenesisValidatorsRoot: slashingtest.GVR}
}

func mustRefuse(t testing.TB, err error, reason slashing.Reason) {
	t.Helper()
	var r *slashing.Refusal
	if !errors.As(err, &r) || r.Reason != reason || !errors.Is(err, slashing.ErrSlashable) {
		t.Fatalf("want refusal %s, got %v", reason, err)
	}
}

// TestOneRoundTripPerSignature: after the pool's connection is set up, every
// SignBlock and SignAttestation (recorded, repeated or refused) is exactly
// one request to the server, also after the connection sat idle.
func TestOneRoundTripPerSignature(t *testing.T) {
	ctx := context.Background()
	s, _ := fresh(t, postgres.Options{Create: true})
	// Warm-up: Open already set up one connection (startup, prepare).
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	calls := []func() error{
		func() error { return s.SignBlock(ctx, block(1, 2, 1)) },                       // new key history: record
		func() error { return s.SignBlock(ctx, block(1, 2, 1)) },                       // repeat
		func() error { return s.SignAttestation(ctx, att(1, 1, 2, 1)) },                // first vote: record + watermark
		func() error { return s.SignAttestation(ctx, att(1, 2, 3, 1)) },                // record
		func() error { return s.SignAttestation(ctx, att(2, 5, 9, 1)) },                // a new key: register + record
		func() error { return s.SignAttestation(ctx, att(1, 2, 3, 1)) },                // repeat
		func() error { return ignoreRefusal(s.SignBlock(ctx, block(1, 2, 9))) },        // double proposal
		func() error { return ignoreRefusal(s.SignAttestation(ctx, att(1, 0, 9, 1))) }, // below watermark
	}
	for round := range 3 {
		for i, call := range calls {
			before := s.Stats().RoundTrips
			if err := call(); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if got := s.Stats().RoundTrips - before; got != 1 {
				t.Fatalf("round %d call %d: %d round trips, want 1", round, i, got)
			}
		}
		if round == 1 {
			time.Sleep(1100 * time.Millisecond) // pgxpool would ping a connection idle for >1s
		}
	}
	// A burst of distinct signatures: N round trips for N signatures.
	before := s.Stats()
	const n = 200
	for i := range n {
		if err := s.SignAttestation(ctx, att(3, uint64(i), uint64(i+1), 1)); err != nil {
			t.Fatal(err)
		}
	}
	after := s.Stats()
	if rt := after.RoundTrips - before.RoundTrips; rt != n {
		t.Fatalf("%d signatures took %d round trips", n, rt)
	}
	if rec := after.Recorded - before.Recorded; rec != n {
		t.Fatalf("recorded %d, want %d", rec, n)
	}
}

func ignoreRefusal(err error) error {
	if errors.Is(err, slashing.ErrSlashable) {
		return nil
	}
	if err == nil {
		return errors.New("expected a refusal")
	}
	return err
}

// TestIsolationLevel: a database whose default isolation is REPEATABLE READ
// does not change the store's (the connections force READ COMMITTED), and
// the write functions refuse to run under another level.
func TestIsolationLevel(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	conn := sql(t, url)
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{conn.Config().Database}.Sanitize()+" SET default_transaction_isolation = 'repeatable read'"); err != nil {
		t.Fatal(err)
	}
	s := open(t, url, postgres.Options{Create: true})
	if err := s.SignBlock(ctx, block(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	raw := sql(t, url)
	pk, root, gvr := slashingtest.Key(1), slashingtest.Root(1), slashingtest.GVR
	_, err := raw.Exec(ctx, "SELECT * FROM vigil_sign_block(1, $1, $2, $3, $4)", pk[:], encU64(2), root[:], gvr[:])
	if err == nil || !strings.Contains(err.Error(), "READ COMMITTED") {
		t.Fatalf("a sign under REPEATABLE READ = %v, want refused", err)
	}
}

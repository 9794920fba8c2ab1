// Package syncreptest attacks the durability claim of slashing/postgres on a replicated
// database: a commit whose wait for synchronous replication is cancelled is only local, and
// PostgreSQL reports it as a success with a WARNING. It is a package of its own because it
// changes synchronous_standby_names for its whole (throwaway) cluster.
package syncreptest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
	"github.com/jackc/pgx/v5"

	"github.com/vigil-signer/vigil/slashing"
	"github.com/vigil-signer/vigil/slashing/postgres"
	"github.com/vigil-signer/vigil/slashing/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func admin(t *testing.T, sql string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// cancelSyncRepWaiter waits until a backend of the cluster waits for synchronous replication
// (the database is the only one that can say when: polled, bounded) and cancels its query.
func cancelSyncRepWaiter(t *testing.T) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), pgtest.AdminURL(t))
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close(context.Background())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); <-tick.C {
		var n int
		err := c.QueryRow(context.Background(),
			"SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'").Scan(&n)
		if err != nil {
			t.Error(err)
			return
		}
		if n > 0 {
			return
		}
	}
	t.Error("no backend ever waited for synchronous replication")
}

func att(target phase0.Epoch, root byte) slashing.Attestation {
	var a slashing.Attestation
	a.Pubkey[0] = 0xb7
	a.SourceEpoch, a.TargetEpoch = target-1, target
	a.SigningRoot[0] = root
	a.GenesisValidatorsRoot[0] = 9
	return a
}

// settle waits until new sessions see synchronous_standby_names = want: the postmaster reloads
// its configuration asynchronously after pg_reload_conf, and new backends fork from it (polled:
// the server announces nothing; bounded).
func settle(t *testing.T, want string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); <-tick.C {
		c, err := pgx.Connect(context.Background(), pgtest.AdminURL(t))
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = c.QueryRow(context.Background(), "SHOW synchronous_standby_names").Scan(&got)
		c.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
	}
	t.Fatalf("synchronous_standby_names never became %q", want)
}

// open opens a store on fresh connections (which read the configuration in force).
func open(t *testing.T, url string, create bool) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{Create: create})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A signature whose record's synchronous replication was cancelled is not released, and
// neither is an identical repeat until a standby acknowledges one; the local record still
// refuses a conflicting vote.
func TestCancelledSyncRepReleasesNothing(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	open(t, url, true).Close() // the schema

	admin(t, "ALTER SYSTEM SET synchronous_standby_names = 'vigil_absent_standby'")
	admin(t, "SELECT pg_reload_conf()")
	restored := false
	restore := func() {
		if !restored {
			restored = true
			admin(t, "ALTER SYSTEM RESET synchronous_standby_names")
			admin(t, "SELECT pg_reload_conf()")
			settle(t, "")
		}
	}
	defer restore()
	settle(t, "vigil_absent_standby")

	s := open(t, url, false)
	for i, what := range []string{"first signature", "identical repeat"} {
		done := make(chan error, 1)
		go func() { done <- s.SignAttestation(ctx, att(10, 1)) }()
		cancelSyncRepWaiter(t)
		err := <-done
		if !errors.Is(err, postgres.ErrNotReplicated) || !errors.Is(err, slashing.ErrUnavailable) {
			t.Fatalf("%d %s with the replication wait cancelled: %v, want ErrNotReplicated (unavailable: nothing released)", i, what, err)
		}
	}
	s.Close()
	restore()
	s = open(t, url, false) // fresh sessions: replication not required any more
	defer s.Close()
	if err := s.SignAttestation(ctx, att(10, 1)); err != nil {
		t.Fatalf("identical repeat once replication is not required: %v", err)
	}
	if err := s.SignAttestation(ctx, att(10, 2)); !errors.Is(err, slashing.ErrSlashable) {
		t.Fatalf("a double vote after the local-only record: %v, want refused", err)
	}
}

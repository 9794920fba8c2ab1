// Package failover elects the one instance of an active/standby pair that signs. Two `vigil
// serve --ha-enabled` share one Postgres slashing database; the Elector of each runs the state
// machine below against a Backend (failover/pgelect: a session advisory lock, a lease row on
// the database clock, eviction of a hung holder) and the store's term fence (Fence, that is
// slashing/postgres.Store.SetTerm). The signer sees the election only through its Leadership
// seam (Elector.CheckLeader: a local check, no round trip), consulted before slashing protection
// on every request; the keymanager's writes ask the same question.
//
// # State machine
//
//	Stopped ──Start──▶ Standby ──lock, Take(term), SetTerm(term), Promote, Renew──▶ Leader
//	   ▲                 ▲  ▲                                                          │
//	   │                 │  └── renewal deposed / failed / not answered within the ────┤
//	   │                 │      trust window (the lock connection is dropped)          │
//	   │                 └───── step-down requested: Release, hold off 2 leases ───────┤
//	   └──────────────────────────────── Stop: Release, close ─────────────────────────┘
//
// Standby: keys loaded, store open; a goroutine blocks in Backend.Lock (the fast path: a killed
// leader's connection closes, the server ends its session, the lock is granted at once) while
// the loop reads the lease every ObserveEvery for the health endpoints and the standby's 503
// ("standby: the active instance is <id> at <url>"), and calls Backend.Evict when the lease has
// run out by the database's clock (the slow path: a SIGSTOPped, hung or cut-off leader whose
// session still holds the lock is terminated, which releases it).
//
// Promotion, in this order, every step bounded by the trust window opened at its start:
// Take (one statement: term = greatest(lease term, fence term) + 1, holder, valid_until on the
// database clock), a check that the term is above every term this instance held, SetTerm(term)
// on the fence, Promote (shared keystores synced), one Renew; only then is the role Leader and
// CheckLeader nil. The instance never signs at a term the fence has not confirmed.
//
// Leader: every RenewEvery, Renew extends the lease by Lease from the database's now(). The
// trust window is Lease − Margin from the start of the last successful renew attempt, kept
// locally: CheckLeader refuses once the process's monotonic clock passes it, whether or not the
// renewal loop is stuck or the database answers. A renewal that fails, is refused (ErrDeposed)
// or does not answer before the window closes turns the instance into a standby at once and
// drops its election connections.
//
// # Safety: no two instances have a signature recorded for one term
//
// Terms come from Take, a single UPDATE of the one lease row, so takes are serialised by the
// row lock and each returns a term above every earlier one (it reads the stored term after the
// previous take committed, READ COMMITTED re-reads the row it updates). Two takes never return
// the same term, so at most one instance ever holds term t. An instance records a signature
// only through the store, and the store's writes carry the instance's term and commit only
// while it equals the fence's term (slashing/postgres doc, "Fencing"). The instance's store
// writes at term t only after SetTerm(t) returned for it. So every signature recorded at term t
// was recorded by the one instance that took t.
//
// # Safety: a deposed leader is harmless even if the election misjudged
//
// Suppose the election goes wrong in any way — clocks drift beyond Margin, the old leader's
// trust window is still open when the standby evicts it, a network partition hides one from
// the other. The new leader's SetTerm(t+1) returns only after every write of term t in flight
// has committed, and after it no term-t write can commit (the fence argument). The old leader
// releases a signature only after its store write committed (records precede signatures), so
// after SetTerm(t+1) it releases nothing new: every request it still accepts fails with the
// fenced error, which the signer maps to ErrNotLeader (503). Before SetTerm(t+1) returns the new
// leader signs nothing. Whatever both do, every released signature was recorded in the one
// database, and the slashing rules there (per-key advisory locks, EIP-3076 checks in the same
// transaction as the record) refuse a second, conflicting message whichever instance asks.
// The election decides who is available; it is never what keeps a signature from being
// slashable. The trust window only makes the old leader stop before it is fenced, so clients
// get a quick 503 and retry on the leader instead of waiting for the database.
//
// # Timing (defaults, Lease 5s)
//
// Killed leader: the lock is released when the server sees the closed socket (milliseconds);
// takeover is then Take + SetTerm + Promote + Renew, a few round trips. Graceful stop
// (SIGTERM): the listeners drain, then Stop releases the lease and the lock (Release), which
// the standby's blocked Lock returns at once. Hung or cut-off leader: the lease runs out at
// most Lease after its last renewal, the standby sees it within ObserveEvery (500ms) and evicts;
// the old leader's trust window (Lease − Margin = 4s from its last renew attempt) closed before
// that. Election connections use TCP keepalives and a user timeout of one lease, so half-open
// connections do not hold a lock for long on either side.
package failover

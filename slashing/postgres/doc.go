// Package postgres is the shared slashing-protection store: one PostgreSQL
// database for any number of Vigil instances (the HA pair, or anyone past
// one machine). It implements slashing.Store with the same semantics as the
// embedded SQLite store (EIP-3076 complete rules, see package slashing) and
// passes the conformance suite in slashing/slashingtest and every EIP-3076
// interchange test vector.
//
// # One round trip per signature
//
// SignBlock and SignAttestation each send ONE statement,
//
//	SELECT verdict, x1, x2, xroot FROM vigil_sign_attestation($1, ..., $6)
//
// prepared on every new pool connection (so each call is Bind, Execute,
// Sync: one network round trip, no describe), and run as its own implicit
// transaction. The PL/pgSQL function (functions.sql) does, in order: check the fence (below),
// reading the database's high watermark from the same locked row; refuse a
// genesis validators root other than the pinned one; find the key's id,
// registering an unknown key; take the transaction-scoped advisory lock of
// (blocks|attestations, key id); read the key's enabled flag and low
// watermarks, then the recorded message
// at the same slot/target and, for votes, one surrounding and one surrounded
// vote; decide with exactly the order and outcomes of slashing.CheckBlock /
// CheckAttestation; and on Record pin the genesis root if none, insert the
// message and set the key's low watermark if it has none. It returns a
// verdict code and the facts behind a refusal; Go rebuilds the refusal with
// slashing.CheckBlock/CheckAttestation from those facts, so reasons and
// messages are those of every other store. Web3Signer needs 7–10 statements
// in a transaction for the same work.
//
// The claim is measured, not assumed: the pool's connections count every
// request they write (Stats.RoundTrips), and a test asserts one per
// signature. Liveness of idle pooled connections is checked by peeking at
// the socket (a dead connection has a FATAL message or EOF waiting), not by
// pgxpool's ping, which would be a second round trip whenever a connection
// sat idle for a second, i.e. on every signature of a lightly loaded signer.
//
// # Invariants
//
// Durability. A signature's statement commits before it answers; the
// functions raise synchronous_commit to on for their transaction if the
// server or session has it off, so nil means the record is flushed to the
// server's WAL (and to synchronous standbys, as configured). That holds for
// an identical repeat too, whose record was written by an earlier
// transaction that may still be waiting for its standby: every signature's
// transaction is a write transaction (the fence row lock below assigns it a
// transaction id and writes WAL), so its own commit waits for a WAL position
// after that record's commit. Any error means nothing may be released.
//
// A cancelled replication wait. PostgreSQL answers a COMMIT whose wait for
// synchronous standbys was cancelled (pg_cancel_backend, a client's cancel
// request) with a WARNING and success: the record is local only, and a
// failover to a standby would lose it. The store watches the notices of every
// connection (conn.go, onNotice) and fails such a signature with
// ErrNotReplicated (unavailable: nothing released). An identical repeat is
// then refused the same way until a standby acknowledges a commit after the
// record (its own write transaction's, as above); the local record still
// refuses every conflicting message. A wait ended by terminating the backend
// breaks the connection, which fails the call anyway. Attacked by
// slashing/postgres/syncreptest. The notices are matched in English
// (lc_messages C or en_*).
//
// Atomicity. Each check-and-record is one function call, hence one
// transaction. An import merges one validator entry in one call
// (vigil_import_chunk), or an entry larger than one chunk in
// one call per chunk with the key disabled by an import marker from the first
// to the last (package slashing, "Chunked imports"; the marker is written and
// cleared under the key's two advisory locks, so every signature is
// serialised before or after each chunk). Enabling and disabling a key is one call. So is
// setting the high watermark, and each chunk of keys of a prune or a
// low-watermark raise (see Maintenance).
//
// Per-key serialisation. The facts are read after the key's advisory lock is
// granted, and the lock is held until commit, so check-and-records of one
// key and kind are serialised across connections and processes; every
// request sees every record committed before it, because READ COMMITTED
// takes a fresh snapshot per statement inside the function. The store's
// connections set default_transaction_isolation to read committed, and the
// functions refuse to run under another isolation level (under REPEATABLE
// READ, two concurrent surrounding votes could both commit). Imports,
// enable/disable and the maintenance functions take both kinds' locks
// (blocks first). Blocks and votes of
// one key do not interact and do not contend. The primary keys (key, slot)
// and (key, target epoch) are the last line of defence: a conflicting insert
// that got past the rules would fail the transaction.
//
// # Fencing
//
// Every write (sign, import, enable/disable, prune, low-watermark raise,
// high watermark) carries the writer's term
// (Options.Term, changed by SetTerm) and commits only if it equals the term
// in the fence table, checked in the same transaction: the write functions
// begin with
//
//	SELECT term FROM fence WHERE id = 1 FOR SHARE
//
// and return "fenced" (writing nothing) on a mismatch. Besides the row lock
// that statement takes a ROW SHARE lock on the fence table, held until the
// write commits. SetTerm runs vigil_set_term, which takes
//
//	LOCK TABLE fence IN EXCLUSIVE MODE
//
// (EXCLUSIVE conflicts with ROW SHARE) and then updates the term.
//
// The argument. Let W be a write with term t that commits, and let S be a
// SetTerm(t') with t' ≠ t that returns. W's term check read t while W held
// ROW SHARE on fence, and W held it until its commit. S held EXCLUSIVE from
// its LOCK to its commit. The two locks conflict, so the intervals are
// disjoint: either W committed before S locked, or S committed before W's
// check. In the second case W's check reads t' ≠ t and W is fenced, a
// contradiction: the check's lock was granted after S's commit became
// visible (locks are released after commit), and a statement inside a
// PL/pgSQL function takes its snapshot after its locks (READ COMMITTED, a
// fresh snapshot per statement); besides, SELECT ... FOR SHARE under READ
// COMMITTED locks and returns the newest committed version of the row
// whatever its snapshot.
// Hence every term-t write that commits, commits before S takes its lock,
// which is before S returns: after SetTerm returns, no write with an old
// term can commit. A deposed leader that keeps running gets nothing
// recorded, hence (records precede signatures) nothing signed.
//
// The table lock, not only the row lock, is what SetTerm waits on: an
// UPDATE that waits for the FOR SHARE row lockers can be starved by a
// stream of new share lockers (compatible row lockers do not queue behind a
// waiting updater; measured: a plain UPDATE under 64 writers waited 0.4 s
// while 1,600 writes overtook it), whereas table locks queue fairly: once S
// waits, later writes wait behind it, and S waits only for the writes in
// flight. Writes of other terms waiting behind S
// answer ErrFenced once S commits. Terms never go down; SetTerm with a term
// lower than the database's fails with ErrFenced.
//
// A fenced write returns an error wrapping ErrFenced, which also matches
// slashing.ErrUnavailable (the signer answers 503 and signs nothing).
//
// # Maintenance
//
// Store implements slashing.Maintainer with three more write functions
// (functions.sql), each a write at the store's term
// that begins with the fence check above (a stale term: ErrFenced, nothing
// written, counted in Stats.Fenced; Prune and RaiseLowWatermarks make at
// least one call even with no keys, so a fenced store always learns it).
//
// The high watermark is two columns of the fence row (hw_slot, hw_epoch;
// NULL = none), not a table of its own: the signature functions already
// lock and read that row, so the check costs no extra probe and a signature
// is still one statement. The check sits where slashing.CheckBlock /
// CheckAttestation have it: blocks after the enabled flag, votes after
// source > target, both before the low watermark; the refusal (verdict 10,
// x1 = the high-watermark slot or epoch) is rebuilt by the rules with
// BlockFacts.High / AttestationFacts.High, reason AboveHighWatermark.
// vigil_set_high_watermark changes it exactly as vigil_set_term changes the
// term: LOCK TABLE fence IN EXCLUSIVE MODE, then the term check, then the
// update. By the fencing argument, SetHighWatermark waits for every write in
// flight and, once it returns, every signature that commits was checked
// against the new value, so an export taken after it holds everything
// signed below the ceiling and nothing above it will be signed here. Like
// SetTerm it makes signatures wait behind it while it waits for the writes
// in flight (a prune call included).
//
// Prune lists the keys, then calls vigil_prune with chunks of up to 64 key
// ids. Per key, under both of its advisory locks (so it is serialised with
// the key's signatures and imports), the function reads the watermarks and
// the newest slot and target, computes the cuts of slashing.PruneCuts and
// the watermarks of slashing.PrunedWatermarks (the source watermark raised
// to the largest source among the votes below the new target watermark) in
// SQL, writes them and deletes the blocks and votes below them: only what
// the raised watermarks already refuse, so nothing refused before is
// accepted after. The u64 arithmetic is exact (numeric). A call stops after
// the key that brings its deletions to 16,384 rows and reports how many keys
// it handled; the next call goes on from there, so keys stay locked for
// milliseconds in steady state and a long first prune does not hold a chunk
// of keys (and their signatures) for long. One key is always pruned in one
// call.
//
// RaiseLowWatermarks calls vigil_raise_low_watermarks with chunks of up to
// 256 keys (nil: every key registered when it starts; else the named keys,
// sorted and deduplicated, registering unknown ones), raising each key's
// watermarks with greatest() under both of its locks (raise only,
// slashing.RaisedWatermarks) and counting the keys that moved.
//
// Lock order. A call that locks several keys locks them one after the
// other in ascending (id mod 2^31, id) order, blocks before attestations
// for each key; single-key writes take one lock or the same two in the
// same order. Every transaction thus takes advisory locks in one global
// order, and none waits for a lock while holding a later one: maintenance
// cannot deadlock with signing or with itself. Named new keys are
// registered before any key is locked, in pubkey order, so concurrent
// registrations of the same keys cannot deadlock either.
//
// # Storage of u64 values
//
// Slots and epochs are u64 but PostgreSQL's BIGINT is signed: values are
// stored XOR 2^63, which maps u64 order onto int64 order (the same mapping
// as the SQLite store; see the schema). All comparisons, least and greatest
// work on the stored values.
//
// # Schema and migrations
//
// The migrations are embedded (migrations/NNNN_name.sql, schema_version
// table) and run by Open unless Options.DisableMigrations, or by Migrate
// (`vigil slashing migrate`). They run under a session-level advisory lock,
// so concurrent migrations by several processes are serialised; each
// migration is one transaction. The migrations hold the schema (tables,
// indexes, constraints, triggers); the current definition of every function
// is in functions.sql, applied in the transaction of the last migration
// whenever a migration ran (older migration files keep the functions as
// their versions shipped them, so an old database upgrades step by step as
// before). A database already at SchemaVersion is left alone, so a change
// to functions.sql comes with a new migration, and TestFunctionsSQL proves
// that a fresh database, one upgraded from every older version and one
// built by the migration files alone end with the same catalog. A schema newer than the code fails with
// ErrSchemaTooNew, a schema with tables that are not Vigil's with
// ErrForeignDatabase. Options.Schema puts the tables into a schema of their
// own. Rows of validators are never deleted (a trigger refuses it).
//
// # Errors and faults
//
// Refusals wrap slashing.ErrSlashable (a *slashing.Refusal with the
// reason). Everything else that goes wrong talking to the database
// (connection refused or broken, server shutting down, statement or lock
// timeout, the caller's deadline) wraps slashing.ErrUnavailable with the
// cause in the chain, and so does a fenced write (ErrFenced). A genesis
// root mismatch on import wraps slashing.ErrInterchange. Calls fail fast
// while the server is down (a refused connection fails at once; the
// connect timeout and the caller's deadline bound the rest), and the pool
// reconnects by itself when the server is back.
package postgres

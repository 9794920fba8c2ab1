// Package sqlite is the embedded slashing-protection store: one SQLite file,
// zero setup, the default for a single Vigil instance. It implements
// slashing.Store and passes the conformance suite in slashing/slashingtest
// and every EIP-3076 interchange test vector.
//
// # Invariants
//
// Durability. The database runs in WAL mode with synchronous=FULL: a commit
// returns only after the WAL, including the commit record, has been fsynced.
// SignBlock and SignAttestation return nil only after the transaction that
// holds their record (or found the identical earlier record) has committed,
// so a nil return means the record is on disk and survives a crash or power
// loss; the caller may release the signature. Any error means the outcome is
// not known to be durable and nothing may be released.
//
// Atomicity. Each check-and-record (gather the key's facts, apply
// slashing.CheckBlock/CheckAttestation, insert the record, set the low
// watermark if the key has none, pin the genesis validators root if the
// database has none) runs inside one write transaction (BEGIN IMMEDIATE). An
// import merges one validator's history in one transaction. Enabling and
// disabling a key is one transaction.
//
// Per-key serialisation. All writes of a process go through a single writer
// goroutine owning the only write connection, so check-and-records are
// executed one after another: a request always sees every record committed
// or made before it, for every key. Between processes sharing the file (a CLI
// import while `vigil serve` runs), BEGIN IMMEDIATE takes SQLite's write lock
// before the first read of the transaction, and waits up to the busy timeout
// for it, so transactions of different processes are serialised too.
//
// # Group commit
//
// SQLite allows one writer, and a durable commit costs an fsync. The writer
// goroutine therefore takes every sign request that is waiting when it
// becomes free (up to Options.MaxBatch) and runs them, in arrival order, in
// one transaction with one fsync. Each request still gets its own verdict
// (a later request in the batch sees the records of earlier ones, so two
// conflicting requests in one batch cannot both be accepted), and each caller
// is answered only after the commit containing its record has returned. If
// a statement of one request fails, the batch is rolled back, that request
// gets ErrUnavailable and the rest run again in a new transaction, so one bad
// request cannot fail its neighbours; if the transaction cannot begin or
// commit, the whole batch gets ErrUnavailable. Requests whose context is already done when the writer
// reaches them are dropped unrecorded. Imports and key enabling run as their
// own transactions between batches.
//
// # Storage of u64 values
//
// Slots and epochs are u64 but SQLite integers are signed 64-bit: values are
// stored XOR 2^63, which maps u64 order onto int64 order (see the schema).
//
// # Errors
//
// Driver errors are translated here: anything the database reports (I/O
// error, busy/locked beyond the timeout, full disk, corruption) and use after
// Close wrap slashing.ErrUnavailable. Refusals wrap slashing.ErrSlashable. A
// genesis root mismatch on import wraps slashing.ErrInterchange. Open
// reports a file that is not a SQLite database or fails the integrity check
// with ErrCorrupt, a file of another application with ErrForeignDatabase,
// and a schema newer than this code with ErrSchemaTooNew.
package sqlite

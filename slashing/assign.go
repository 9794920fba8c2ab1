package slashing

import (
	"context"
	"time"

	"github.com/attestantio/go-eth2-client/spec/phase0"
)

// Assigner is the key → validator-client assignment of validator-client failover, kept in the
// slashing database (both stores) so that every Vigil instance on it agrees whose key it is. A
// key without a row is unassigned. Client names are those of the clients file.
type Assigner interface {
	// KeyAssignments lists every assigned key with its client.
	KeyAssignments(ctx context.Context) (map[phase0.BLSPubKey]string, error)
	// AdoptKey assigns key to client unless it already has an owner, atomically, and returns
	// the owner after the call (client, or the one that got there first).
	AdoptKey(ctx context.Context, key phase0.BLSPubKey, client string) (owner string, err error)
	// AssignKeys assigns keys to client whoever owned them (a failover move or an operator's
	// assign), in one transaction.
	AssignKeys(ctx context.Context, keys []phase0.BLSPubKey, client string) error
}

// ClientState is what validator-client failover keeps per client across restarts and leader
// changes: whether the client is fenced out (a failed client stays fenced until an operator
// unfences it) and its consecutive missed epochs.
type ClientState struct {
	Fenced bool
	Reason string    // why fenced
	Since  time.Time // when fenced
	Missed int       // consecutive missed epochs
}

// AuditRecord is one step of validator-client failover (or an operator's action), written
// before the step takes effect.
type AuditRecord struct {
	At       time.Time
	Action   string // "move", "fence", "unfence", "stage", "delete", "assign", …
	From, To string // clients ("" none)
	Keys     int
	Reason   string
	Detail   string
}

// FailoverLedger is the state of validator-client failover in the slashing database, so that a
// new HA leader resumes it.
type FailoverLedger interface {
	ClientStates(ctx context.Context) (map[string]ClientState, error)
	// SetMissed records a client's consecutive missed epochs.
	SetMissed(ctx context.Context, client string, missed int) error
	// SetFenced fences (or unfences) a client, with an audit record, in one transaction.
	SetFenced(ctx context.Context, client string, fenced bool, reason string) error
	// MoveKeys assigns keys to `to`, fences `from` and writes the audit record, in one
	// transaction: the failover of a failed client.
	MoveKeys(ctx context.Context, keys []phase0.BLSPubKey, from, to, reason string) error
	// Audit appends a record; AuditLog lists the newest limit records, newest first.
	Audit(ctx context.Context, r AuditRecord) error
	AuditLog(ctx context.Context, limit int) ([]AuditRecord, error)
}

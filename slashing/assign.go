package slashing

import (
	"context"

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

package sqlite

import (
	"context"
	"errors"
	"fmt"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/vigil-signer/vigil/slashing"
)

// Errors returned by Open (besides slashing.ErrUnavailable for I/O trouble).
var (
	// ErrCorrupt: the file is not a SQLite database, or fails SQLite's
	// integrity check (truncated, overwritten, damaged). It also wraps
	// slashing.ErrUnavailable.
	ErrCorrupt = errors.New("slashing database file is corrupt or not a SQLite database")
	// ErrForeignDatabase: a SQLite database of another application.
	ErrForeignDatabase = errors.New("not a Vigil slashing-protection database")
	// ErrSchemaTooNew: written by a newer Vigil whose schema this code does not know.
	ErrSchemaTooNew = errors.New("slashing database schema is newer than this Vigil")
)

var errClosed = errors.New("slashing database is closed")

// unavailable translates a database error into slashing.ErrUnavailable,
// keeping the driver error in the chain. Context errors stay as they are.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, slashing.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", slashing.ErrUnavailable, op, err)
}

// classifyOpenError turns an error met while opening into ErrCorrupt when
// SQLite says the file is damaged or not a database, else ErrUnavailable.
func classifyOpenError(op string, err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return fmt.Errorf("%w (%w): %s: %w", ErrCorrupt, slashing.ErrUnavailable, op, err)
	}
	return unavailable(op, err)
}

package postgres

import (
	"errors"
	"fmt"

	"github.com/vigil-signer/vigil/slashing"
)

// Errors of this store besides the slashing vocabulary (refusals wrap
// slashing.ErrSlashable, database trouble wraps slashing.ErrUnavailable,
// import problems wrap slashing.ErrInterchange).
var (
	// ErrFenced: the write carried a term that is no longer the database's
	// current term (another instance took over with SetTerm). Nothing was
	// written. It matches slashing.ErrFenced (the signer answers "not the
	// leader", 503, and signs nothing) and slashing.ErrUnavailable as well.
	ErrFenced error = &fencedError{}
	// ErrForeignDatabase: the schema holds tables that are not Vigil's.
	ErrForeignDatabase = errors.New("not a Vigil slashing-protection database")
	// ErrSchemaTooNew: the schema was written by a newer Vigil.
	ErrSchemaTooNew = errors.New("slashing database schema is newer than this Vigil")
	// ErrSchemaTooOld: migrations are disabled (Options.DisableMigrations)
	// and the schema is not at this code's version; run `vigil slashing
	// migrate`. It wraps slashing.ErrUnavailable.
	ErrSchemaTooOld = fmt.Errorf("%w: slashing database schema is older than this Vigil (run `vigil slashing migrate`)", slashing.ErrUnavailable)
)

type fencedError struct{}

func (*fencedError) Error() string {
	return "fenced: the write's term is no longer current"
}

// Is makes errors.Is(ErrFenced, slashing.ErrFenced) and
// errors.Is(ErrFenced, slashing.ErrUnavailable) true.
func (*fencedError) Is(target error) bool {
	return target == slashing.ErrFenced || target == slashing.ErrUnavailable
}

var errClosed = errors.New("slashing database is closed")

// unavailable wraps a database error (or context error met while talking to
// the database) in slashing.ErrUnavailable, keeping it in the chain.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, slashing.ErrUnavailable) || errors.Is(err, slashing.ErrSlashable) || errors.Is(err, slashing.ErrInterchange) {
		return err
	}
	return fmt.Errorf("%w: postgres: %s: %w", slashing.ErrUnavailable, op, err)
}

func fenced(op string, mine, current int64) error {
	return fmt.Errorf("%w: %s with term %d, the database's term is %d", ErrFenced, op, mine, current)
}

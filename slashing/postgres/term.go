package postgres

import (
	"context"
	"fmt"
)

// SetTerm makes term the database's fencing term and the term this store
// writes with (see the package doc). It waits for every write in flight
// (of every instance) to commit, and once it returns no write with an older
// term can commit. The term never goes down: asking for a term lower than
// the database's fails with ErrFenced (a newer leader exists) and changes
// nothing; asking for the current term is a barrier that changes nothing.
func (s *Store) SetTerm(ctx context.Context, term int64) error {
	if err := s.enter(ctx, "set term"); err != nil {
		return err
	}
	if term <= 0 {
		return fmt.Errorf("postgres: SetTerm(%d): terms are positive", term)
	}
	var current int64
	if err := s.pool.QueryRow(ctx, "SELECT vigil_set_term($1)", term).Scan(&current); err != nil {
		return unavailable("set term", err)
	}
	if current != term {
		return fmt.Errorf("%w: SetTerm(%d): the database's term is already %d", ErrFenced, term, current)
	}
	s.term.Store(term)
	return nil
}

// DatabaseTerm reads the database's current fencing term.
func (s *Store) DatabaseTerm(ctx context.Context) (int64, error) {
	if err := s.enter(ctx, "read term"); err != nil {
		return 0, err
	}
	var t int64
	if err := s.pool.QueryRow(ctx, "SELECT term FROM fence WHERE id = 1").Scan(&t); err != nil {
		return 0, unavailable("read term", err)
	}
	return t, nil
}

package sqlite

import "database/sql"

// WriterDB exposes the writer's connection to tests (to simulate a full disk with
// PRAGMA max_page_count).
func (s *Store) WriterDB() *sql.DB { return s.wdb }

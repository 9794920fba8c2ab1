package sqlite_test

import (
	"database/sql"

	_ "github.com/mattn/go-sqlite3"
)

func openRaw(path string) (*sql.DB, error) {
	return sql.Open("sqlite3", path+"?_busy_timeout=5000")
}

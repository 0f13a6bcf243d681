// Package sqlitetest runs SQL on a SQLite file behind the tool's back, for tests that damage or
// change a database directly.
package sqlitetest

import (
	"database/sql"
	"testing"

	_ "modernc.org/sqlite" // the driver
)

// Exec runs one statement on the SQLite file at path.
func Exec(t testing.TB, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
)

// holdSQLiteLock takes a write lock on the SQLite file at path (begin: "BEGIN IMMEDIATE" lets
// readers in, "BEGIN EXCLUSIVE" keeps them out) until the returned function or the test ends.
func holdSQLiteLock(t *testing.T, path, begin string) func() {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), begin); err != nil {
		t.Fatal(err)
	}
	release := func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		db.Close()
	}
	t.Cleanup(release)
	return release
}

// TestLockTimeoutFlag: backup and restore give up after --lock-timeout when another process
// holds the SQLite database, naming the file and saying nothing was changed; without the
// lock the same commands succeed.
func TestLockTimeoutFlag(t *testing.T) {
	dir := sitePlatform(t)
	site := filepath.Join(dir, "db.sqlite3")
	release := holdSQLiteLock(t, site, "BEGIN EXCLUSIVE")
	for _, args := range [][]string{
		{"backup", "--lock-timeout", "1s", "--skip-preflight"}, // the backup's own reads
		{"backup", "--lock-timeout", "1s"},                     // the checks before it
	} {
		code, out := cli(t, dir, args...)
		if code != 1 || !strings.Contains(out, site) || !strings.Contains(out, "another process") || !strings.Contains(out, "--lock-timeout") {
			t.Fatalf("%v behind a lock: exit %d\n%s", args, code, out)
		}
		t.Log(out)
	}
	release()
	if code, out := cli(t, dir, "backup", "--lock-timeout", "1s"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))

	target := filepath.Join(t.TempDir(), "db.sqlite3")
	db, err := database.Create(context.Background(), "sqlite:///"+target)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ApplySchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	t.Setenv("DATABASE_URL", "sqlite:///"+target)
	release = holdSQLiteLock(t, target, "BEGIN IMMEDIATE")
	code, out := cli(t, dir, "restore", backup, "--force", "--skip-files", "--lock-timeout", "1s")
	if code != 1 || !strings.Contains(out, target) || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("restore behind a lock: exit %d\n%s", code, out)
	}
	if n := rowCount(t, "sqlite:///"+target, "books.chapter"); n != 0 {
		t.Fatalf("the failed restore loaded %d chapters", n)
	}
	release()
	if code, out := cli(t, dir, "restore", backup, "--force", "--skip-files", "--lock-timeout", "1s"); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
}

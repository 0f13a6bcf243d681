package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestInitDB: init-db gives a new SQLite file the schema, a backup restores into it, and a
// second init-db is refused (exit 1) with the database named.
func TestInitDB(t *testing.T) {
	site := sitePlatform(t)
	if code, out := cli(t, site, "backup", "--quiet"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(site, "backups"))
	target := t.TempDir()
	if code, out := cli(t, target, "init-db", "--database", "sqlite:///fresh.sqlite3"); code != 0 || !strings.Contains(out, "fresh.sqlite3") {
		t.Fatalf("init-db: exit %d\n%s", code, out)
	}
	if code, out := cli(t, target, "restore", backup, "--force", "--skip-files", "--database", "sqlite:///fresh.sqlite3"); code != 0 {
		t.Fatalf("restore into the initialised database: exit %d\n%s", code, out)
	}
	code, out := cli(t, target, "init-db", "--database", "sqlite:///fresh.sqlite3")
	if code != 1 || !strings.Contains(out, "not empty") {
		t.Errorf("init-db of a database with tables: exit %d\n%s", code, out)
	}
}

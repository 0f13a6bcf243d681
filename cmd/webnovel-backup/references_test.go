package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// lostCover removes the storage file of book 1's cover and returns its key.
func lostCover(t *testing.T, dir string) string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "db.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var key string
	if err := db.QueryRow("SELECT cover_image FROM books_book WHERE id = 1").Scan(&key); err != nil || key == "" {
		t.Fatalf("book 1's cover: %q %v", key, err)
	}
	if err := os.Remove(filepath.Join(dir, "media", filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
	return key
}

// doctor --references passes on a clean platform and fails naming the row and path once a
// file is lost; a backup of that platform succeeds (exit 0) with a warning naming them.
func TestReferencesCLI(t *testing.T) {
	dir := sitePlatform(t)
	code, out := cli(t, dir, "doctor", "--references", "--backup-dir", filepath.Join(dir, "backups"))
	if code != outcome.CodeOK || !hasCheckLine(out, "OK", "references") {
		t.Fatalf("doctor --references on a clean platform: exit %d\n%s", code, out)
	}
	key := lostCover(t, dir)
	code, out = cli(t, dir, "doctor", "--references", "--backup-dir", filepath.Join(dir, "backups"))
	if code != outcome.CodeFailure || !hasCheckLine(out, "FAIL", "references") || !strings.Contains(out, "books.book pk 1 field cover_image names file \""+key+"\"") {
		t.Fatalf("doctor --references after losing %s: exit %d\n%s", key, code, out)
	}
	code, out = cli(t, dir, "backup", "--quiet")
	if code != outcome.CodeOK || !strings.Contains(out, "warning: books.book pk 1 field cover_image names file \""+key+"\"") || !strings.Contains(out, "1 missing from the storage") {
		t.Fatalf("backup of a platform that lost %s: exit %d, want 0 with a warning\n%s", key, code, out)
	}
}

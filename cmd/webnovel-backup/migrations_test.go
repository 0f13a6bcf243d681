package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
)

// The command line shows the migration comparison: restore --dry-run in text and --json, a
// target behind refused with exit 2, and verify the record alone or, given a database, the
// comparison as warnings.
func TestMigrationCheckOnTheCommandLine(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup_data"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	db := filepath.Join(dir, "db.sqlite3")
	dbURL := "sqlite:///" + db

	code, out := cli(t, dir, "verify", backup)
	if code != 0 || !strings.Contains(out, "migrations: 3 recorded (accounts: 2, books: 1)") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	code, out = cli(t, dir, "restore", backup, "--dry-run")
	if code != 0 || !strings.Contains(out, "migrations: 3 recorded, the target has the same") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}

	sqlitetest.Exec(t, db, "INSERT INTO django_migrations (id, app, name, applied) SELECT max(id) + 1, 'books', '0002_book_subtitle', '2024-06-01' FROM django_migrations")
	code, out = cli(t, dir, "restore", backup, "--dry-run", "--json")
	var rep struct {
		Status     string
		Warnings   []string
		Migrations struct {
			Recorded, Compared bool
			Backup             map[string][]string
			Missing, Newer     []string
		}
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil || code != 0 || rep.Status != "dry-run" ||
		!rep.Migrations.Recorded || !rep.Migrations.Compared || len(rep.Migrations.Backup["books"]) != 1 ||
		!slices.Equal(rep.Migrations.Newer, []string{"books.0002_book_subtitle"}) || len(rep.Migrations.Missing) != 0 ||
		!slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "books.0002_book_subtitle") }) {
		t.Fatalf("dry run --json, target ahead: exit %d, %v\n%s", code, err, out)
	}

	sqlitetest.Exec(t, db, "DELETE FROM django_migrations WHERE app = 'accounts' AND name = '0002_initial'")
	code, out = cli(t, dir, "restore", backup, "--force")
	if code != 2 || !strings.Contains(out, "accounts.0002_initial") || !strings.Contains(out, "manage.py migrate") {
		t.Fatalf("target behind: exit %d, want 2 naming the migration\n%s", code, out)
	}
	code, out = cli(t, dir, "restore", backup, "--book", "1", "--dry-run")
	if code != 2 || !strings.Contains(out, "accounts.0002_initial") {
		t.Fatalf("--book into a target behind: exit %d, want 2\n%s", code, out)
	}
	code, out = cli(t, dir, "verify", "--database", dbURL, backup)
	if code != 0 || !strings.Contains(out, "the target LACKS accounts.0002_initial") || !strings.Contains(out, "would be refused") {
		t.Fatalf("verify --database, target behind: exit %d\n%s", code, out)
	}
}

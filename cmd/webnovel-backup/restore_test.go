package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// withoutTerminal runs f with standard input on /dev/null, as under cron or CI.
func withoutTerminal(t *testing.T, f func()) {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	old := os.Stdin
	os.Stdin = null
	defer func() { os.Stdin = old }()
	f()
}

// rowCount counts a model's rows in a SQLite target.
func rowCount(t *testing.T, url, label string) int64 {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, _ := platform.Default.Model(label)
	n, err := db.CountRows(context.Background(), []platform.Model{m})
	if err != nil {
		t.Fatal(err)
	}
	return n[m.Label]
}

// Every example of restore's help (restoring from backups) works as written, and a restore
// nobody confirmed changes nothing.
func TestRestoreExamples(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup_data"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	if code, out := cli(t, dir, "backup_data", "--compress", "--backup-dir", "archives"); code != 0 {
		t.Fatalf("backup --compress: %d %s", code, out)
	}
	archive := onlyBackup(t, filepath.Join(dir, "archives"))

	// The target: an empty migrated database and an empty storage folder.
	dbURL, media := emptyTarget(t)
	want := rowCount(t, "sqlite:///"+filepath.Join(dir, "db.sqlite3"), "books.chapter")

	withoutTerminal(t, func() {
		code, out := cli(t, dir, "restore_data", backup)
		if code != 2 || !strings.Contains(out, "--force") || !strings.Contains(out, "books.chapter") {
			t.Fatalf("unconfirmed restore: exit %d\n%s", code, out)
		}
		if rowCount(t, dbURL, "books.chapter") != 0 {
			t.Fatal("an unconfirmed restore changed the database")
		}
		code, out = cli(t, dir, "restore_data", backup, "--dry-run")
		if code != 0 || !strings.Contains(out, "Dry run") || rowCount(t, dbURL, "books.chapter") != 0 {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		if _, err := os.Stat(media); err == nil {
			entries, _ := os.ReadDir(media)
			if len(entries) > 0 {
				t.Fatal("a dry run wrote files")
			}
		}
	})

	steps := []struct {
		args  []string
		check func(t *testing.T)
	}{
		{[]string{"restore_data", backup, "--force", "--skip-files"}, func(t *testing.T) {
			if rowCount(t, dbURL, "books.chapter") != want {
				t.Fatal("database not restored")
			}
			if _, err := os.Stat(filepath.Join(media, "content")); err == nil {
				t.Fatal("--skip-files restored files")
			}
		}},
		{[]string{"restore_data", backup, "--force", "--skip-db"}, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(media, "content")); err != nil {
				t.Fatal("--skip-db did not restore files")
			}
		}},
		{[]string{"restore_data", archive, "--force"}, nil},
		{[]string{"restore_data", backup, "--force"}, func(t *testing.T) {
			if rowCount(t, dbURL, "books.chapter") != want {
				t.Fatal("a second restore did not replace the rows")
			}
		}},
	}
	for _, s := range steps {
		t.Run(strings.Join(s.args[2:], " "), func(t *testing.T) {
			code, out := cli(t, dir, s.args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if s.check != nil {
				s.check(t)
			}
		})
	}
	if code, out := cli(t, dir, "restore"); code != 2 || !strings.Contains(out, "restore PATH") {
		t.Fatalf("restore without PATH: exit %d %s", code, out)
	}
}

func TestTestBackupRestoreCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "")
	t.Setenv("STORAGE_URL", "")
	code, out := cli(t, dir, "test_backup_restore")
	if code != 0 || !strings.Contains(out, "PASS") || !strings.Contains(out, "generated sample") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// A configured platform is only read: its files and rows are unchanged.
	p := filepath.Join(dir, "site")
	dbURL := "sqlite:///" + filepath.Join(p, "db.sqlite3")
	if _, err := demo.Fill(context.Background(), dbURL, filepath.Join(p, "media"), demo.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(p, "db.sqlite3"))
	code, out = cli(t, dir, "test-backup-restore", "--database", dbURL, "--storage", filepath.Join(p, "media"))
	if code != 0 || !strings.Contains(out, "PASS") || !strings.Contains(out, "configured platform") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	after, _ := os.ReadFile(filepath.Join(p, "db.sqlite3"))
	if string(before) != string(after) {
		t.Fatal("test-backup-restore wrote to the configured database")
	}
	leftovers, _ := filepath.Glob(filepath.Join(p, "*scratch*"))
	if len(leftovers) > 0 {
		t.Fatalf("scratch left behind: %v", leftovers)
	}
	// An empty folder and a private one are recorded, brought back and compared. What the
	// backup does not keep (here a symlink) is shown with the verdict: the comparison cannot
	// see it, since no restore brings it back.
	if err := os.MkdirAll(filepath.Join(p, "media", "uploads", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(p, "media", "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "media", "private", "contract.pdf"), []byte("pdf"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../covers", filepath.Join(p, "media", "uploads", "link")); err != nil {
		t.Fatal(err)
	}
	code, out = cli(t, dir, "test-backup-restore", "--database", dbURL, "--storage", filepath.Join(p, "media"))
	if code != 0 || !strings.Contains(out, "backup warning: skipped symlink uploads/link") || !strings.Contains(out, "PASS, with 1 backup warnings") ||
		strings.Contains(out, "folder") {
		t.Fatalf("a round trip whose backup warned of a symlink only: exit %d\n%s", code, out)
	}
}

// A merge's report does not read as a replace: the rows it upserted, and that the table's
// others stay.
func TestRestoreMergeReport(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup", "--backup-dir", "b"); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	b := onlyBackup(t, filepath.Join(dir, "b"))
	code, out := cli(t, dir, "restore", b, "--merge", "--models", "books.Author", "--skip-files", "--force")
	if code != 0 || !strings.Contains(out, "rows merged (it had") {
		t.Fatalf("restore --merge: exit %d\n%s", code, out)
	}
}

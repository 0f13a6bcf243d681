package roundtrip

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// A configured PostgreSQL platform round-trips through a scratch database on the same server,
// which is dropped afterwards; the platform itself is only read.
func TestRunPostgresPlatform(t *testing.T) {
	url := pgtest.URL(t)
	media := filepath.Join(t.TempDir(), "media")
	if _, err := demo.Fill(context.Background(), url, media, demo.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Options{DatabaseURL: url, StorageURL: media, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.Generated || rep.Rows == 0 || rep.Files == 0 {
		t.Fatalf("report %+v", rep)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname LIKE 'wnb_scratch_%'").Scan(&left)
	if left != 0 {
		t.Fatalf("%d scratch databases left", left)
	}
}

// A difference between a backup and a database is reported with the model, the pk and the
// field; a file difference with the file.
func TestCompareNamesDifferences(t *testing.T) {
	dir := t.TempDir()
	dbURL := "sqlite:///" + filepath.Join(dir, "db.sqlite3")
	media := filepath.Join(dir, "media")
	if _, err := demo.Fill(context.Background(), dbURL, media, demo.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	s, err := pipeline.Start(context.Background(), pipeline.Config{Workers: 2, DatabaseURL: dbURL, StorageURL: media})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: dbURL, StorageURL: media, BackupDir: filepath.Join(dir, "backups")})
	if err != nil {
		t.Fatal(err)
	}
	// Change a row and a file after the backup.
	sqlitetest.Exec(t, filepath.Join(dir, "db.sqlite3"), "UPDATE books_chapter SET title = 'changed' WHERE id = 3")
	var victim string
	filepath.WalkDir(filepath.Join(media, "content"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && victim == "" {
			victim = p
		}
		return err
	})
	os.WriteFile(victim, []byte("{}"), 0o644)
	// A file added and one removed after the backup are named too.
	os.WriteFile(filepath.Join(media, "content", "added-after-backup.txt"), []byte("new"), 0o644)
	var gone string
	filepath.WalkDir(filepath.Join(media, "media"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && gone == "" {
			gone = p
		}
		return err
	})
	os.Remove(gone)

	rep := &Report{}
	if err := CompareDatabase(context.Background(), rep, b.Path, dbURL, "db"); err != nil {
		t.Fatal(err)
	}
	if err := CompareFiles(context.Background(), rep, filepath.Join(b.Path, "files"), media, "storage"); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(rep.Differences, "\n")
	rel, _ := filepath.Rel(media, victim)
	goneRel, _ := filepath.Rel(media, gone)
	if len(rep.Differences) != 4 || !strings.Contains(all, "books.chapter pk 3 field title") || !strings.Contains(all, filepath.ToSlash(rel)) ||
		!strings.Contains(all, "file content/added-after-backup.txt is not in the backup") || !strings.Contains(all, "file "+filepath.ToSlash(goneRel)+" is missing") {
		t.Fatalf("differences:\n%s", all)
	}
}

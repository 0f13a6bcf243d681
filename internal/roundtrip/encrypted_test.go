package roundtrip

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
)

// test-backup-restore with an identity backs up encrypted to its key, restores with it and
// compares against the decrypted backup: PASS.
func TestRunEncrypted(t *testing.T) {
	k := enctest.NewKey(t)
	rep, err := Run(context.Background(), Options{Workers: 2, Sample: demo.DefaultOptions(), Identities: k.Identities})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.Rows == 0 || rep.Files == 0 {
		t.Fatalf("report %+v", rep)
	}
	if !rep.Encrypted {
		t.Fatal("the round trip's backup was not encrypted")
	}
}

// The comparison of an encrypted backup decrypts it: a restore of it matches, and a row
// changed after the restore is named.
func TestCompareEncryptedBackup(t *testing.T) {
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
	b, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: dbURL, StorageURL: media, BackupDir: filepath.Join(dir, "backups")})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	k := enctest.NewKey(t)
	enctest.Encrypt(t, b.Path, k, "")
	o := Options{Workers: 2, Identities: k.Identities}
	scratchDB := "sqlite:///" + filepath.Join(dir, "scratch.sqlite3")
	if err := applySchema(context.Background(), scratchDB); err != nil {
		t.Fatal(err)
	}
	scratchMedia := filepath.Join(dir, "scratch-media")
	if err := runRestore(context.Background(), o, nil, b.Path, scratchDB, scratchMedia); err != nil {
		t.Fatal(err)
	}
	rep := &Report{}
	plain, err := plainBackup(context.Background(), o, b.Path, filepath.Join(t.TempDir(), "plain"), rep)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Encrypted {
		t.Fatal("an encrypted backup was not seen as one")
	}
	compare := func() string {
		rep := &Report{}
		if err := CompareDatabase(context.Background(), rep, plain, scratchDB, "db"); err != nil {
			t.Fatal(err)
		}
		if err := CompareFiles(context.Background(), rep, filepath.Join(plain, "files"), scratchMedia, "storage"); err != nil {
			t.Fatal(err)
		}
		return strings.Join(rep.Differences, "\n")
	}
	if d := compare(); d != "" {
		t.Fatalf("a restore of the encrypted backup differs:\n%s", d)
	}
	sqlitetest.Exec(t, filepath.Join(dir, "scratch.sqlite3"), "UPDATE books_chapter SET title = 'changed' WHERE id = 3")
	if d := compare(); !strings.Contains(d, "books.chapter pk 3 field title") {
		t.Fatalf("differences:\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(plain, "db_books_chapter.json")); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Item 22: a file that is neither a backup folder nor an archive is named as such, by
// restore and verify, whatever it holds.
func TestRestoreNotABackup(t *testing.T) {
	dir := sitePlatform(t)
	emptyTarget(t)
	gzNoTar := filepath.Join(t.TempDir(), "notes.tar.gz")
	// A gzip member holding plain text, not a tar.
	gz := []byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7, 0x02, 0x00, 0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00}
	if err := os.WriteFile(gzNoTar, gz, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "db.sqlite3"), gzNoTar} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			code, out := cli(t, dir, "restore", path, "--force")
			if code != 2 || !strings.Contains(out, path+" is neither a backup folder nor a backup archive") {
				t.Errorf("restore: exit %d, want 2 naming the path:\n%s", code, out)
			}
			code, out = cli(t, dir, "verify", path)
			if code != 1 || !strings.Contains(out, path+" is neither a backup folder nor a backup archive") {
				t.Errorf("verify: exit %d, want 1 naming the path:\n%s", code, out)
			}
		})
	}
}

// Item 22: a files-only backup restores without a database (none configured that works), and
// a restore that would restore nothing (--skip-db of a database-only backup, --skip-files of
// a files-only one) is refused as a usage error, never "0 restored" with success.
func TestRestoreScopeOfBackup(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup", "--skip-db", "--backup-dir", "filesonly"); code != 0 {
		t.Fatalf("backup --skip-db: %d %s", code, out)
	}
	filesOnly := onlyBackup(t, filepath.Join(dir, "filesonly"))
	if code, out := cli(t, dir, "backup", "--skip-files", "--backup-dir", "dbonly"); code != 0 {
		t.Fatalf("backup --skip-files: %d %s", code, out)
	}
	dbOnly := onlyBackup(t, filepath.Join(dir, "dbonly"))

	if code, out := cli(t, dir, "backup", "--skip-db", "--compress", "--backup-dir", "filesonlyarchive"); code != 0 {
		t.Fatalf("backup --skip-db --compress: %d %s", code, out)
	}
	filesOnlyArchive := onlyBackup(t, filepath.Join(dir, "filesonlyarchive"))

	for _, b := range []string{filesOnly, filesOnlyArchive} {
		t.Run("files-only backup without a database "+filepath.Base(b), func(t *testing.T) {
			_, media := emptyTarget(t)
			noDB := filepath.Join(t.TempDir(), "absent", "db.sqlite3")
			t.Setenv("DATABASE_URL", "sqlite:///"+noDB)
			code, out := cli(t, dir, "restore", b, "--force")
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if _, err := os.Stat(filepath.Join(media, "content")); err != nil {
				t.Errorf("files not restored: %v", err)
			}
			if _, err := os.Stat(noDB); err == nil {
				t.Error("a files-only restore created a database")
			}
		})
	}
	refusals := []struct {
		name   string
		backup string
		flag   string
	}{
		{"--skip-db of a database-only backup", dbOnly, "--skip-db"},
		{"--skip-files of a files-only backup", filesOnly, "--skip-files"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			dbURL, media := emptyTarget(t)
			code, out := cli(t, dir, "restore", tt.backup, "--force", tt.flag)
			if code != 2 || !strings.Contains(out, tt.flag+": the backup holds no") || !strings.Contains(out, "nothing to restore") {
				t.Fatalf("exit %d, want 2 saying nothing is left to restore:\n%s", code, out)
			}
			if rowCount(t, dbURL, "books.chapter") != 0 {
				t.Error("refused restore changed the database")
			}
			if _, err := os.Stat(filepath.Join(media, "content")); err == nil {
				t.Error("refused restore wrote files")
			}
		})
	}
}

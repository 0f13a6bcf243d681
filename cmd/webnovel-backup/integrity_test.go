package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

// cliSplit runs one command line in dir and returns its exit code, standard output and
// standard error apart.
func cliSplit(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(old)
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// copyBackup copies a backup folder into a fresh temporary folder, keeping its name.
func copyBackup(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// emptyTarget makes an empty migrated SQLite database and an empty storage folder and points
// DATABASE_URL and STORAGE_URL at them.
func emptyTarget(t *testing.T) (dbURL, media string) {
	t.Helper()
	target := t.TempDir()
	dbURL = "sqlite:///" + filepath.Join(target, "db.sqlite3")
	media = filepath.Join(target, "media")
	db, err := database.Create(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ApplySchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("STORAGE_URL", media)
	return dbURL, media
}

// firstFile returns the first regular file under dir/sub, slash-separated relative to dir.
func firstFile(t *testing.T, dir, sub string) string {
	t.Helper()
	var found string
	filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
		if err == nil && found == "" && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			found = filepath.ToSlash(rel)
		}
		return err
	})
	if found == "" {
		t.Fatalf("no file under %s", sub)
	}
	return found
}

// tamper flips one byte in the middle of dir/rel.
func tamper(t *testing.T, dir, rel string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	data, err := os.ReadFile(p)
	if err != nil || len(data) == 0 {
		t.Fatalf("tamper %s: %v", rel, err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editMetadataJSON rewrites the backup's metadata as a JSON object, keeping it valid.
func editMetadataJSON(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, layout.FileMetadata)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, _ := json.Marshal(m)
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// asPythonBackup makes dir look as the Python command writes a backup: no SHA256SUMS and
// metadata with only its five keys.
func asPythonBackup(t *testing.T, dir string) {
	t.Helper()
	os.Remove(filepath.Join(dir, layout.FileSums))
	python := map[string]bool{"backup_timestamp": true, "django_version": true, "backup_options": true, "storage_backend": true, "database_engine": true}
	editMetadataJSON(t, dir, func(m map[string]any) {
		for k := range m {
			if !python[k] {
				delete(m, k)
			}
		}
	})
}

// Item 7: a backup this tool wrote cannot have its checks switched off by deleting or editing
// SHA256SUMS; the restore refuses it, naming the file, and changes nothing.
func TestRestoreRefusesUnverifiableBackup(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	tests := []struct {
		name   string
		break_ func(t *testing.T, b string)
		want   string
	}{
		{"SHA256SUMS deleted", func(t *testing.T, b string) {
			os.Remove(filepath.Join(b, layout.FileSums))
		}, "SHA256SUMS is missing"},
		{"SHA256SUMS deleted and a fixture tampered", func(t *testing.T, b string) {
			os.Remove(filepath.Join(b, layout.FileSums))
			tamper(t, b, "db_books_chapter.json")
		}, "SHA256SUMS is missing"},
		{"SHA256SUMS deleted and a storage file tampered", func(t *testing.T, b string) {
			os.Remove(filepath.Join(b, layout.FileSums))
			tamper(t, b, firstFile(t, b, layout.FilesDir))
		}, "SHA256SUMS is missing"},
		{"SHA256SUMS deleted and format_version removed", func(t *testing.T, b string) {
			os.Remove(filepath.Join(b, layout.FileSums))
			tamper(t, b, "db_books_chapter.json")
			editMetadataJSON(t, b, func(m map[string]any) { delete(m, "format_version") })
		}, "SHA256SUMS is missing"},
		{"SHA256SUMS rewritten for a tampered fixture", func(t *testing.T, b string) {
			tamper(t, b, "db_books_chapter.json")
			sw, err := layout.SumTree(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sw.WriteFile(b); err != nil {
				t.Fatal(err)
			}
		}, "SHA256SUMS was changed after the backup"},
		{"manifest_sha256 removed and SHA256SUMS rewritten", func(t *testing.T, b string) {
			tamper(t, b, "db_books_chapter.json")
			sw, _ := layout.SumTree(context.Background(), b)
			sw.WriteFile(b)
			editMetadataJSON(t, b, func(m map[string]any) { delete(m, "manifest_sha256") })
		}, "no manifest_sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := copyBackup(t, backup)
			tt.break_(t, b)
			dbURL, media := emptyTarget(t)
			code, out := cli(t, dir, "restore", b, "--force")
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, want a refusal saying %q:\n%s", code, tt.want, out)
			}
			if n := rowCount(t, dbURL, "books.chapter"); n != 0 {
				t.Errorf("refused restore loaded %d chapters", n)
			}
			if _, err := os.Stat(filepath.Join(media, "content")); err == nil {
				t.Error("refused restore wrote files")
			}
			if code, out := cli(t, dir, "verify", b); code == 0 {
				t.Errorf("verify passed a broken backup:\n%s", out)
			}
		})
	}
}

// Item 7: a Python backup (no format version, no SHA256SUMS) restores with a warning on
// standard error whatever the output mode; --require-checksums refuses it (restore and verify).
func TestPythonBackupWithoutChecksums(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := copyBackup(t, onlyBackup(t, filepath.Join(dir, "backups")))
	asPythonBackup(t, backup)
	for _, mode := range [][]string{nil, {"--json"}, {"--quiet"}} {
		t.Run("restore "+strings.Join(mode, " "), func(t *testing.T) {
			dbURL, _ := emptyTarget(t)
			args := append([]string{"restore", backup, "--force"}, mode...)
			code, stdout, stderr := cliSplit(t, dir, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, "warning: backup has no SHA256SUMS") {
				t.Errorf("no warning on standard error:\n%s", stderr)
			}
			if rowCount(t, dbURL, "books.chapter") == 0 {
				t.Error("nothing restored")
			}
		})
	}
	t.Run("restore --require-checksums", func(t *testing.T) {
		dbURL, _ := emptyTarget(t)
		code, out := cli(t, dir, "restore", backup, "--force", "--require-checksums")
		if code != 2 || !strings.Contains(out, "SHA256SUMS") || !strings.Contains(out, "--require-checksums") {
			t.Fatalf("exit %d, want 2 naming SHA256SUMS:\n%s", code, out)
		}
		if rowCount(t, dbURL, "books.chapter") != 0 {
			t.Error("refused restore changed the database")
		}
	})
	t.Run("verify", func(t *testing.T) {
		code, stdout, stderr := cliSplit(t, dir, "verify", backup, "--json")
		if code != 0 || !strings.Contains(stderr, "warning: no SHA256SUMS") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		code, out := cli(t, dir, "verify", backup, "--require-checksums")
		if code != 1 || !strings.Contains(out, "SHA256SUMS: missing, and --require-checksums is set") {
			t.Fatalf("verify --require-checksums: exit %d\n%s", code, out)
		}
	})
}

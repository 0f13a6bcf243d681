package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

// cli runs one command line in dir and returns its exit code and output.
func cli(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(old)
	var out bytes.Buffer
	code := run(context.Background(), args, &out, &out)
	return code, out.String()
}

// sitePlatform writes a small platform where Django's defaults point: ./db.sqlite3, ./media.
func sitePlatform(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	opts := demo.DefaultOptions()
	if _, err := demo.Fill(context.Background(), "sqlite:///"+filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media"), opts); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", "")
	t.Setenv("STORAGE_URL", "")
	t.Setenv("NATS_URL", "")
	return dir
}

func onlyBackup(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var found []string
	for _, e := range entries {
		if layout.IsBackupName(e.Name()) {
			found = append(found, filepath.Join(dir, e.Name()))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one backup in %s, found %v", dir, found)
	}
	return found[0]
}

// Every example of backup's help (creating backups) works as written.
func TestBackupExamples(t *testing.T) {
	dir := sitePlatform(t)
	tests := []struct {
		line      string
		backupDir string
		check     func(t *testing.T, backup string, m *layout.Metadata)
	}{
		{"backup_data", "backups", func(t *testing.T, b string, m *layout.Metadata) {
			if len(m.Models) != 10 || m.Files.Count == 0 {
				t.Fatalf("models %d files %d", len(m.Models), m.Files.Count)
			}
		}},
		{"backup_data --backup-dir " + filepath.Join(dir, "elsewhere"), filepath.Join(dir, "elsewhere"), nil},
		{"backup_data --skip-files --backup-dir b3", "b3", func(t *testing.T, b string, m *layout.Metadata) {
			if m.Files.Count != 0 || m.BackupOptions.IncludeFiles {
				t.Fatalf("skip-files backed up %d files", m.Files.Count)
			}
			if _, err := os.Stat(filepath.Join(b, "files")); !os.IsNotExist(err) {
				t.Fatal("files/ exists")
			}
		}},
		{"backup_data --skip-db --backup-dir b4", "b4", func(t *testing.T, b string, m *layout.Metadata) {
			if len(m.Models) != 0 || !m.BackupOptions.SkipDB || m.Files.Count == 0 {
				t.Fatalf("skip-db: models %d files %d", len(m.Models), m.Files.Count)
			}
		}},
		{"backup_data --models books.Book books.Chapter accounts.User --backup-dir b5", "b5", func(t *testing.T, b string, m *layout.Metadata) {
			var labels []string
			for _, e := range m.Models {
				labels = append(labels, e.Label)
			}
			if strings.Join(labels, " ") != "accounts.user books.book books.chapter" {
				t.Fatalf("models = %v", labels)
			}
			if strings.Join(m.BackupOptions.Models.Labels, " ") != "accounts.user books.book books.chapter" {
				t.Fatalf("backup_options.models = %v", m.BackupOptions.Models.Labels)
			}
		}},
		{"backup_data --compress --backup-dir b6", "b6", nil},
		{"backup_data --skip-db --include-files --backup-dir b7", "b7", func(t *testing.T, b string, m *layout.Metadata) {
			if len(m.Models) != 0 || !m.BackupOptions.IncludeFiles || m.Files.Count == 0 {
				t.Fatalf("files only: models %d files %d", len(m.Models), m.Files.Count)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			code, out := cli(t, dir, strings.Fields(tt.line)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			bd := tt.backupDir
			if !filepath.IsAbs(bd) {
				bd = filepath.Join(dir, bd)
			}
			b := onlyBackup(t, bd)
			if strings.HasSuffix(b, ".tar.gz") {
				return
			}
			m, err := layout.ReadMetadata(b)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, b, m)
			}
		})
	}
}

func TestBackupUsageErrors(t *testing.T) {
	dir := sitePlatform(t)
	tests := []struct {
		line string
		code int
		want string
	}{
		{"backup --models books.Nope", 2, "unknown model books.Nope; known models: books.language"},
		{"backup stray", 2, `unexpected argument "stray"`},
		{"backup --skip-db --skip-files", 2, "nothing to back up"},
		{"backup --no-such-flag", 2, "unknown flag"},
		{"backup --database sqlite:///missing.sqlite3", 1, "does not exist"},
		{"backup --database mysql://x/y", 1, "mysql"},
		{"backup --compression lz4", 2, `--compression "lz4": must be gzip, zstd or none`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			code, out := cli(t, dir, strings.Fields(tt.line)...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tt.code, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "backups")); err == nil {
				if entries, _ := os.ReadDir(filepath.Join(dir, "backups")); len(entries) > 0 {
					t.Fatalf("a refused backup wrote %v", entries)
				}
			}
		})
	}
}

func TestDemoCommand(t *testing.T) {
	dir := t.TempDir()
	code, out := cli(t, dir, "demo", "--path", "wn", "--books", "2", "--chapters", "3")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	b := onlyBackup(t, filepath.Join(dir, "wn", "backups"))
	if !strings.Contains(out, b) {
		t.Fatalf("output does not name the backup %s:\n%s", b, out)
	}
	// A second run replaces its own folder; a foreign folder is refused.
	if code, out := cli(t, dir, "demo", "--path", "wn", "--no-backup"); code != 0 {
		t.Fatalf("second demo: exit %d\n%s", code, out)
	}
	os.MkdirAll(filepath.Join(dir, "mine"), 0o755)
	os.WriteFile(filepath.Join(dir, "mine", "precious.txt"), []byte("x"), 0o644)
	if code, out := cli(t, dir, "demo", "--path", "mine"); code != 2 || !strings.Contains(out, "not made by the demo") {
		t.Fatalf("foreign folder: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mine", "precious.txt")); err != nil {
		t.Fatal("demo deleted a foreign file")
	}
}

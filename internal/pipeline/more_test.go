package pipeline_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// A full disk fails the run with the cause, and leaves nothing behind.
func TestFullDiskFailsCleanly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", small).Run() })
	p := sqlitePlatform(t, demo.DefaultOptions()) // ~300 KB of files: more than the disk holds
	s := startSession(t, p, 2, queue.Config{})
	for _, tt := range []struct {
		skipDB bool
		want   string // the database's snapshot copy, or the files, fill the disk
	}{{false, "disk is full"}, {true, "no space left on device"}} {
		_, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
			DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: small, SkipDB: tt.skipDB,
		})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("skip-db %v: err = %v, want %q", tt.skipDB, err, tt.want)
		}
		assertNothingLeft(t, small)
	}
}

// A backup written by the Python commands — dumpdata fixtures, its metadata, files, no
// SHA256SUMS — restores, with a warning that its integrity cannot be verified.
func TestRestorePythonBackup(t *testing.T) {
	dir := pythonBackup(t)
	target := emptyTarget(t, database.SQLite)
	rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Plan.Warnings) == 0 || !strings.Contains(rep.Plan.Warnings[0], "SHA256SUMS") {
		t.Fatalf("warnings = %v", rep.Plan.Warnings)
	}
	if len(rep.Loaded) != 10 || rep.Files != 17 {
		t.Fatalf("loaded %d models and %d files", len(rep.Loaded), rep.Files)
	}
	compareWithBackup(t, dir, target)
}

// pythonBackup writes a backup as the Python commands do: dumpdata fixtures, their metadata,
// files, no SHA256SUMS, no record of migrations.
func pythonBackup(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backup_20241201_143022")
	copyInto(t, "../platform/testdata/sample-fixtures", dir, func(rel string) bool {
		return !strings.Contains(rel, "/") && strings.HasSuffix(rel, ".json") // the indented fixtures
	})
	copyInto(t, "../platform/testdata/sample-fixtures/files", filepath.Join(dir, "files"), func(string) bool { return true })
	meta := `{"backup_timestamp": "2024-12-01T14:30:22.123456", "django_version": "3.2.25",
 "backup_options": {"include_files": true, "skip_db": false, "compress": false, "models": "all"},
 "storage_backend": "FileSystemStorage", "database_engine": "django.db.backends.postgresql"}`
	if err := os.WriteFile(filepath.Join(dir, "backup_metadata.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyInto(t *testing.T, src, dst string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if !keep(filepath.ToSlash(rel)) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An S3 endpoint that answers 500 to every third request and is slow on others: the backup
// retries and completes with every file intact.
func TestBackupFromFlakyS3(t *testing.T) {
	var n atomic.Int64
	flaky := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1)%3 == 0 {
				http.Error(w, "injected failure", http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	s3 := s3test.Start(t, flaky, "media")
	local := sqlitePlatform(t, demo.DefaultOptions())
	n.Store(1) // let the bucket be filled first without failures in the way
	mediaURL := s3.URL("media", "site", "")
	s3test.UploadTree(t, local.storage, mediaURL)
	p := platformFixture{dbURL: local.dbURL, storage: mediaURL}
	s := startSession(t, p, 3, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), FilesPerTask: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != int64(local.summary.Files) || n.Load() < 100 {
		t.Fatalf("%d files backed up of %d, %d requests", rep.Files, local.summary.Files, n.Load())
	}
	sha256sumCheck(t, rep.Path)
}

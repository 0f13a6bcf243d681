package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// A platform whose storage is on S3 backs up like a local one, and restores into S3 storage.
func TestBackupAndRestoreWithS3Storage(t *testing.T) {
	s3 := s3test.Start(t, nil, "media", "restored")
	local := sqlitePlatform(t, demo.DefaultOptions())
	mediaURL := s3.URL("media", "site", "")
	s3test.UploadTree(t, local.storage, mediaURL)
	p := platformFixture{dbURL: local.dbURL, storage: mediaURL}

	s := startSession(t, p, 3, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), FilesPerTask: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	sha256sumCheck(t, rep.Path)
	meta := readMetadata(t, rep.Path)
	if meta.StorageBackend != "S3Boto3Storage" || meta.Files.Count != int64(local.summary.Files) {
		t.Fatalf("metadata storage %q files %d, want S3Boto3Storage and %d", meta.StorageBackend, meta.Files.Count, local.summary.Files)
	}
	for k, want := range treeFiles(t, local.storage) {
		got, err := os.ReadFile(filepath.Join(rep.Path, layout.FilesDir, k))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("files/%s: %v", k, err)
		}
	}

	// Restore into an empty database and an S3 storage prefix.
	target := emptyTarget(t, database.SQLite)
	target.storage = s3.URL("restored", "site", "")
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
		t.Fatal(err)
	}
	compareWithBackup(t, rep.Path, target)
}

// A backup kept on S3, as a folder prefix or as an archive object, restores.
func TestRestoreFromS3(t *testing.T) {
	s3 := s3test.Start(t, nil, "backups")
	src := sqlitePlatform(t, demo.DefaultOptions())
	folder := backupOf(t, src, false)
	archivePath := backupOf(t, src, true)
	s3test.UploadTree(t, filepath.Dir(folder), s3.URL("backups", "nightly", ""))
	s3test.UploadTree(t, filepath.Dir(archivePath), s3.URL("backups", "archives", ""))
	for _, loc := range []string{
		s3.URL("backups", "nightly/"+filepath.Base(folder), ""),
		s3.URL("backups", "archives/"+filepath.Base(archivePath), ""),
	} {
		target := emptyTarget(t, database.SQLite)
		if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: loc}); err != nil {
			t.Fatalf("restore %s: %v", loc, err)
		}
		compareWithBackup(t, folder, target)
	}
	// A location with no backup is a clear error.
	target := emptyTarget(t, database.SQLite)
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: s3.URL("backups", "nightly/backup_20000101_000000", "")}); err == nil {
		t.Fatal("restoring a missing S3 backup succeeded")
	}
}

// Storage and backups both on one S3 service (the cross-region copy): files are copied
// server-side, the backup appears only when complete, and it restores.
func TestBackupToS3(t *testing.T) {
	var copies atomic.Int64
	countCopies := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				copies.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
	s3 := s3test.Start(t, countCopies, "media", "backups")
	local := sqlitePlatform(t, demo.DefaultOptions())
	mediaURL := s3.URL("media", "site", "")
	s3test.UploadTree(t, local.storage, mediaURL)
	p := platformFixture{dbURL: local.dbURL, storage: mediaURL}
	s := startSession(t, p, 3, queue.Config{})
	dest := s3.URL("backups", "nightly", "")

	for _, compress := range []bool{false, true} {
		copies.Store(0)
		rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
			DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dest, Compress: compress, FilesPerTask: 9, ChunkRows: 40,
		})
		if err != nil {
			t.Fatal(err)
		}
		where, _, _ := strings.Cut(rep.Path, "?")
		if !strings.HasPrefix(where, "s3://backups/nightly/backup_") || strings.HasSuffix(where, ".tar.gz") != compress {
			t.Fatalf("backup path %s (compress %v)", rep.Path, compress)
		}
		// An archive's files are read once, into the parts the workers write: no copies.
		if !compress && copies.Load() < int64(local.summary.Files) {
			t.Fatalf("%d server-side copies for %d files: the files were streamed", copies.Load(), local.summary.Files)
		}
		// Nothing is left in the staging area, and the backup verifies and restores.
		b, err := storage.Open(context.Background(), dest)
		if err != nil {
			t.Fatal(err)
		}
		b.Walk(context.Background(), "", func(o storage.Object) error {
			if strings.HasPrefix(o.Key, layout.StagingPrefix) {
				t.Errorf("staging object left: %s", o.Key)
			}
			return nil
		})
		b.Close()
		target := emptyTarget(t, database.SQLite)
		if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
			t.Fatal(err)
		}
		compareWithBackup(t, backupOf(t, local, false), target)
	}
}

// An S3 source's keys no file can stand for are skipped, each named in the run's warnings and
// counted by kind in files.skipped, and the rest is backed up; a file with files under its
// name ("a" and "a/b") fails the backup into a local folder at once (no retry can write both),
// naming the file, and leaves no backup.
func TestBackupS3KeysNoFileCanHold(t *testing.T) {
	s3 := s3test.Start(t, nil, "media")
	p := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, Seed: 4, NoFiles: true})
	p.storage = s3.URL("media", "site", "")
	for key, data := range map[string]string{"site/ok.txt": "kept", "site/empty/": "", "site/marker/": "bytes", "site/x//y": "lost"} {
		s3.Put(t, "media", key, []byte(data))
	}
	s := startSession(t, p, 2, queue.Config{})
	backup := func(dest string) (*coordinator.BackupReport, error) {
		return s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dest})
	}
	rep, err := backup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	meta := readMetadata(t, rep.Path)
	if meta.Files.Count != 1 || meta.Files.Skipped["folder marker"] != 1 || meta.Files.Skipped["unaddressable key"] != 1 {
		t.Fatalf("files %d, skipped %v: want ok.txt backed up, a folder marker and an unaddressable key skipped", meta.Files.Count, meta.Files.Skipped)
	}
	for _, key := range []string{"site/marker/", "site/x//y"} {
		if !hasWarning(rep.Warnings, "skipped", key) {
			t.Errorf("no warning names %s: %q", key, rep.Warnings)
		}
	}

	s3.Put(t, "media", "site/ok.txt/inner", []byte("under a file's name"))
	dest := t.TempDir()
	_, err = backup(dest)
	if err == nil || !strings.Contains(err.Error(), "ok.txt") || !strings.Contains(err.Error(), "attempt 1 ") {
		t.Fatalf("backup of a and a/b: %v, want it failed at the first attempt naming ok.txt", err)
	}
	if names := backupNames(t, dest); len(names) != 0 {
		t.Fatalf("the failed backup left %v", names)
	}
}

// An S3 storage whose keys hold control characters, "+" and "%" (written by another tool)
// backs up and restores into S3 storage with every key exact, from a service that url-encodes
// its listings as S3 does: no key is mangled, reported vanished or left out.
func TestBackupS3KeysWithControlCharacters(t *testing.T) {
	s3 := s3test.Start(t, nil, "media", "restored")
	s3.EncodeListings()
	p := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, Seed: 5, NoFiles: true})
	p.storage = s3.URL("media", "site", "")
	names := []string{"ctl\x01\r\x7f.txt", "dir\x02/in.txt", "plus+ %41.txt"}
	for _, name := range names {
		s3.Put(t, "media", "site/"+name, []byte("content of "+name))
	}
	s := startSession(t, p, 2, queue.Config{})
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != int64(len(names)) {
		t.Fatalf("backed up %d files, want %d", rep.Files, len(names))
	}
	for _, w := range rep.Warnings {
		if !strings.Contains(w, "which the storage does not hold") { // the rows' own files: none here
			t.Errorf("warned %q", w)
		}
	}
	sha256sumCheck(t, rep.Path)
	target := emptyTarget(t, database.SQLite)
	target.storage = s3.URL("restored", "site", "")
	if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		obj, err := s3.Backend.GetObject("restored", "site/"+name, nil)
		if err != nil {
			t.Fatalf("restored %q: %v", name, err)
		}
		got, _ := io.ReadAll(obj.Contents)
		obj.Contents.Close()
		if string(got) != "content of "+name {
			t.Errorf("restored %q holds %q", name, got)
		}
	}
}

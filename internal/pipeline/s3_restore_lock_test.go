package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/objectlock"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// TestS3StorageRestoreLock: a restore into S3 storage holds a lock object there, since S3 has
// no lock that a dead process lets go of. While another restore holds it, a files-only
// restore (which no database lock covers) and a backup of that storage are refused, naming
// the holder, and nothing is written. A lock left by a restore that died is taken over once
// stale; a backup warns of it and never copies it.
func TestS3StorageRestoreLock(t *testing.T) {
	var (
		mu       sync.Mutex
		requests []string // the S3 requests on the lock object
	)
	srv := s3test.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/"+coordinator.StorageLockKey) {
				mu.Lock()
				requests = append(requests, r.Method+" "+r.Header.Get("If-None-Match")+r.Header.Get("If-Match"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	}, "media")
	src := sqlitePlatform(t, demo.Options{Books: 2, ChaptersPerBook: 2, Users: 1, Authors: 1, Languages: 1, MediaPerChapter: 2, FileBytes: 500, Seed: 3})
	backup := backupOf(t, src, false)
	storageURL := srv.URL("media", "site", "")
	s := startSession(t, platformFixture{dbURL: src.dbURL, storage: storageURL}, 2, queue.Config{})
	ctx := context.Background()
	restore := func() error {
		_, err := s.Coordinator.Restore(ctx, coordinator.RestoreOptions{Source: backup, StorageURL: storageURL, SkipDB: true, TempDir: t.TempDir()})
		return err
	}
	backupStorage := func() (*coordinator.BackupReport, error) {
		return s.Coordinator.Backup(ctx, coordinator.BackupOptions{StorageURL: storageURL, SkipDB: true, BackupDir: t.TempDir()})
	}
	b, err := storage.Open(ctx, storageURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	other, err := objectlock.Take(ctx, b, coordinator.StorageLockKey, objectlock.Options{Holder: objectlock.Holder{Run: "other-restore", Host: "elsewhere", PID: 77}})
	if err != nil {
		t.Fatal(err)
	}
	err = restore()
	if !errors.Is(err, coordinator.ErrTargetBusy) || !strings.Contains(err.Error(), "run other-restore on elsewhere (pid 77)") {
		t.Fatalf("files-only restore while another holds the storage: %v; want ErrTargetBusy naming the holder", err)
	}
	if keys := keysIn(t, b); !slices.Equal(keys, []string{coordinator.StorageLockKey}) {
		t.Fatalf("a refused restore left the storage holding %v", keys)
	}
	if _, err := backupStorage(); !errors.Is(err, coordinator.ErrRestoreRunning) || !strings.Contains(err.Error(), "other-restore") {
		t.Fatalf("backup of a storage a restore holds: %v; want ErrRestoreRunning naming the holder", err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	requests = nil
	mu.Unlock()
	if err := restore(); err != nil {
		t.Fatalf("restore once the other has ended: %v", err)
	}
	mu.Lock()
	took := slices.Contains(requests, "PUT *") && slices.Contains(requests, "DELETE ")
	mu.Unlock()
	if !took {
		t.Fatalf("the restore's requests on its lock were %q; want a conditional PUT and a DELETE", requests)
	}
	if keys := keysIn(t, b); slices.Contains(keys, coordinator.StorageLockKey) || len(keys) != src.summary.Files {
		t.Fatalf("after the restore the storage holds %d keys (lock kept: %v); want the backup's %d files", len(keys), slices.Contains(keys, coordinator.StorageLockKey), src.summary.Files)
	}

	// A restore that died left its lock an hour ago.
	dead, _ := json.Marshal(objectlock.Holder{Run: "crashed-restore", Host: "gone", PID: 1})
	srv.PutWritten(t, "media", "site/"+coordinator.StorageLockKey, dead, time.Now().Add(-time.Hour))
	rep, err := backupStorage()
	if err != nil {
		t.Fatalf("backup beside a stale restore lock: %v", err)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, coordinator.StorageLockKey) }) {
		t.Errorf("the backup's warnings %q do not name the restore lock it skipped", rep.Warnings)
	}
	if _, err := os.Stat(filepath.Join(rep.Path, layout.FilesDir, coordinator.StorageLockKey)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the backup copied the restore lock: %v", err)
	}
	if err := restore(); err != nil {
		t.Fatalf("restore over a stale lock: %v", err)
	}
	if slices.Contains(keysIn(t, b), coordinator.StorageLockKey) {
		t.Fatal("the restore that took over a stale lock left it behind")
	}
}

// keysIn lists a bucket's keys.
func keysIn(t *testing.T, b *storage.Bucket) []string {
	t.Helper()
	var keys []string
	if err := b.Walk(context.Background(), "", func(o storage.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A backup of a local storage may hold a file named as the S3 restore lock (it is the
// platform's there). Restored into S3 storage it would replace the restore's own lock: it is
// left out with a warning naming it, and the rest is restored.
func TestRestoreLeavesOutAFileNamedAsTheLock(t *testing.T) {
	srv := s3test.Start(t, nil, "media")
	src := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, MediaPerChapter: 1, FileBytes: 100, Seed: 9})
	if err := os.WriteFile(filepath.Join(src.storage, coordinator.StorageLockKey), []byte("the platform's own file"), 0o644); err != nil {
		t.Fatal(err)
	}
	backup := backupOf(t, src, false)
	storageURL := srv.URL("media", "site", "")
	s := startSession(t, platformFixture{dbURL: src.dbURL, storage: storageURL}, 2, queue.Config{})
	rep, err := s.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{Source: backup, StorageURL: storageURL, SkipDB: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("restore of a backup holding %s: %v", coordinator.StorageLockKey, err)
	}
	if !slices.ContainsFunc(rep.Plan.Warnings, func(w string) bool { return strings.Contains(w, coordinator.StorageLockKey) }) {
		t.Errorf("the restore's warnings %q do not name the file it left out", rep.Plan.Warnings)
	}
	b, err := storage.Open(context.Background(), storageURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if keys := keysIn(t, b); slices.Contains(keys, coordinator.StorageLockKey) || len(keys) != src.summary.Files {
		t.Fatalf("after the restore the storage holds %v; want the backup's other %d files and no lock", keys, src.summary.Files)
	}
}

// An S3-compatible service without conditional writes (it answers 501 to If-None-Match)
// cannot hold the lock: the restore goes on without one, as the README says, and restores
// everything.
func TestRestoreIntoS3WithoutConditionalWrites(t *testing.T) {
	srv := s3test.Start(t, s3test.NoConditionalWrites, "media")
	src := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, MediaPerChapter: 1, FileBytes: 100, Seed: 5})
	backup := backupOf(t, src, false)
	storageURL := srv.URL("media", "site", "")
	s := startSession(t, platformFixture{dbURL: src.dbURL, storage: storageURL}, 2, queue.Config{})
	if _, err := s.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{Source: backup, StorageURL: storageURL, SkipDB: true, TempDir: t.TempDir()}); err != nil {
		t.Fatalf("restore into a service without conditional writes: %v", err)
	}
	b, err := storage.Open(context.Background(), storageURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if keys := keysIn(t, b); len(keys) != src.summary.Files || slices.Contains(keys, coordinator.StorageLockKey) {
		t.Fatalf("the storage holds %v; want the backup's %d files", keys, src.summary.Files)
	}
}

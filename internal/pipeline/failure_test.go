package pipeline_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// assertNothingLeft checks that a failed run left no backup and no staging folder.
func assertNothingLeft(t *testing.T, dir string) {
	t.Helper()
	if names := backupNames(t, dir); len(names) > 0 {
		t.Fatalf("a failed run left %v", names)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if layout.IsStagingName(e.Name()) {
			left := treeFiles(t, filepath.Join(dir, e.Name()))
			t.Fatalf("a failed run left its staging folder %s: %d files %v", e.Name(), len(left), slices.Collect(maps.Keys(left)))
		}
	}
}

// A task that fails on every delivery ends the run, in bounded time, naming the task and its
// last cause, and leaves nothing that looks like a backup.
func TestTaskFailingEveryDeliveryFailsRun(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	// The workers are pointed at a database that is not there: every export attempt fails.
	s, err := pipeline.Start(context.Background(), pipeline.Config{
		Workers: 2, DatabaseURL: "sqlite:///" + filepath.Join(t.TempDir(), "gone.sqlite3"), StorageURL: p.storage,
		Queue:   queue.Config{MaxDeliver: 3},
		Backoff: func(int) time.Duration { return 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	backups := t.TempDir()
	start := time.Now()
	_, err = s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: backups, SkipFiles: true,
	})
	var te *coordinator.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a TaskError", err)
	}
	if !strings.HasPrefix(te.Task, "export-") || !strings.Contains(te.Cause, "gone.sqlite3") || !strings.Contains(te.Cause, "attempt 3") {
		t.Fatalf("task %q cause %q: want the export task, its last cause and the final attempt", te.Task, te.Cause)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("failing took %s", took)
	}
	assertNothingLeft(t, backups)
}

// A run cancelled midway (Ctrl-C) returns the interruption and leaves nothing behind.
func TestInterruptedBackupLeavesNothing(t *testing.T) {
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook = 20, 30
	p := sqlitePlatform(t, opts)
	s := startSession(t, p, 1, queue.Config{})
	backups := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel as soon as the first output is written; stop looking when the run ends.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			matches, _ := filepath.Glob(filepath.Join(backups, layout.StagingPrefix+"*", "files", "*"))
			if len(matches) > 0 {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	_, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: backups, FilesPerTask: 3,
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want cancellation", err)
	}
	s.Close() // let in-flight tasks settle before looking
	assertNothingLeft(t, backups)
}

func TestCompressedBackupAndSameSecondRuns(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	backups := t.TempDir()
	var paths []string
	for i := 0; i < 2; i++ {
		rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
			DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: backups, Compress: true,
			RunID: "fixed-" + string(rune('a'+i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, rep.Path)
	}
	if paths[0] == paths[1] {
		t.Fatalf("two runs wrote the same path %s", paths[0])
	}
	for _, p := range paths {
		if !strings.HasSuffix(p, ".tar.gz") {
			t.Fatalf("compressed backup path %s", p)
		}
		out := t.TempDir()
		if b, err := exec.Command("tar", "xzf", p, "-C", out).CombinedOutput(); err != nil {
			t.Fatalf("tar xzf %s: %v\n%s", p, err, b)
		}
		top := strings.TrimSuffix(filepath.Base(p), ".tar.gz")
		sha256sumCheck(t, filepath.Join(out, top))
		if readMetadata(t, filepath.Join(out, top)).BackupOptions.Compress != true {
			t.Fatal("metadata does not record compress")
		}
	}
}

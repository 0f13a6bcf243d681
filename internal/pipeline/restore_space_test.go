package pipeline_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/workers"
)

// A restore whose files do not fit in the free space of the storage's file system is refused
// before anything changes, naming the storage folder, the bytes needed and the bytes free, as
// a refusal (exit 2); its dry run says the same. With room, the dry run shows the check.
func TestRestoreRefusedWithoutSpace(t *testing.T) {
	backup, target, before := backupAndOtherTarget(t)
	var free atomic.Int64
	var asked atomic.Value
	t.Cleanup(coordinator.SetStorageFreeHook(func(dir string) int64 { asked.Store(dir); return free.Load() }))

	free.Store(4096)
	for _, dry := range []bool{false, true} {
		rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup, DryRun: dry})
		if got := outcome.Of(err); got.Status != outcome.Refused || got.Code != outcome.CodeUsage {
			t.Fatalf("dry run %v: outcome %+v (err %v), want refused, exit %d", dry, got, err, outcome.CodeUsage)
		}
		msg := err.Error()
		for _, want := range []string{target.storage, "4096 bytes) free", "nothing was changed"} {
			if !strings.Contains(msg, want) {
				t.Errorf("dry run %v: message %q does not say %q", dry, msg, want)
			}
		}
		if !strings.Contains(msg, "need about") {
			t.Errorf("dry run %v: message %q does not say what the files need", dry, msg)
		}
		if rep != nil {
			t.Errorf("dry run %v: a report for a refused restore: %+v", dry, rep)
		}
		if state(t, target) != before {
			t.Fatalf("dry run %v: a restore refused for want of space changed the target", dry)
		}
	}
	if asked.Load() != target.storage {
		t.Errorf("free space measured at %v, want the storage folder %s", asked.Load(), target.storage)
	}

	free.Store(1 << 40)
	rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	sp := rep.Plan.Space
	if sp == nil || sp.Folder != target.storage || sp.Free != 1<<40 || sp.Need <= 0 {
		t.Fatalf("space check %+v, want the storage folder, its free space, and what the files need", sp)
	}
	if state(t, target) != before {
		t.Fatal("a dry run changed the target")
	}
}

// The files a restore writes over take their own space back: a restore over a storage holding
// the backup's files needs room for little more than its largest file, and a storage folder
// that does not exist yet is measured at its nearest existing parent.
func TestRestoreSpaceCountsReplacedFiles(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	rep, err := restoreInto(t, src, coordinator.RestoreOptions{Source: backup, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if sp := rep.Plan.Space; sp == nil || sp.Replaced < rep.Plan.Bytes || sp.Need >= rep.Plan.Bytes {
		t.Fatalf("over the same files: space check %+v for %d bytes of files, want them all replaced and less needed", sp, rep.Plan.Bytes)
	}
	fresh := emptyTarget(t, database.SQLite)
	rep, err = restoreInto(t, fresh, coordinator.RestoreOptions{Source: backup, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if sp := rep.Plan.Space; sp == nil || sp.Replaced != 0 || sp.Need < rep.Plan.Bytes || sp.Measured == sp.Folder {
		t.Fatalf("into a new folder: space check %+v for %d bytes of files", sp, rep.Plan.Bytes)
	}
}

// fullDisk is a source that fails as a write to a full disk does.
type fullDisk struct{ key string }

func (f fullDisk) Read([]byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: f.key, Err: syscall.ENOSPC}
}

// When the disk fills midway, the restore's report counts the files that are in the storage
// (not 0), the files not restored, and names the failure; the database was restored.
func TestRestoreStoppedMidwayCountsWhatWasWritten(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	target := emptyTarget(t, database.SQLite)
	// One worker: no task of another runs on past the failure, so the storage holds exactly
	// what the report can know of.
	s := startSession(t, target, 1, queue.Config{})
	const fit = 5
	var opened atomic.Int64
	t.Cleanup(workers.SetReadHook(func(key string, r io.Reader) io.Reader {
		if opened.Add(1) > fit {
			return fullDisk{key} // full from then on, for every file of every task
		}
		return r
	}))
	rep, err := s.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{
		Source: backup, DatabaseURL: target.dbURL, StorageURL: target.storage, TempDir: t.TempDir(),
	})
	var te *coordinator.TaskError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v, want a task failed on a full disk", err)
	}
	if rep == nil || len(rep.Loaded) == 0 {
		t.Fatalf("report %+v: want the database restored before the files", rep)
	}
	var files, bytes int64
	for k, b := range treeFiles(t, target.storage) {
		if strings.HasPrefix(k, ".wnb-tmp-") || strings.Contains(k, "/.wnb-tmp-") {
			t.Errorf("temporary file left in the storage: %s", k)
			continue
		}
		files++
		bytes += int64(len(b))
	}
	if files == 0 || files > fit {
		t.Fatalf("%d files in the storage: the hook did not stop the copies after %d", files, fit)
	}
	if rep.Files != files || rep.Bytes != bytes {
		t.Errorf("report: %d files (%d bytes) restored; the storage holds %d (%d bytes)", rep.Files, rep.Bytes, files, bytes)
	}
	if rep.Files+rep.Failed+rep.Unfinished != rep.Plan.Files {
		t.Errorf("report: %d restored + %d failed + %d not restored, for %d planned", rep.Files, rep.Failed, rep.Unfinished, rep.Plan.Files)
	}
	if !strings.Contains(rep.Stopped, te.Task) || !strings.Contains(rep.Stopped, "no space left on device") {
		t.Errorf("report says the copies stopped for %q, want the task %s and its cause", rep.Stopped, te.Task)
	}
}

// An archive's files, unpacked on the storage's file system and linked into place, take no
// new room there: a restore of one needs room for their folders only, and goes ahead with less
// free space than the files' bytes, where the restore of a backup folder, which copies every
// file, is refused.
func TestRestoreSpaceOfLinkedFiles(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	archive := archiveOf(t, src, false, sealKey{})
	folder := backupOf(t, src, false)
	var free atomic.Int64
	t.Cleanup(coordinator.SetStorageFreeHook(func(string) int64 { return free.Load() }))
	free.Store(1 << 40)
	rep, err := restoreInto(t, emptyTarget(t, database.SQLite), coordinator.RestoreOptions{Source: folder, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	bytes := rep.Plan.Bytes
	half := bytes / 2
	free.Store(half)

	rep, err = restoreInto(t, emptyTarget(t, database.SQLite), coordinator.RestoreOptions{Source: archive})
	if err != nil {
		t.Fatalf("archive restore with %d bytes free for %d bytes of linked files: %v", half, bytes, err)
	}
	if sp := rep.Plan.Space; sp == nil || !sp.Linked || sp.Need >= half || rep.Files != int64(src.summary.Files) {
		t.Fatalf("archive restore: space check %+v, %d files restored: want the files linked, needing less than %d bytes", sp, rep.Files, half)
	}
	_, err = restoreInto(t, emptyTarget(t, database.SQLite), coordinator.RestoreOptions{Source: folder})
	if got := outcome.Of(err); got.Status != outcome.Refused {
		t.Fatalf("folder restore with %d bytes free: outcome %+v (err %v), want refused: its files are copied", half, got, err)
	}
}

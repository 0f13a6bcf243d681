package pipeline_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/preflight"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// storageBytes sums the sizes of the regular files under dir.
func storageBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The free-space check sized by the plan sees every file's bytes, and when the space is
// short the run ends before anything is written: no backup, no staging area left.
func TestBackupSpaceCheckedAfterPlan(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	want := storageBytes(t, p.storage)
	for _, tc := range []struct {
		name  string
		extra int64 // added to the planned bytes: more than any disk holds makes it short
		fails bool
	}{
		{"room", 0, false},
		{"short", 1 << 62, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backups := t.TempDir()
			var got int64 = -1
			_, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
				DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: backups, Workers: 2,
				CheckPlanned: func(_ context.Context, n int64) error {
					got = n
					return preflight.Space(backups, n+tc.extra, false, "files planned")
				},
			})
			if got != want {
				t.Errorf("planned bytes %d, the storage holds %d", got, want)
			}
			if !tc.fails {
				if err != nil || len(backupNames(t, backups)) != 1 {
					t.Fatalf("backup: %v, backups %v", err, backupNames(t, backups))
				}
				return
			}
			if err == nil {
				t.Fatal("backup passed with the space short")
			}
			for _, part := range []string{backups, strconv.FormatInt(want+tc.extra, 10) + " bytes", "free space"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %q", err, part)
				}
			}
			if left, _ := os.ReadDir(backups); len(left) != 0 {
				t.Errorf("the destination holds %v after the refused run", left)
			}
		})
	}
}

// A second backup's space check counts only the bytes it stores anew: the files it reuses
// from its base are hard links, which take no room, so a nightly incremental backup of a
// storage larger than the free space still runs.
func TestIncrementalSpaceCountsOnlyNewBytes(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	backups := t.TempDir()
	backup := func() int64 {
		t.Helper()
		var got int64 = -1
		if _, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
			DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: backups, Workers: 2,
			CheckPlanned: func(_ context.Context, n int64) error { got = n; return nil },
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got, want := backup(), storageBytes(t, p.storage); got != want {
		t.Fatalf("first backup: planned new bytes %d, the storage holds %d", got, want)
	}
	changed := []byte("a file added between the two backups\n")
	if err := os.WriteFile(filepath.Join(p.storage, "media", "added-between-backups.txt"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := backup(); got != int64(len(changed)) {
		t.Fatalf("second backup: planned new bytes %d, want only the added file's %d", got, len(changed))
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/workers"
)

// afterFirstRead runs fn once, after the first read of the reader it wraps.
type afterFirstRead struct {
	r    io.Reader
	fn   func()
	done bool
}

func (a *afterFirstRead) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if !a.done {
		a.done = true
		a.fn()
	}
	return n, err
}

// A file changed while it is copied is read again; changed again, its copy is kept and it
// is named in the warnings and in the metadata's changed_during_backup.
func TestBackupFileChangedWhileCopied(t *testing.T) {
	cases := []struct {
		name string
		// change alters the file at p in the middle of read number n (from 1).
		change      func(t *testing.T, p string, n int64)
		wantWarning bool
	}{
		{"truncated during the first read, whole on the retry", func(t *testing.T, p string, n int64) {
			if n == 1 {
				fi, _ := os.Stat(p)
				if err := os.Truncate(p, fi.Size()/2); err != nil {
					t.Error(err)
				}
			}
		}, false},
		{"written to during every read", func(t *testing.T, p string, n int64) {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			f.WriteString(strings.Repeat("x", int(n)))
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := sqlitePlatform(t, demo.DefaultOptions())
			victim := slices.Sorted(maps.Keys(treeFiles(t, src.storage)))[0]
			victimPath := filepath.Join(src.storage, filepath.FromSlash(victim))
			var reads atomic.Int64
			remove := workers.SetReadHook(func(key string, r io.Reader) io.Reader {
				if key != victim {
					return r
				}
				n := reads.Add(1)
				return &afterFirstRead{r: r, fn: func() { tc.change(t, victimPath, n) }}
			})
			t.Cleanup(remove)
			s := startSession(t, src, 2, queue.Config{})
			rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
				DatabaseURL: src.dbURL, StorageURL: src.storage, BackupDir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if reads.Load() != 2 {
				t.Fatalf("%s was read %d times, want twice (once more after it changed)", victim, reads.Load())
			}
			meta, err := layout.ReadMetadata(rep.Path)
			if err != nil {
				t.Fatal(err)
			}
			warned := slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, victim) })
			var wantListed []string
			if tc.wantWarning {
				wantListed = []string{"files/" + victim}
			}
			if warned != tc.wantWarning || !slices.Equal(meta.Files.ChangedDuringBackup, wantListed) {
				t.Fatalf("warnings %q, changed_during_backup %q; want %s named: %v", rep.Warnings, meta.Files.ChangedDuringBackup, victim, tc.wantWarning)
			}
			if !slices.Equal(meta.Warnings, rep.Warnings) {
				t.Fatalf("metadata warnings %q, report %q", meta.Warnings, rep.Warnings)
			}
			if !tc.wantWarning {
				// The copy is the file as the retry read it: its state after the change.
				want, _ := os.ReadFile(victimPath)
				got, err := os.ReadFile(filepath.Join(rep.Path, layout.FilesDir, filepath.FromSlash(victim)))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("backed up %q (%v), want the file as it is now, %q", got, err, want)
				}
			}
			sha256sumCheck(t, rep.Path)
		})
	}
}

// A backup — its folder and everything in it, or the archive file — is its owner's alone; a
// restore gives each media file the permissions it had on the platform.
func TestBackupIsPrivateAndRestoreKeepsModes(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "folder", true: "archive"}[compress], func(t *testing.T) {
			src := sqlitePlatform(t, demo.DefaultOptions())
			keys := slices.Sorted(maps.Keys(treeFiles(t, src.storage)))
			want := map[string]fs.FileMode{}
			for i, k := range keys {
				want[k] = []fs.FileMode{0o640, 0o644, 0o600, 0o664}[i%4]
				if err := os.Chmod(filepath.Join(src.storage, filepath.FromSlash(k)), want[k]); err != nil {
					t.Fatal(err)
				}
			}
			backupDir := filepath.Join(t.TempDir(), "backups") // made by the backup
			s := startSession(t, src, 2, queue.Config{})
			rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
				DatabaseURL: src.dbURL, StorageURL: src.storage, BackupDir: backupDir, Compress: compress,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = filepath.WalkDir(backupDir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				fi, err := d.Info()
				if err == nil && fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("%s has mode %v: a backup is its owner's alone", p, fi.Mode().Perm())
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			target := emptyTarget(t, database.SQLite)
			if _, err := restoreInto(t, target, coordinator.RestoreOptions{Source: rep.Path}); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				fi, err := os.Stat(filepath.Join(target.storage, filepath.FromSlash(k)))
				if err != nil || fi.Mode().Perm() != want[k] {
					t.Fatalf("restored %s: %v, %v; want mode %v", k, fi, err, want[k])
				}
			}
		})
	}
}

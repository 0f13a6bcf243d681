package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
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

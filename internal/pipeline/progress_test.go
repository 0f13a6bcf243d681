package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/workers"
)

// slowReader sleeps before each read, and sets done at the end of its source.
type slowReader struct {
	r     io.Reader
	pause time.Duration
	done  *atomic.Bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.done.Store(true)
	}
	return n, err
}

// fileBytes records the file-bytes additions, and how much of them came while the big file
// was still being read.
type fileBytes struct {
	bigRead *atomic.Bool

	mu           sync.Mutex
	total        int64
	adds         int
	early        int64 // added before the big file was read to its end
	earlyAdds    int
	plannedTotal int64
}

func (f *fileBytes) Total(phase string, n int64) {
	if phase == progress.Files {
		f.mu.Lock()
		f.plannedTotal = n
		f.mu.Unlock()
	}
}

func (f *fileBytes) Add(phase string, n int64) {
	if phase != progress.Files {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total += n
	f.adds++
	if !f.bigRead.Load() {
		f.early += n
		f.earlyAdds++
	}
}

// The file bar moves as bytes are copied, not when a copy task ends, and ends exactly at the
// bytes copied, in a backup and in a restore: workers in their own goroutines tell the
// coordinator over core NATS.
func TestFileProgressCountsBytesAsCopied(t *testing.T) {
	for _, restore := range []bool{false, true} {
		t.Run(map[bool]string{false: "backup", true: "restore"}[restore], func(t *testing.T) {
			src := sqlitePlatform(t, demo.DefaultOptions())
			keys := slices.Sorted(maps.Keys(treeFiles(t, src.storage)))
			big := path.Join(strings.SplitN(keys[0], "/", 2)[0], "zz-big.bin")
			// 16 reads of the copy buffer at 150 ms each: several 500 ms progress periods.
			content := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
			if err := os.WriteFile(filepath.Join(src.storage, filepath.FromSlash(big)), content, 0o644); err != nil {
				t.Fatal(err)
			}
			var others int64
			for k, b := range treeFiles(t, src.storage) {
				if k != big {
					others += int64(len(b))
				}
			}
			backup := ""
			if restore {
				backup = backupOf(t, src, false)
			}
			var bigRead atomic.Bool
			remove := workers.SetReadHook(func(key string, r io.Reader) io.Reader {
				if !strings.HasSuffix(key, big) { // a restore reads it under files/
					return r
				}
				return &slowReader{r: r, pause: 150 * time.Millisecond, done: &bigRead}
			})
			t.Cleanup(remove)
			rec := &fileBytes{bigRead: &bigRead}
			var err error
			if restore {
				_, err = restoreInto(t, emptyTarget(t, database.SQLite), coordinator.RestoreOptions{Source: backup, Progress: rec})
			} else {
				s := startSession(t, src, 2, queue.Config{})
				_, err = s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
					DatabaseURL: src.dbURL, StorageURL: src.storage, BackupDir: t.TempDir(), Progress: rec,
				})
			}
			if err != nil {
				t.Fatal(err)
			}
			checkFileBytes(t, rec, big, others, others+int64(len(content)))
		})
	}
}

// checkFileBytes asserts that want bytes were added in all, and that bytes of big were
// counted before its task could end: more than the others hold, in several additions.
func checkFileBytes(t *testing.T, rec *fileBytes, big string, others, want int64) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.total != want || rec.plannedTotal != want {
		t.Fatalf("file bytes added %d, planned %d; want exactly the %d bytes copied", rec.total, rec.plannedTotal, want)
	}
	if rec.early <= others || rec.earlyAdds < 3 {
		t.Fatalf("%d bytes in %d additions before %s was read to its end; want more than the other files' %d, in 3 or more",
			rec.early, rec.earlyAdds, big, others)
	}
}

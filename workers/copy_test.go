package workers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// inFlight counts the object downloads a fake S3 is serving at once, each made to last delay.
type inFlight struct {
	delay    time.Duration
	now, max atomic.Int64
}

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Path style: /bucket/key...; a listing is /bucket with a query.
		if r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1 {
			n := f.now.Add(1)
			defer f.now.Add(-1)
			for m := f.max.Load(); n > m && !f.max.CompareAndSwap(m, n); m = f.max.Load() {
			}
			time.Sleep(f.delay)
		}
		h.ServeHTTP(w, r)
	})
}

// s3CopyTask stores files under platform/ in a fake S3 and writes a key list for them into a
// local staging folder.
func s3CopyTask(t *testing.T, srv *s3test.Server, id string, keys []string) *messages.Task {
	t.Helper()
	dest := t.TempDir()
	var b strings.Builder
	lw := messages.NewFileListWriter(&b)
	for _, k := range keys {
		srv.Put(t, "media", "platform/"+k, []byte("data of "+k))
		lw.Add(messages.FileEntry{Key: k})
	}
	lw.Flush()
	if err := os.WriteFile(filepath.Join(dest, "keys.jsonl"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return &messages.Task{
		Version: messages.Version, Run: "run1", ID: id, Kind: messages.KindCopyPrefix, Dest: dest,
		Copy: &messages.CopyTask{
			Source: srv.URL("media", "platform", ""), Prefix: "content/", KeyList: "keys.jsonl",
			DestPrefix: "files/", Sums: "sums.jsonl", Keys: len(keys),
		},
	}
}

// A worker copies the files of its copy tasks concurrently, as many at once as its
// concurrency, shared by all its tasks; results and sums stay in key-list order.
func TestCopyFilesConcurrently(t *testing.T) {
	tests := []struct {
		concurrency, tasks int
		wantMin, wantMax   int64
	}{
		{concurrency: 1, tasks: 1, wantMin: 1, wantMax: 1},
		{concurrency: 4, tasks: 1, wantMin: 2, wantMax: 4},
		{concurrency: 3, tasks: 2, wantMin: 2, wantMax: 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("concurrency=%d,tasks=%d", tt.concurrency, tt.tasks), func(t *testing.T) {
			f := &inFlight{delay: 30 * time.Millisecond}
			srv := s3test.Start(t, f.wrap, "media")
			var tasks []*messages.Task
			var keys [][]string
			for i := range tt.tasks {
				var k []string
				for j := range 12 {
					k = append(k, fmt.Sprintf("content/t%d/%02d.json", i, 11-j)) // not sorted
				}
				keys = append(keys, k)
				tasks = append(tasks, s3CopyTask(t, srv, fmt.Sprintf("copy-content-%04d", i), k))
			}
			w := &Worker{cfg: Config{StorageURL: srv.URL("media", "platform", ""), Concurrency: tt.concurrency}}
			var wg sync.WaitGroup
			results := make([]*messages.Result, len(tasks))
			errs := make([]error, len(tasks))
			for i, task := range tasks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = w.copy(context.Background(), task)
				}()
			}
			wg.Wait()
			for i, task := range tasks {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if results[i].Files != 12 {
					t.Fatalf("task %d: %d files copied, want 12", i, results[i].Files)
				}
				sums, err := os.ReadFile(filepath.Join(task.Dest, "sums.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				if err := messages.ReadFileList(strings.NewReader(string(sums)), func(e messages.FileEntry) error {
					got = append(got, e.Path)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for j, k := range keys[i] {
					if j >= len(got) || got[j] != "files/"+k {
						t.Fatalf("task %d: sums list %v, want files/ + %v in that order", i, got, keys[i])
					}
					data, err := os.ReadFile(filepath.Join(task.Dest, "files", filepath.FromSlash(k)))
					if err != nil || string(data) != "data of "+k {
						t.Fatalf("copy of %s: %q, %v", k, data, err)
					}
				}
			}
			if m := f.max.Load(); m < tt.wantMin || m > tt.wantMax {
				t.Fatalf("%d downloads at once, want %d to %d", m, tt.wantMin, tt.wantMax)
			}
		})
	}
}

// A file that stops a task is the error reported, not the cancellation of the copies that
// were in flight beside it.
func TestCopyConcurrentFailureNamesTheFile(t *testing.T) {
	files := map[string]string{}
	var keys []string
	for i := range 20 {
		k := fmt.Sprintf("content/%02d.json", i)
		if i == 7 {
			k = "content/pipe"
		} else {
			files[k] = strings.Repeat("{}", 50000)
		}
		keys = append(keys, k)
	}
	task, src, _ := copyTask(t, files, keys)
	// A link out of the storage where a file was listed: never followed, so it cannot be
	// read. (A FIFO there is only a warning.)
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "content", "pipe")); err != nil {
		t.Skip("symlink:", err)
	}
	w := &Worker{cfg: Config{StorageURL: src, Concurrency: 4}}
	_, err := w.copy(context.Background(), task)
	if err == nil || !strings.Contains(err.Error(), "content/pipe") || strings.Contains(err.Error(), "canceled") {
		t.Fatalf("err = %v, want it to name content/pipe", err)
	}
}

// From S3 into a local staging folder, each file is created while its download starts: a key
// gone from the bucket leaves a warning and no file, and a copied file still gets the
// object's time.
func TestCopyFromS3VanishedLeavesNoFile(t *testing.T) {
	srv := s3test.Start(t, nil, "media")
	task := s3CopyTask(t, srv, "copy-content-0000", []string{"content/a.json", "content/b.json"})
	// Listed, then deleted before the copy: the key list names it, the bucket does not hold it.
	var b strings.Builder
	lw := messages.NewFileListWriter(&b)
	for _, k := range []string{"content/a.json", "content/gone.json", "content/b.json"} {
		lw.Add(messages.FileEntry{Key: k})
	}
	lw.Flush()
	if err := os.WriteFile(filepath.Join(task.Dest, "keys.jsonl"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The objects carry a mode and time, which the copies must get.
	src, err := storage.Open(context.Background(), srv.URL("media", "platform", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mtime := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, k := range []string{"content/a.json", "content/b.json"} {
		if _, err := src.Put(context.Background(), k, strings.NewReader("data of "+k), storage.Object{Mode: 0o640, ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
	}
	w := &Worker{cfg: Config{StorageURL: srv.URL("media", "platform", ""), Concurrency: 2}}
	res, err := w.copy(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "content/gone.json") {
		t.Fatalf("result %+v", res)
	}
	if _, err := os.Lstat(filepath.Join(task.Dest, "files", "content", "gone.json")); !os.IsNotExist(err) {
		t.Fatalf("a file was left for the vanished key: %v", err)
	}
	for _, k := range []string{"content/a.json", "content/b.json"} {
		fi, err := os.Stat(filepath.Join(task.Dest, "files", filepath.FromSlash(k)))
		if err != nil || !fi.ModTime().Equal(mtime) || fi.Mode().Perm() != backupFileMode {
			t.Fatalf("copy of %s: %v, %v (want time %v, mode 600: a backup is private)", k, fi, err, mtime)
		}
	}
	entries, err := os.ReadDir(filepath.Join(task.Dest, "files", "content"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("files/content holds %v, %v; want the two copies only", entries, err)
	}
}

// A longer file left in the staging folder by an earlier attempt of the task is replaced
// whole by the new copy.
func TestCopyOverLeftoverFile(t *testing.T) {
	task, src, dest := copyTask(t, map[string]string{"content/a.json": "{}"}, []string{"content/a.json"})
	old := filepath.Join(dest, "files", "content", "a.json")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("a longer, older copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &Worker{cfg: Config{StorageURL: src}}
	if _, err := w.copy(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(old)
	fi, serr := os.Stat(old)
	if err != nil || serr != nil || string(data) != "{}" || fi.Mode().Perm() != backupFileMode {
		t.Fatalf("copy over a leftover: %q %v, %v %v", data, err, fi, serr)
	}
}

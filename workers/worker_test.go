package workers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// startQueue starts an embedded JetStream server and declares the streams.
func startQueue(t *testing.T, cfg queue.Config) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	return queuetest.Start(t, cfg)
}

// copyTask writes files into a storage folder and a key list into a staging folder.
func copyTask(t *testing.T, files map[string]string, keys []string) (*messages.Task, string, string) {
	t.Helper()
	src, dest := t.TempDir(), t.TempDir()
	for k, v := range files {
		p := filepath.Join(src, filepath.FromSlash(k))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(v), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	lw := messages.NewFileListWriter(&b)
	for _, k := range keys {
		lw.Add(messages.FileEntry{Key: k})
	}
	lw.Flush()
	os.WriteFile(filepath.Join(dest, "keys.jsonl"), []byte(b.String()), 0o600)
	return &messages.Task{
		Version: messages.Version, Run: "run1", ID: "copy-content-0000", Kind: messages.KindCopyPrefix, Dest: dest,
		Copy: &messages.CopyTask{Source: src, Prefix: "content/", KeyList: "keys.jsonl", DestPrefix: "files/", Sums: "sums.jsonl", Keys: len(keys)},
	}, src, dest
}

func TestCopyVanishedFileIsAWarning(t *testing.T) {
	task, src, dest := copyTask(t, map[string]string{"content/a.json": "{}", "content/b.json": "[]"},
		[]string{"content/a.json", "content/gone.json", "content/b.json"})
	w := &Worker{cfg: Config{StorageURL: src}}
	res, err := w.copy(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "content/gone.json") {
		t.Fatalf("result %+v", res)
	}
	// The backup's copies are private; the files' own permissions are in their sums.
	for _, k := range []string{"a.json", "b.json"} {
		fi, err := os.Stat(filepath.Join(dest, "files", "content", k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("files/content/%s: %v %v", k, fi, err)
		}
	}
	sums, _ := os.ReadFile(filepath.Join(dest, "sums.jsonl"))
	if strings.Count(string(sums), "\n") != 2 || strings.Count(string(sums), `"m":416`) != 2 {
		t.Fatalf("sums = %s, want two entries with mode 0640 (416)", sums)
	}
}

// Item 3: a FIFO put where a file was listed is not read (and does not block): the backup
// goes on, with a warning naming it and its kind, counted in the result.
func TestCopyFIFOInPlaceOfAFileIsAWarning(t *testing.T) {
	task, src, _ := copyTask(t, map[string]string{"content/a.json": "{}"}, []string{"content/a.json", "content/pipe"})
	if err := syscall.Mkfifo(filepath.Join(src, "content", "pipe"), 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	w := &Worker{cfg: Config{StorageURL: src}}
	type outcome struct {
		res *messages.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() { res, err := w.copy(context.Background(), task); done <- outcome{res, err} }()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("err = %v, want the copy to go on past the FIFO", o.err)
		}
		if o.res.Files != 1 || o.res.Skipped["fifo"] != 1 || len(o.res.Warnings) != 1 || !strings.HasPrefix(o.res.Warnings[0], "skipped FIFO content/pipe") {
			t.Fatalf("result %+v, want 1 file, 1 FIFO skipped and a warning naming content/pipe", o.res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("copying a FIFO blocked")
	}
}

func TestCopyRefusesAnotherStorage(t *testing.T) {
	task, _, _ := copyTask(t, map[string]string{"content/a.json": "{}"}, []string{"content/a.json"})
	w := &Worker{cfg: Config{StorageURL: t.TempDir()}}
	_, err := w.copy(context.Background(), task)
	if !IsMismatch(err) || IsPermanent(err) || !strings.Contains(err.Error(), "storage") {
		t.Fatalf("err = %v, want a storage mismatch (handed back, not failed)", err)
	}
}

// publishTask puts a task on the queue.
func publishTask(t *testing.T, js jetstream.JetStream, task *messages.Task) {
	t.Helper()
	data, _ := messages.Marshal(task)
	if _, err := js.Publish(context.Background(), messages.TaskSubject(task.Run, task.Kind), data); err != nil {
		t.Fatal(err)
	}
}

func manyFiles(n int) (map[string]string, []string) {
	files := map[string]string{}
	var keys []string
	for i := 0; i < n; i++ {
		k := "content/" + strings.Repeat("x", i%7+1) + "/" + time.Duration(i).String() + ".json"
		files[k] = strings.Repeat("{}", 2000)
		keys = append(keys, k)
	}
	return files, keys
}

// On shutdown a worker finishes what it holds within the grace period, or hands it back.
func TestShutdown(t *testing.T) {
	for _, tt := range []struct {
		name     string
		grace    time.Duration
		finished bool
	}{
		{"no grace hands the task back", 0, false},
		{"grace lets the task finish", time.Minute, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			js, cons := startQueue(t, queue.Config{})
			files, keys := manyFiles(3000)
			task, src, _ := copyTask(t, files, keys)
			w, err := New(context.Background(), js, cons, Config{StorageURL: src, ShutdownGrace: tt.grace})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(HealthHandler(w))
			defer srv.Close()
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { w.Run(ctx); close(done) }()
			publishTask(t, js, task)
			eventually(t, bound, "the task in flight", func() bool { return w.InFlight() > 0 })
			if resp, err := http.Get(srv.URL + "/readyz"); err != nil || resp.StatusCode != 200 {
				t.Fatalf("readyz while working: %v %v", resp, err)
			}
			stop()
			<-done
			if resp, err := http.Get(srv.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("readyz after stop: %v %v", resp, err)
			}
			results, _ := js.Stream(context.Background(), messages.StreamResults)
			info, _ := results.Info(context.Background())
			if got := info.State.Msgs == 1; got != tt.finished {
				t.Fatalf("result published = %v, want %v", got, tt.finished)
			}
			tasks, _ := js.Stream(context.Background(), messages.StreamTasks)
			tinfo, _ := tasks.Info(context.Background())
			if handedBack := tinfo.State.Msgs == 1; handedBack == tt.finished {
				t.Fatalf("task still queued = %v, finished = %v", handedBack, tt.finished)
			}
		})
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 30 * time.Second, 20: 30 * time.Second} {
		if got := DefaultBackoff(attempt); got != want {
			t.Errorf("DefaultBackoff(%d) = %s, want %s", attempt, got, want)
		}
	}
}

func TestIsPermanent(t *testing.T) {
	if !IsPermanent(Permanent(os.ErrInvalid)) || !IsPermanent(&os.PathError{Op: "write", Err: syscall.ENOSPC}) || IsPermanent(os.ErrDeadlineExceeded) ||
		!IsPermanent(fmt.Errorf("copy: %w", &storage.SpecialError{Special: storage.Special{Key: "files/x", Kind: "fifo"}})) {
		t.Fatal("error classes are wrong")
	}
	// A file and a folder of one name (an S3 source's "a" and "a/b"): no retry can write both.
	ctx := context.Background()
	b, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Create(ctx, "a", storage.Object{})
	if err != nil || w.Commit() != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "a/b", storage.Object{}); !IsPermanent(err) {
		t.Fatalf("a name conflict (%v) is retried", err)
	}
	// A name longer than the file system gives (an encrypted copy's NAME.age of a long name).
	long, err := b.Create(ctx, strings.Repeat("n", 256), storage.Object{})
	if err == nil {
		err = long.Commit() // the name is taken as the copy is committed
	}
	if err == nil || !IsPermanent(err) {
		t.Fatalf("a name too long (%v) is retried", err)
	}
}

// A worker on a private queue (the embedded server of an in-process run) ends its pending
// pull for a task when stopped, instead of waiting it out: the run's exit does not wait on
// an idle worker.
func TestPrivateQueueStopEndsThePull(t *testing.T) {
	js, cons := startQueue(t, queue.Config{})
	w, err := New(context.Background(), js, cons, Config{Concurrency: 1, PrivateQueue: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	eventually(t, bound, "a pull waiting for a task", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	})
	stop()
	select {
	case <-done:
	case <-time.After(fetchWait / 2):
		t.Fatalf("the worker was still in its pull %v after it was stopped (a pull lasts %v)", fetchWait/2, fetchWait)
	}
}

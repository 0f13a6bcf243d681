package workers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// bound is how long any of these tests may wait for a task to end.
const bound = 20 * time.Second

// eventually polls cond every 20ms until it holds, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastResult returns the latest result of a task, or nil while there is none.
func lastResult(t *testing.T, js jetstream.JetStream, run, task string) *messages.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, messages.StreamResults)
	if err != nil {
		return nil
	}
	m, err := s.GetLastMsgForSubject(ctx, messages.ResultSubject(run, task))
	if err != nil {
		return nil
	}
	r, err := messages.DecodeResult(m.Data)
	if err != nil {
		t.Fatalf("result of %s: %v", task, err)
	}
	return r
}

// finalResult waits for a task's final result.
func finalResult(t *testing.T, js jetstream.JetStream, run, task string) *messages.Result {
	t.Helper()
	var r *messages.Result
	eventually(t, bound, "final result of "+task, func() bool {
		r = lastResult(t, js, run, task)
		return r != nil && r.Final
	})
	return r
}

// queued is the number of task messages still in the work queue (not acked nor terminated).
func queued(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), messages.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// runWorker starts a worker on the queue until the test ends.
func runWorker(t *testing.T, js jetstream.JetStream, cons jetstream.Consumer, cfg Config, setup func(*Worker)) *Worker {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
	}
	w, err := New(context.Background(), js, cons, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(w)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	eventually(t, bound, "worker running", func() bool { return w.Check() == nil })
	return w
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject, data string) {
	t.Helper()
	if _, err := js.Publish(context.Background(), subject, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// A task the worker cannot run — not JSON of a task, or of a wire version it does not speak —
// ends with a final failure result that says why, when its run and id can be read; and it
// leaves the queue either way, so the run it belongs to is not kept waiting.
func TestUndecodableTask(t *testing.T) {
	for _, tc := range []struct {
		name, data, task string
		want             []string
	}{
		{"future wire version", `{"v":3,"run":"run1","id":"export-x-0001","kind":"export-model","export":{"shiny":true}}`,
			"export-x-0001", []string{"task of wire version 3; this worker speaks 2"}},
		{"no version", `{"run":"run1","id":"copy-0002","kind":"copy-prefix"}`,
			"copy-0002", []string{"task of wire version 0; this worker speaks 2"}},
		{"current version without its body", `{"v":2,"run":"run1","id":"export-y","kind":"export-model"}`,
			"export-y", []string{"cannot run task", "without its body"}},
		{"fields of the wrong type", `{"v":2,"run":"run1","id":"copy-3","kind":"copy-prefix","copy":[1,2]}`,
			"copy-3", []string{"cannot run task", "decode task"}},
		{"not JSON at all", `<task id="x"/>`, "", nil},
		{"an id that is no subject token", `{"v":3,"run":"run1","id":"a.b"}`, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, cons := startQueue(t, queue.Config{MaxDeliver: 5})
			w := runWorker(t, js, cons, Config{}, nil)
			publishRaw(t, js, messages.TaskSubject("run1", "export-model"), tc.data)
			start := time.Now()
			eventually(t, bound, "the task leaves the queue", func() bool { return queued(t, js) == 0 })
			if tc.task == "" {
				return
			}
			r := finalResult(t, js, "run1", tc.task)
			t.Logf("final result after %s: %s", time.Since(start).Round(time.Millisecond), r.Error)
			if r.OK() || r.Worker != w.cfg.Name || r.Attempt != 1 {
				t.Errorf("result %+v, want a failure on attempt 1 by %s", r, w.cfg.Name)
			}
			for _, want := range tc.want {
				if !strings.Contains(r.Error, want) {
					t.Errorf("error %q does not say %q", r.Error, want)
				}
			}
		})
	}
}

// A handler that panics is a failed attempt: the worker goes on serving, and a task that
// panics on every delivery ends with a final failure naming the panic after MaxDeliver.
func TestPanickingHandler(t *testing.T) {
	js, cons := startQueue(t, queue.Config{MaxDeliver: 3})
	w := runWorker(t, js, cons, Config{}, func(w *Worker) {
		w.handler = func(_ context.Context, task *messages.Task) (*messages.Result, error) {
			if task.ID == "boom" {
				var m map[string]int
				m["poison"]++ // panics: assignment to entry in nil map
			}
			return &messages.Result{Rows: 7}, nil
		}
	})
	for _, id := range []string{"boom", "fine"} {
		task, _, _ := copyTask(t, nil, nil)
		task.ID = id
		publishTask(t, js, task)
	}
	boom := finalResult(t, js, "run1", "boom")
	if boom.OK() || boom.Attempt != 3 || !strings.Contains(boom.Error, "panic") || !strings.Contains(boom.Error, "nil map") {
		t.Errorf("poison task: %+v, want a failure after 3 attempts naming the panic", boom)
	}
	fine := finalResult(t, js, "run1", "fine")
	if !fine.OK() || fine.Rows != 7 {
		t.Errorf("next task: %+v, want it done", fine)
	}
	if err := w.Check(); err != nil {
		t.Errorf("worker after a panicking task: %v", err)
	}
	eventually(t, bound, "both tasks leave the queue", func() bool { return queued(t, js) == 0 })
}

// A final result that cannot be published (here: the results stream is gone) is retried, then
// the task is handed back instead of being settled without its result; once results can be
// published again, the task's final result arrives.
func TestResultPublishFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantOK  bool
		wantErr string
	}{
		{"success", nil, true, ""},
		{"permanent failure", Permanent(errors.New("the model is gone")), false, "the model is gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := queue.Config{MaxDeliver: 20}
			js, cons := startQueue(t, cfg)
			if err := js.DeleteStream(context.Background(), messages.StreamResults); err != nil {
				t.Fatal(err)
			}
			runWorker(t, js, cons, Config{}, func(w *Worker) {
				w.publishWaits = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
				w.handler = func(context.Context, *messages.Task) (*messages.Result, error) {
					return &messages.Result{Files: 1}, tc.err
				}
			})
			task, _, _ := copyTask(t, nil, nil)
			publishTask(t, js, task)
			eventually(t, bound, "the task handed back and delivered again", func() bool {
				info, err := cons.Info(context.Background())
				return err == nil && info.Delivered.Consumer >= 2
			})
			if n := queued(t, js); n != 1 {
				t.Fatalf("%d tasks queued while results cannot be published, want the task kept", n)
			}
			if _, err := queue.Ensure(context.Background(), js, cfg); err != nil {
				t.Fatal(err)
			}
			r := finalResult(t, js, task.Run, task.ID)
			if r.OK() != tc.wantOK || !strings.Contains(r.Error, tc.wantErr) || r.Attempt < 2 {
				t.Errorf("final result %+v, want ok=%v error %q on a later attempt", r, tc.wantOK, tc.wantErr)
			}
			eventually(t, bound, "the task leaves the queue", func() bool { return queued(t, js) == 0 })
		})
	}
}

// A worker configured for another storage hands a task back, late, with a non-final result
// that names the mismatch, instead of failing it; a correctly configured worker then does it.
func TestMismatchHandsBack(t *testing.T) {
	js, cons := startQueue(t, queue.Config{MaxDeliver: 5})
	task, src, _ := copyTask(t, map[string]string{"content/a.json": "{}"}, []string{"content/a.json"})
	runWorker(t, js, cons, Config{Name: "elsewhere", StorageURL: t.TempDir()}, nil)
	publishTask(t, js, task)
	var r *messages.Result
	eventually(t, bound, "a result", func() bool { r = lastResult(t, js, task.Run, task.ID); return r != nil })
	if r.Final || !r.Mismatch || r.Worker != "elsewhere" || !strings.Contains(r.Error, "storage") {
		t.Fatalf("result %+v, want a non-final mismatch naming the storage", r)
	}
	if n := queued(t, js); n != 1 {
		t.Fatalf("%d tasks queued after the mismatch, want the task kept", n)
	}
	start := time.Now()
	runWorker(t, js, cons, Config{Name: "right", StorageURL: src}, nil)
	r = finalResult(t, js, task.Run, task.ID)
	t.Logf("done by %s after %s", r.Worker, time.Since(start).Round(time.Millisecond))
	if !r.OK() || r.Worker != "right" || r.Files != 1 {
		t.Fatalf("final result %+v, want the task done by the worker configured for its storage", r)
	}
}

// forbidWrites answers every object write with S3's 403 AccessDenied, and counts them.
type forbidWrites struct {
	next   http.Handler
	writes atomic.Int64
}

func (f *forbidWrites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		f.next.ServeHTTP(w, r)
		return
	}
	f.writes.Add(1)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
}

// An S3 destination that refuses access fails the task at once: a 403 is permanent, and the
// task does not burn its deliveries on it.
func TestS3ForbiddenIsPermanent(t *testing.T) {
	flt := &forbidWrites{}
	srv := s3test.Start(t, func(h http.Handler) http.Handler { flt.next = h; return flt }, "backups")
	js, cons := startQueue(t, queue.Config{MaxDeliver: 5})
	task, src, _ := copyTask(t, map[string]string{"content/a.json": "{}"}, []string{"content/a.json"})
	// The key list stays in a local folder; the copies go to S3.
	task.Copy.ListStore, task.Copy.Sums = task.Dest, ""
	task.Dest = srv.URL("backups", "staging", "")
	runWorker(t, js, cons, Config{StorageURL: src}, nil)
	publishTask(t, js, task)
	r := finalResult(t, js, task.Run, task.ID)
	if r.OK() || r.Attempt != 1 || !strings.Contains(r.Error, "AccessDenied") {
		t.Fatalf("result %+v, want a failure on the first attempt naming AccessDenied", r)
	}
	if n := flt.writes.Load(); n != 1 {
		t.Errorf("%d writes refused, want 1: a 403 is not retried", n)
	}
}

// A task whose run ends while it writes leaves no orphan: the worker checks the run again
// after writing and, when nobody will publish or resume the staging area (the run failed and
// was cleaned up, or completed), removes what its write made anew; a staging area kept for a
// resume is left alone. Either way the task fails for good.
func TestLateWriteIntoEndedRun(t *testing.T) {
	for _, tc := range []struct {
		name, state string
		keep        bool // the record still names the staging area
		wantStaging bool
	}{
		{"failed and cleaned up", messages.RunFailed, false, false},
		{"complete", messages.RunComplete, false, false},
		{"failed, kept for a resume", messages.RunFailed, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			js, cons := startQueue(t, queue.Config{MaxDeliver: 3})
			kv, err := js.KeyValue(ctx, messages.RunsBucket)
			if err != nil {
				t.Fatal(err)
			}
			staging := filepath.Join(t.TempDir(), layout.StagingPrefix+"run1")
			put := func(state, stagingName string) {
				data, _ := messages.Marshal(&messages.RunRecord{Version: messages.Version, ID: "run1", Kind: "backup", State: state, Staging: stagingName})
				if _, err := kv.Put(ctx, "run1", data); err != nil {
					t.Error(err)
				}
			}
			put(messages.RunRunning, staging)
			runWorker(t, js, cons, Config{}, func(w *Worker) {
				w.handler = func(context.Context, *messages.Task) (*messages.Result, error) {
					// The coordinator ends the run, and cleans up, while the task writes.
					kept := ""
					if tc.keep {
						kept = staging
					}
					put(tc.state, kept)
					if !tc.keep {
						os.RemoveAll(staging)
					}
					if err := os.MkdirAll(filepath.Join(staging, "files"), 0o700); err != nil {
						return nil, err
					}
					return &messages.Result{Files: 1}, os.WriteFile(filepath.Join(staging, "files", "late"), []byte("x"), 0o600)
				}
			})
			task, _, _ := copyTask(t, nil, nil)
			task.Dest = staging
			publishTask(t, js, task)
			r := finalResult(t, js, "run1", task.ID)
			if r.OK() || !strings.Contains(r.Error, "is "+tc.state) {
				t.Errorf("late task: %+v, want a refusal naming the run's state", r)
			}
			_, err = os.Stat(staging)
			if exists := err == nil; exists != tc.wantStaging {
				t.Errorf("staging area exists %v, want %v", exists, tc.wantStaging)
			}
		})
	}
}

// A task that succeeds just as its worker shuts down (the run ended, the session is closing)
// is acked, not left to be redelivered and done twice, and the worker logs no failure to
// settle it ("ack task: context canceled" before: the ack used the task's context, which the
// shutdown cancels between the published result and the ack).
func TestTaskDoneDuringShutdownIsAcked(t *testing.T) {
	js, cons := startQueue(t, queue.Config{MaxDeliver: 3})
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := New(context.Background(), js, cons, Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var runs atomic.Int32
	w.handler = func(taskCtx context.Context, _ *messages.Task) (*messages.Result, error) {
		runs.Add(1)
		stop() // the worker is told to stop while the task finishes
		select {
		case <-taskCtx.Done(): // no grace: the task's context is cancelled
		case <-time.After(bound):
			t.Error("the task's context was not cancelled on shutdown")
		}
		return &messages.Result{Rows: 1}, nil
	}
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	task, _, _ := copyTask(t, nil, nil)
	publishTask(t, js, task)
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatal("the worker did not stop")
	}
	if r := finalResult(t, js, "run1", task.ID); !r.OK() {
		t.Errorf("result %+v, want success", r)
	}
	if n := queued(t, js); n != 0 {
		t.Errorf("%d task messages left in the queue: the done task was not acked", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() > 0 {
		t.Errorf("warnings while settling a task done on shutdown:\n%s", logs.String())
	}
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// removeStaging takes away an S3 staging prefix a late task made anew, and nothing beside it;
// a location that is not a staging area is refused.
func TestRemoveStagingS3(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t, nil, "backups")
	staging := layout.StagingPrefix + "run1"
	for _, k := range []string{staging + "/files/a", staging + "/db_x.json", staging + "x/other", "backup_1/kept"} {
		srv.Put(t, "backups", "nightly/"+k, []byte("x"))
	}
	if err := removeStaging(ctx, srv.URL("backups", "nightly/"+staging, "")); err != nil {
		t.Fatal(err)
	}
	b, err := storage.Open(ctx, srv.URL("backups", "nightly", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var left []string
	if err := b.Walk(ctx, "", func(o storage.Object) error { left = append(left, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{staging + "x/other", "backup_1/kept"}; !slices.Equal(sorted(left), sorted(want)) {
		t.Errorf("left %v, want %v", left, want)
	}
	if err := removeStaging(ctx, filepath.Join(t.TempDir(), "backup_1")); err == nil {
		t.Error("a folder that is not a staging area was removed")
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

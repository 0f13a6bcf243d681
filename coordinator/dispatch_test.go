package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/workers"
)

// runBound is how long a run that must fail may take to fail.
const runBound = 30 * time.Second

// testQueue is an embedded JetStream server with the streams declared.
type testQueue struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
}

func startQueue(t *testing.T, cfg queue.Config) *testQueue {
	t.Helper()
	js, cons := queuetest.Start(t, cfg)
	return &testQueue{js: js, cons: cons}
}

// coordinator makes a coordinator with short collecting clocks.
func (q *testQueue) coordinator(t *testing.T, stallTimeout time.Duration) *Coordinator {
	t.Helper()
	c := New(q.js, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c.StallWarning = time.Second
	c.StallTimeout = stallTimeout
	c.timings = collectTimings{ResyncAfter: 500 * time.Millisecond, EndGrace: 500 * time.Millisecond, Tick: 100 * time.Millisecond}
	return c
}

// startWorker runs a real worker reading storage src until the test ends.
func (q *testQueue) startWorker(t *testing.T, src string) {
	t.Helper()
	w, err := workers.New(context.Background(), q.js, q.cons, workers.Config{
		Name: "test-worker", StorageURL: src, Backoff: func(int) time.Duration { return 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// copyTasks makes n copy tasks of one file each, from a new storage folder (returned) into
// a new staging folder.
func copyTasks(t *testing.T, run string, n int) ([]*messages.Task, string) {
	t.Helper()
	src, dest := t.TempDir(), t.TempDir()
	var tasks []*messages.Task
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("copy-%d", i)
		key := "content/" + id + ".json"
		if err := os.MkdirAll(filepath.Join(src, "content"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, filepath.FromSlash(key)), []byte(`{"n":1}`), 0o644); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		lw := messages.NewFileListWriter(&b)
		lw.Add(messages.FileEntry{Key: key})
		if err := lw.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dest, id+".jsonl"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, &messages.Task{
			Version: messages.Version, Run: run, ID: id, Kind: messages.KindCopyPrefix, Dest: dest,
			Copy: &messages.CopyTask{Source: src, Prefix: "content/", KeyList: id + ".jsonl", DestPrefix: "files/", Sums: id + ".sums.jsonl", Keys: 1},
		})
	}
	return tasks, src
}

// dispatchWithin runs dispatch and fails the test if it takes longer than runBound.
func dispatchWithin(t *testing.T, c *Coordinator, run string, tasks []*messages.Task) (map[string]*messages.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*runBound)
	defer cancel()
	start := time.Now()
	res, err := c.dispatch(ctx, run, tasks, nil, nil)
	if took := time.Since(start); took > runBound || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dispatch took %s (err %v), want under %s", took, err, runBound)
	} else {
		t.Logf("dispatch ended in %s", took.Round(time.Millisecond))
	}
	return res, err
}

// assertTaskError checks that err is a TaskError naming task with a cause holding one of
// the |-separated strings of want.
func assertTaskError(t *testing.T, err error, task, want string) {
	t.Helper()
	var te *TaskError
	if !errors.As(err, &te) || te.Task != task {
		t.Fatalf("err = %v, want task %s to fail", err, task)
	}
	for _, alt := range strings.Split(want, "|") {
		if strings.Contains(te.Cause, alt) {
			return
		}
	}
	t.Fatalf("task %s failed with %q, want one of %q", task, te.Cause, want)
}

func TestDispatchCollectsEveryResult(t *testing.T) {
	q := startQueue(t, queue.Config{})
	tasks, src := copyTasks(t, "run-ok", 3)
	q.startWorker(t, src)
	res, err := dispatchWithin(t, q.coordinator(t, time.Minute), "run-ok", tasks)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if r := res[task.ID]; r == nil || !r.OK() || r.Files != 1 {
			t.Fatalf("result of %s = %+v", task.ID, r)
		}
	}
}

// A task a worker cannot decode (garbage, or a wire version it does not speak) is published
// raw into a run under the run's message id, so the coordinator's own publish is the
// duplicate: the worker refuses it, and the run must fail naming it, by the terminated
// advisory or, without advisories, by reading the queue.
func TestUndecodableTaskFailsRun(t *testing.T) {
	future := fmt.Sprintf(`{"v":%d,"run":"RUN","id":"bad","kind":"copy-prefix","dest":"/x","copy":{"source":"/y"}}`, messages.Version+1)
	tests := []struct {
		name         string
		payload      string
		noAdvisories bool
		wantCause    string
	}{
		{"garbage, terminated advisory", "{not json", false, "a worker terminated it without a final result"},
		{"future version, terminated advisory", future, false, "version"},
		{"garbage, no advisories: resync", "{not json", true, "left the queue without a final result"},
		// A worker that can read the task's id may publish a final failure naming the
		// versions; one that cannot leaves the resync to find the task gone.
		{"future version, no advisories: resync", future, true, "version|left the queue without a final result"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := startQueue(t, queue.Config{})
			run := fmt.Sprintf("run-bad-%d", i)
			tasks, src := copyTasks(t, run, 2)
			bad := &messages.Task{Version: messages.Version, Run: run, ID: "bad", Kind: messages.KindCopyPrefix, Dest: tasks[0].Dest, Copy: tasks[0].Copy}
			tasks = append(tasks, bad)
			raw := strings.ReplaceAll(tt.payload, "RUN", run)
			if _, err := q.js.PublishMsg(context.Background(), &nats.Msg{Subject: messages.TaskSubject(run, bad.Kind), Data: []byte(raw)},
				jetstream.WithMsgID(messages.MsgID(run, bad.ID))); err != nil {
				t.Fatal(err)
			}
			c := q.coordinator(t, time.Minute)
			c.noAdvisories = tt.noAdvisories
			// The worker starts once the run listens and its tasks are out, as in a live run.
			c.afterPublish = func() { q.startWorker(t, src) }
			_, err := dispatchWithin(t, c, run, tasks)
			assertTaskError(t, err, "bad", tt.wantCause)
		})
	}
}

// A task that no worker ever finishes (a worker that dies on each delivery, here one that
// hands it back without a result) ends after MaxDeliver deliveries: the run fails naming it,
// from the max-deliveries advisory or, when that advisory is lost, from the consumer's state.
func TestMaxDeliveredTaskFailsRun(t *testing.T) {
	for _, noAdvisories := range []bool{false, true} {
		t.Run(fmt.Sprintf("noAdvisories=%v", noAdvisories), func(t *testing.T) {
			q := startQueue(t, queue.Config{MaxDeliver: 2, AckWait: time.Second})
			tasks, _ := copyTasks(t, "run-lost", 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go handBackEverything(ctx, q.cons)
			c := q.coordinator(t, time.Minute)
			c.noAdvisories = noAdvisories
			_, err := dispatchWithin(t, c, "run-lost", tasks)
			assertTaskError(t, err, tasks[0].ID, "gave up after the last delivery")
		})
	}
}

// handBackEverything is a worker that takes each task and hands it back without a result.
func handBackEverything(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		m, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err == nil {
			m.Nak()
		}
	}
}

// With no worker at all, the run fails after the stall timeout, naming its tasks and that no
// worker is there.
func TestNoWorkerStallsRun(t *testing.T) {
	q := startQueue(t, queue.Config{})
	tasks, _ := copyTasks(t, "run-alone", 2)
	_, err := dispatchWithin(t, q.coordinator(t, 2*time.Second), "run-alone", tasks)
	var se *StallError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a stall", err)
	}
	for _, want := range []string{"copy-0, copy-1", "0 workers waiting for tasks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	// The failed run's tasks are purged: a worker started later finds nothing of it.
	s, err := q.js.Stream(context.Background(), messages.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("tasks left after the stall: %v %v", info.State.Msgs, err)
	}
}

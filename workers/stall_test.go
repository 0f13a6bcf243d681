package workers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/messages"
)

// An armed attempt that moves nothing for the stall timeout ends as a failed attempt naming
// the stall (and, every attempt stalling, as a final failure); one that moves slowly, or one
// that never armed its meter, runs to its end however long it takes.
func TestStalledAttemptIsCancelled(t *testing.T) {
	const stall = 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		handler func(ctx context.Context) error
		stalled bool
	}{
		{"armed, waits on a peer that never answers", func(ctx context.Context) error {
			meterOf(ctx).arm()
			<-ctx.Done()
			return ctx.Err()
		}, true},
		{"armed, moves a little every 100ms for 1.2s", func(ctx context.Context) error {
			m := meterOf(ctx)
			m.arm()
			for range 12 {
				m.Write([]byte("row"))
				time.Sleep(100 * time.Millisecond)
			}
			return nil
		}, false},
		{"never armed, busy for 1.2s", func(ctx context.Context) error {
			select {
			case <-time.After(1200 * time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, cons := startQueue(t, queue.Config{MaxDeliver: 2})
			runWorker(t, js, cons, Config{StallTimeout: stall}, func(w *Worker) {
				w.handler = func(ctx context.Context, _ *messages.Task) (*messages.Result, error) {
					if err := tc.handler(ctx); err != nil {
						return nil, err
					}
					return &messages.Result{Rows: 1}, nil
				}
			})
			task, _, _ := copyTask(t, nil, nil)
			publishTask(t, js, task)
			r := finalResult(t, js, "run1", task.ID)
			if !tc.stalled {
				if !r.OK() {
					t.Fatalf("result %+v, want success", r)
				}
				return
			}
			if r.OK() || r.Attempt != 2 || !strings.Contains(r.Error, "no progress for 300ms") {
				t.Fatalf("result %+v, want a final failure after 2 attempts naming the stall", r)
			}
		})
	}
}

// An export whose PostgreSQL server stops answering mid-query — the connection open, the
// server's kernel answering for it — is cancelled once it has read and written nothing for the
// stall timeout, naming the stall, instead of waiting for ever.
func TestExportOnFrozenServerIsCancelled(t *testing.T) {
	direct := demoDatabase(t, "postgres")
	proxy, u := proctest.ProxyURL(t, direct)
	w, db := databaseWorker(t, u.String())
	w.cfg.StallTimeout = 500 * time.Millisecond
	snap, err := db.BeginSnapshot(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	e := messages.ExportTask{Model: "books.changelog", Database: db.Source().Redacted, Snapshot: snap.ID(), Whole: true}
	e.Output = "out.json"
	task := &messages.Task{Version: messages.Version, Run: "run1", ID: "export-x", Kind: messages.KindExportModel, Dest: t.TempDir(), Export: &e}

	proxy.Freeze(2 << 10) // the server's next 2 KiB pass: the query starts, its rows stop
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = w.watched(ctx, task, w.export)
	var stall *NoProgressError
	if !errors.As(err, &stall) || ctx.Err() != nil {
		t.Fatalf("export on a frozen server: %v after %s, want it cancelled for no progress", err, time.Since(start).Round(time.Millisecond))
	}
	if !strings.Contains(err.Error(), "no progress for 500ms") {
		t.Errorf("error %q does not name the stall", err)
	}
}

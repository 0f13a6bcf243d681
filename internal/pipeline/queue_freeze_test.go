package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/messages"
)

// TestBackupEndsSoonAfterTheQueueFreezes: a backup whose queue server stops answering mid-run
// (its connections kept open, as a stopped nats-server leaves them) fails at the stall
// timeout, and the session closes soon after: neither the run's tidying up of the queue nor its
// in-process worker, busy with a task, waits its full limits on a queue that does not answer.
func TestBackupEndsSoonAfterTheQueueFreezes(t *testing.T) {
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook = 6, 20
	p := sqlitePlatform(t, opts)
	url := queuetest.Server(t)
	proxy, u := proctest.ProxyURL(t, url)
	const stall = time.Second
	s, err := pipeline.Start(t.Context(), pipeline.Config{NATSURL: u.String(), Workers: 1,
		DatabaseURL: p.dbURL, StorageURL: p.storage, StallTimeout: stall})
	if err != nil {
		t.Fatal(err)
	}
	s.Coordinator.StallTimeout = stall

	const run = "frozen-queue-backup"
	frozen := make(chan time.Time, 1)
	go func() { frozen <- freezeAtFirstCopy(t, url, run, proxy) }()
	_, err = s.Coordinator.Backup(t.Context(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage,
		BackupDir: t.TempDir(), RunID: run, FilesPerTask: 1})
	s.Close()
	end := time.Now()
	at := <-frozen
	if at.IsZero() {
		t.Fatalf("the backup ended (%v) before the queue could be frozen", err)
	}
	if err == nil {
		t.Fatal("a backup on a frozen queue succeeded")
	}
	// The stall timeout, a read bounded by it, a second on each step of the end; before, the
	// purge, the heartbeat, the outcome and the worker's own result waited 10 to 15 s each.
	took := end.Sub(at)
	t.Logf("ended %s after the queue froze: %v", took.Round(100*time.Millisecond), err)
	if took > 12*time.Second {
		t.Errorf("the backup and its session ended %s after the queue froze (%v); want well under 15 s", took.Round(100*time.Millisecond), err)
	}
}

// freezeAtFirstCopy freezes the proxy once run has a copy task's result, read over a
// connection of its own; the zero time if the run ended first (or a minute passed).
func freezeAtFirstCopy(t *testing.T, url, run string, proxy *proctest.FreezingProxy) time.Time {
	nc, err := queue.Connect(url, t.Name())
	if err != nil {
		return time.Time{}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return time.Time{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if results, err := js.Stream(ctx, messages.StreamResults); err == nil {
			info, err := results.Info(ctx, jetstream.WithSubjectFilter(messages.RunResultsSubject(run)))
			if err == nil {
				for subj := range info.State.Subjects {
					if strings.Contains(subj, ".copy-") {
						proxy.Freeze(0)
						return time.Now()
					}
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}
}

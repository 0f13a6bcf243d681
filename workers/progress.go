package workers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webnovel/webnovel-backup/messages"
)

// progressInterval is how often a running copy task publishes the bytes it has written.
var progressInterval = 500 * time.Millisecond

// fileCounter counts one file's bytes into its task's total as they are written. A copy that
// is thrown away (read again, or failed) takes its bytes back out, so the task's total never
// counts a byte twice. One file is copied by one goroutine: own needs no lock.
type fileCounter struct {
	task *atomic.Int64
	own  int64
}

// Write counts p.
func (c *fileCounter) Write(p []byte) (int, error) {
	c.own += int64(len(p))
	c.task.Add(int64(len(p)))
	return len(p), nil
}

// settle makes the file count n bytes in all: its size once copied (a server-side copy
// writes nothing through Write), 0 when its copy is thrown away.
func (c *fileCounter) settle(n int64) {
	if c == nil {
		return
	}
	c.task.Add(n - c.own)
	c.own = n
}

// reportProgress publishes task t's bytes written so far on the run's progress subject every
// progressInterval while it runs. stop ends it and returns once nothing more will be
// published: call it before the task's result goes out, which no progress may follow. Core
// NATS, lossy: a failed publish costs a bar update, nothing else.
func (w *Worker) reportProgress(ctx context.Context, t *messages.Task, written *atomic.Int64) (stop func()) {
	if w.js == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(progressInterval)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := written.Load()
			if n == last || n < 0 {
				continue
			}
			last = n
			w.publishProgress(t, n)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// publishProgress sends one progress message; errors are only logged.
func (w *Worker) publishProgress(t *messages.Task, n int64) {
	data, err := messages.Marshal(messages.Progress{Version: messages.Version, Run: t.Run, Task: t.ID, Bytes: n})
	if err == nil {
		err = w.js.Conn().Publish(messages.ProgressSubject(t.Run), data)
	}
	if err != nil {
		w.log.Debug("publish task progress", "task", t.ID, "err", err)
	}
}

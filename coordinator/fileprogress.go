package coordinator

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/messages"
)

// fileMeter turns the copy tasks' progress messages and final results into file-byte
// additions to a Progress. Messages carry a task's cumulative count and may be lost,
// repeated, reordered or late, so per task it keeps the highest count seen and adds only
// what is new; a task's final result adds what its messages had not counted, so the total is
// exactly the bytes the results report, and anything after the result is ignored.
type fileMeter struct {
	prog Progress

	mu      sync.Mutex
	counted map[string]int64
	done    map[string]bool
	closed  bool
}

// newFileMeter feeds prog; a nil prog makes a nil meter, whose methods do nothing.
func newFileMeter(prog Progress) *fileMeter {
	if prog == nil {
		return nil
	}
	return &fileMeter{prog: prog, counted: map[string]int64{}, done: map[string]bool{}}
}

// seen takes a progress message: task has written n bytes so far.
func (m *fileMeter) seen(task string, n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.done[task] || n <= m.counted[task] {
		return
	}
	m.prog.Add(progress.Files, n-m.counted[task])
	m.counted[task] = n
}

// finish takes a task's final result of n bytes. A count past n (a copy thrown away after
// its bytes were announced) is left as it is: a bar never goes back.
func (m *fileMeter) finish(task string, n int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done[task] {
		return
	}
	m.done[task] = true
	if d := n - m.counted[task]; d > 0 {
		m.prog.Add(progress.Files, d)
	}
	delete(m.counted, task)
}

// close ignores every later message (one already being delivered when the subscription ended).
func (m *fileMeter) close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
}

// watchFiles subscribes to run's progress messages for the returned meter, until stop. A
// failed subscription only costs the bar its updates between results: it is logged, and
// the meter still counts the results.
func (c *Coordinator) watchFiles(ctx context.Context, run string, prog Progress) (m *fileMeter, stop func()) {
	m = newFileMeter(prog)
	if m == nil || c.js == nil || c.js.Conn() == nil {
		return m, m.close
	}
	sub, err := c.js.Conn().Subscribe(messages.ProgressSubject(run), func(msg *nats.Msg) {
		p, err := messages.DecodeProgress(msg.Data)
		if err != nil || p.Run != run {
			c.log.Debug("ignore progress message", "run", run, "err", err)
			return
		}
		m.seen(p.Task, p.Bytes)
	})
	if err != nil {
		c.log.DebugContext(ctx, "subscribe to task progress", "run", run, "err", err)
		return m, m.close
	}
	return m, func() {
		if err := sub.Unsubscribe(); err != nil {
			c.log.Debug("unsubscribe from task progress", "run", run, "err", err)
		}
		m.close()
	}
}

package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// An attempt that moves nothing for the stall timeout is cancelled. The heartbeat keeps a
// task's message alive for as long as its worker lives, so a task stuck on a peer that holds
// its connection open without answering (a PostgreSQL server frozen mid-query: its kernel still
// answers TCP keepalives) was, for the queue and the coordinator, a long task at work, for
// ever. Each attempt carries a progress meter; the handlers that can tell their progress arm it
// and count what they move (an export: the rows read and the bytes written), and the worker
// cancels an armed attempt whose meter stood still for Config.StallTimeout. The cancelled
// attempt fails like any other (retried, then final), naming the stall.

// DefaultStallTimeout is how long an attempt may move nothing before it is cancelled.
const DefaultStallTimeout = 10 * time.Minute

// NoProgressError is an attempt cancelled because it moved nothing for For.
type NoProgressError struct {
	For time.Duration
}

func (e *NoProgressError) Error() string {
	return fmt.Sprintf("no progress for %s: the database or storage the task reads or writes does not answer", e.For)
}

// progressMeter counts what one attempt moves. Until armed, its attempt is not watched: only
// handlers that count every kind of progress they make arm it.
type progressMeter struct {
	n     atomic.Int64
	armed atomic.Bool
}

type meterKey struct{}

// withMeter gives an attempt's context its meter.
func withMeter(ctx context.Context) (context.Context, *progressMeter) {
	m := &progressMeter{}
	return context.WithValue(ctx, meterKey{}, m), m
}

// meterOf is the meter of the attempt ctx belongs to; nil outside an attempt (every method
// of a nil meter does nothing).
func meterOf(ctx context.Context) *progressMeter {
	m, _ := ctx.Value(meterKey{}).(*progressMeter)
	return m
}

// arm starts the watch of the meter's attempt.
func (m *progressMeter) arm() {
	if m != nil {
		m.armed.Store(true)
	}
}

// Write counts p as progress: a meter is teed into what an attempt writes.
func (m *progressMeter) Write(p []byte) (int, error) {
	if m != nil {
		m.n.Add(int64(len(p)))
	}
	return len(p), nil
}

// metered passes writes to w and counts them on m.
func metered(w io.Writer, m *progressMeter) io.Writer {
	if m == nil {
		return w
	}
	return io.MultiWriter(w, m)
}

// watchProgress cancels the attempt when its armed meter stands still for limit; it returns
// when ctx (the attempt's) ends.
func watchProgress(ctx context.Context, m *progressMeter, limit time.Duration, cancel context.CancelCauseFunc) {
	t := time.NewTicker(max(limit/8, 10*time.Millisecond))
	defer t.Stop()
	last, since := m.n.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n := m.n.Load(); n != last || !m.armed.Load() {
				last, since = n, now
				continue
			}
			if now.Sub(since) >= limit {
				cancel(&NoProgressError{For: limit})
				return
			}
		}
	}
}

// stallOf says why an attempt whose context is actx failed with err: its stall, if it was
// cancelled for one, with what the handler saw.
func stallOf(actx context.Context, err error) error {
	var stall *NoProgressError
	if err == nil || !errors.As(context.Cause(actx), &stall) || errors.As(err, &stall) {
		return err
	}
	return fmt.Errorf("%w (%v)", stall, err)
}

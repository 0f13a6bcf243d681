package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webnovel/webnovel-backup/internal/database"
)

// A load reads its fixtures as it sends them to the database. A database that stops answering
// mid-load (a frozen server, a connection a firewall dropped in silence, a proxy that stopped
// forwarding) stops the reading too, and would hold the load, and the locks it took, for ever:
// loadWatch cancels a load that read nothing of its fixtures for the stall timeout. Once every
// fixture is read it watches no more: the commit's checks and index builds may rightly take
// long without reading anything.

// ErrLoadStalled is a load cancelled because it read nothing for the stall timeout.
var ErrLoadStalled = errors.New("the database stopped taking rows")

// loadWatch is one load's watch.
type loadWatch struct {
	last atomic.Int64 // unix nanoseconds of the last fixture read
	left atomic.Int64 // fixtures not yet read to their end (or closed)
}

// watchLoad wraps fixtures' readers to time their reads, and returns a context cancelled when
// stall passes with nothing read before every fixture is read; stop ends the watch. A stall of
// 0 watches nothing.
func watchLoad(ctx context.Context, fixtures []database.LoadFixture, stall time.Duration) (context.Context, []database.LoadFixture, func()) {
	if stall <= 0 {
		return ctx, fixtures, func() {}
	}
	w := &loadWatch{}
	w.last.Store(time.Now().UnixNano())
	w.left.Store(int64(len(fixtures)))
	wrapped := make([]database.LoadFixture, len(fixtures))
	for i, f := range fixtures {
		open, once := f.Open, new(sync.Once)
		f.Open = func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			return &watchedReader{ReadCloser: rc, w: w, done: once}, nil
		}
		wrapped[i] = f
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stopped := make(chan struct{})
	go w.run(ctx, cancel, stall, stopped)
	return ctx, wrapped, func() { close(stopped); cancel(nil) }
}

// run cancels the load when stall passes without a read, until every fixture is read or the
// watch is stopped.
func (w *loadWatch) run(ctx context.Context, cancel context.CancelCauseFunc, stall time.Duration, stopped chan struct{}) {
	tick := time.NewTicker(min(stall/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if w.left.Load() <= 0 {
				return
			}
			if idle := now.Sub(time.Unix(0, w.last.Load())); idle >= stall {
				cancel(fmt.Errorf("%w: nothing of the fixtures was sent for %s (--stall-timeout); the load is rolled back", ErrLoadStalled, idle.Round(time.Second)))
				return
			}
		}
	}
}

// finish counts one fixture read to its end.
func (w *loadWatch) finish() { w.left.Add(-1) }

// watchedReader times the reads of one fixture and says when it was read to its end (or
// closed).
type watchedReader struct {
	io.ReadCloser
	w    *loadWatch
	done *sync.Once
}

// Close ends the fixture's reading: a decoder may stop at the end of its JSON, short of EOF.
func (r *watchedReader) Close() error {
	r.done.Do(r.w.finish)
	return r.ReadCloser.Close()
}

func (r *watchedReader) Read(b []byte) (int, error) {
	n, err := r.ReadCloser.Read(b)
	if n > 0 {
		r.w.last.Store(time.Now().UnixNano())
	}
	if err == io.EOF {
		r.done.Do(r.w.finish)
	}
	return n, err
}

package coordinator

import (
	"context"
	"fmt"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
)

// taskSums reads the copy tasks' lists of sums into the backup's manifest, file index and
// manifest of plaintext sums as the tasks finish, on a goroutine of its own: the reading
// overlaps the tasks still running instead of following them all. The writers sort in runs
// on disk, as when the lists were read at the end, so memory stays flat.
type taskSums struct {
	sums  *layout.SumsWriter
	index *layout.FileIndexWriter
	plain *layout.PlainSumsWriter

	cleanups []func()
	cancel   context.CancelFunc
	finished chan *messages.Task // tasks whose results arrived, to read
	done     chan struct{}       // closed when the goroutine ends
	err      error               // the first failure, read after done
	// files holds each read task's part of the files' summary (changed files, modes), merged
	// in task order at the end so that the metadata does not depend on which task ended first.
	files map[string]*layout.FilesSummary
}

// startTaskSums makes the writers and starts reading the lists of the copy tasks a resumed
// run finished already; arrived queues the others. close removes the writers' runs.
func (r *backupRun) startTaskSums(ctx context.Context) (ts *taskSums, err error) {
	ts = &taskSums{finished: make(chan *messages.Task, len(r.tasks)), done: make(chan struct{}), files: map[string]*layout.FilesSummary{}}
	defer func() {
		if err != nil {
			ts.close()
		}
	}()
	sums, cleanup, err := newSumsWriter(r.stage)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	ts.sums, ts.cleanups = sums, append(ts.cleanups, cleanup)
	plain, cleanup, err := r.newPlainSumsWriter()
	if err != nil {
		return nil, err
	}
	ts.plain, ts.cleanups = plain, append(ts.cleanups, cleanup)
	index, cleanup, err := r.newIndexWriter()
	if err != nil {
		return nil, err
	}
	ts.index, ts.cleanups = index, append(ts.cleanups, cleanup)
	ctx, ts.cancel = context.WithCancel(ctx)
	go ts.read(ctx, r, ts.finished)
	for _, t := range r.tasks {
		if r.done[t.ID] != nil {
			ts.arrived(t)
		}
	}
	return ts, nil
}

// arrived queues a finished task's list (the queue holds every task: it never blocks).
func (ts *taskSums) arrived(t *messages.Task) {
	if t != nil && t.Copy != nil && ts.finished != nil {
		ts.finished <- t
	}
}

// read reads the queued lists until the queue is closed; after a failure it only drains.
func (ts *taskSums) read(ctx context.Context, r *backupRun, finished <-chan *messages.Task) {
	defer close(ts.done)
	dest := r.stage.Bucket()
	for t := range finished {
		if ts.err != nil {
			continue
		}
		part := &layout.FilesSummary{}
		if err := r.c.collectSums(ctx, dest, []*messages.Task{t}, ts.sums, ts.index, ts.plain, part); err != nil {
			ts.err = fmt.Errorf("backup: %w", err)
			continue
		}
		ts.files[t.ID] = part
	}
}

// wait ends the reading once every task has arrived (or the run failed) and returns its
// first failure.
func (ts *taskSums) wait() error {
	if ts.finished == nil {
		return ts.err
	}
	close(ts.finished)
	ts.finished = nil
	<-ts.done
	return ts.err
}

// stop abandons the reading (the run failed).
func (ts *taskSums) stop() {
	ts.cancel()
	ts.wait()
}

// mergeFiles adds the tasks' parts of the files' summary to files, in task order.
func (ts *taskSums) mergeFiles(tasks []*messages.Task, files *layout.FilesSummary) {
	files.DefaultMode = layout.FormatMode(layout.DefaultFileMode)
	for _, t := range tasks {
		part := ts.files[t.ID]
		if part == nil {
			continue
		}
		files.ChangedDuringBackup = append(files.ChangedDuringBackup, part.ChangedDuringBackup...)
		for mode, paths := range part.Modes {
			if files.Modes == nil {
				files.Modes = map[string][]string{}
			}
			files.Modes[mode] = append(files.Modes[mode], paths...)
		}
	}
}

// close removes the writers' runs.
func (ts *taskSums) close() {
	if ts == nil {
		return
	}
	if ts.cancel != nil {
		ts.cancel()
	}
	for _, c := range ts.cleanups {
		c()
	}
	ts.cleanups = nil
}

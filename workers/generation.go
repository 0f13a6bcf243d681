package workers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// checkRun refuses, for good, a task whose run has moved on: finished, failed (and perhaps
// cleaned up), or claimed by a resume since the task was published. Without it a late or
// redelivered task would write into a staging area nobody will publish or remove. Runs
// without a record (restores, or a registry not created yet) are not checked.
func (w *Worker) checkRun(ctx context.Context, t *messages.Task) error {
	_, err := w.refusal(ctx, t)
	return err
}

// refusal reads the task's run record and returns it (nil when there is none) with the
// refusal of the task, if the run has moved on.
func (w *Worker) refusal(ctx context.Context, t *messages.Task) (*messages.RunRecord, error) {
	rec, err := w.runRecord(ctx, t)
	if err != nil || rec == nil {
		return rec, err
	}
	if why := rec.AcceptsTask(t.Generation); why != "" {
		return rec, Permanent(fmt.Errorf("task %s refused: %s", t.ID, why))
	}
	return rec, nil
}

// checkRunAfter checks the run again once the task has written its outputs: the run may have
// ended, and its clean-up run, while the task was writing, so that the write made the staging
// area anew. When the record says nobody will publish or resume that staging area (complete,
// or failed and cleaned up), the task removes it, leaving no orphan, and fails for good.
func (w *Worker) checkRunAfter(ctx context.Context, t *messages.Task) error {
	// The work is done: a shutdown that cancels the task now must not throw it away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rec, err := w.refusal(ctx, t)
	if err == nil || rec == nil || t.Kind == messages.KindRestorePrefix {
		return err // a restore writes into live storage: never removed
	}
	if rec.State == messages.RunComplete || (rec.State == messages.RunFailed && rec.Staging == "") {
		if rmErr := removeStaging(ctx, t.Dest); rmErr != nil {
			w.log.Warn("remove the staging area a late task wrote into", "run", t.Run, "task", t.ID, "dest", t.Dest, "err", rmErr)
		} else {
			w.log.Info("removed the staging area a late task wrote into", "run", t.Run, "task", t.ID)
		}
	}
	return err
}

// runRecord reads the task's run record; nil when there is none.
func (w *Worker) runRecord(ctx context.Context, t *messages.Task) (*messages.RunRecord, error) {
	kv, err := w.runRegistry(ctx)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("task %s: open run registry: %w", t.ID, err)
	}
	e, err := kv.Get(ctx, t.Run)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("task %s: read the record of run %s: %w", t.ID, t.Run, err)
	}
	rec, err := messages.DecodeRun(e.Value())
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.ID, err)
	}
	return rec, nil
}

// runRegistry opens the run registry once per worker (a stream lookup on the server), not
// once per check.
func (w *Worker) runRegistry(ctx context.Context) (jetstream.KeyValue, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runs != nil {
		return w.runs, nil
	}
	kv, err := w.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil, err
	}
	w.runs = kv
	return kv, nil
}

// removeStaging removes a run's staging area, a folder or an S3 prefix, and nothing else: the
// location must name a staging area.
func removeStaging(ctx context.Context, dest string) error {
	if !storage.IsS3(dest) {
		if !strings.HasPrefix(filepath.Base(dest), layout.StagingPrefix) {
			return fmt.Errorf("%s is not a staging folder", dest)
		}
		return os.RemoveAll(dest)
	}
	b, err := storage.Open(ctx, dest)
	if err != nil {
		return err
	}
	defer b.Close()
	var keys []string
	if err := b.Walk(ctx, "", func(o storage.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Remove(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

package workers

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/messages"
)

// checkRun refuses, for good, a task whose run has moved on: finished, failed (and perhaps
// cleaned up), or claimed by a resume since the task was published. Without it a late or
// redelivered task would write into a staging area nobody will publish or remove. Runs
// without a record (restores, or a registry not created yet) are not checked.
func (w *Worker) checkRun(ctx context.Context, t *messages.Task) error {
	kv, err := w.js.KeyValue(ctx, messages.RunsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("task %s: open run registry: %w", t.ID, err)
	}
	e, err := kv.Get(ctx, t.Run)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("task %s: read the record of run %s: %w", t.ID, t.Run, err)
	}
	rec, err := messages.DecodeRun(e.Value())
	if err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	if why := rec.AcceptsTask(t.Generation); why != "" {
		return Permanent(fmt.Errorf("task %s refused: %s", t.ID, why))
	}
	return nil
}

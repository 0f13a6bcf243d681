package coordinator

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// queueHealth remembers whether the queue has stopped answering. The end of a run still tries
// to leave the queue tidy (purge its tasks, record its outcome, stop its subscriptions), but once
// one call has gone unanswered the others wait only briefly: a run that ends because the queue
// froze would otherwise wait the full limit on each of them before it could exit.
type queueHealth struct{ silent atomic.Bool }

const (
	// queueCallWait bounds one call to the queue at the end of a run.
	queueCallWait = 10 * time.Second
	// silentQueueWait bounds it once the queue has left a call unanswered.
	silentQueueWait = time.Second
)

// QueueSilent reports whether the queue left the coordinator's last call to it unanswered.
func (c *Coordinator) QueueSilent() bool { return c.queue.silent.Load() }

// wait is how long the next call to the queue at the end of a run may take.
func (h *queueHealth) wait(normal time.Duration) time.Duration {
	if h.silent.Load() {
		return min(normal, silentQueueWait)
	}
	return normal
}

// context is a context for one call to the queue at the end of a run, whatever became of the
// run's own context.
func (h *queueHealth) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.wait(queueCallWait))
}

// callContext bounds one call to the queue while a run goes on: normal at most, no longer than
// the stall timeout (a call that waits longer is itself a stall, and the run cannot notice one
// while it waits), and briefly once the queue has gone silent.
func (c *Coordinator) callContext(ctx context.Context, normal time.Duration) (context.Context, context.CancelFunc) {
	if c.StallTimeout > 0 {
		normal = min(normal, c.StallTimeout)
	}
	return context.WithTimeout(ctx, c.queue.wait(normal))
}

// note records what became of a call to the queue and returns its error: an unanswered call
// marks the queue silent, any answer marks it alive.
func (h *queueHealth) note(err error) error {
	switch {
	case unanswered(err):
		h.silent.Store(true)
	case err == nil || !errors.Is(err, context.Canceled):
		h.silent.Store(false)
	}
	return err
}

// unanswered reports whether err says the queue did not answer in time (or at all), as
// against an answer that refused.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed)
}

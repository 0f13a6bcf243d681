package coordinator

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/messages"
)

// resyncTimeout bounds one reading of the unfinished tasks' state.
const resyncTimeout = 30 * time.Second

// goneConfirmDelay is how long a resync waits before reading again a task message it found
// gone (see readState).
const goneConfirmDelay = 2 * time.Second

// readStates reads each unfinished task's state from JetStream rather than trusting the
// subscriptions: its final result in the results stream (which keeps the latest per task),
// whether its message is still in the work queue, and whether the consumer gave up on it.
// The ordered consumer dispatch listens with can stall for good after a cluster node is lost,
// and advisories are not replayed after a reconnect, while the streams hold the truth.
func (c *Coordinator) readStates(ctx context.Context, run string, seqs map[string]uint64) []taskState {
	ctx, cancel := c.callContext(ctx, resyncTimeout)
	defer cancel()
	results, err := c.js.Stream(ctx, messages.StreamResults)
	if c.queue.note(err) != nil {
		c.log.Warn("resync: read the results stream", "run", run, "err", err)
		return nil
	}
	tasks, err := c.js.Stream(ctx, messages.StreamTasks)
	if err != nil {
		c.log.Warn("resync: read the tasks stream", "run", run, "err", err)
		return nil
	}
	cs, csKnown := c.consumerState(ctx)
	var out []taskState
	found := 0
	for _, id := range slices.Sorted(maps.Keys(seqs)) {
		if ctx.Err() != nil {
			break
		}
		st := c.readState(ctx, results, tasks, run, id, seqs[id])
		if st.InQueue && csKnown {
			st.GaveUp = cs.gaveUp(seqs[id])
		}
		if st.Final != nil {
			found++
		}
		out = append(out, st)
	}
	if found > 0 {
		c.log.Warn("results read from the stream: the results subscription missed them", "run", run, "results", found)
	}
	return out
}

// readState reads one task's state. The result is read again after its message is found
// gone: a worker publishes the result before it acks, so a result missed the first time is
// there the second.
func (c *Coordinator) readState(ctx context.Context, results, tasks jetstream.Stream, run, id string, seq uint64) taskState {
	st := taskState{ID: id}
	if r, err := lastResultIn(ctx, results, run, id); err != nil {
		st.Unknown = true
		return st
	} else if r != nil && r.Final {
		st.Final = r
		return st
	}
	if seq == 0 {
		st.Unknown = true
		return st
	}
	_, err := tasks.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Just after a cluster node is lost, a stream whose leader is being elected can answer
		// "not found" for a message it holds: a message counts as gone only if it is still
		// gone a moment later.
		select {
		case <-time.After(goneConfirmDelay):
			_, err = tasks.GetMsg(ctx, seq)
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		r, err := lastResultIn(ctx, results, run, id)
		switch {
		case err != nil:
			st.Unknown = true
		case r != nil && r.Final:
			st.Final = r
		}
	case err != nil:
		st.Unknown = true
	default:
		st.InQueue = true
	}
	return st
}

// lastResultIn reads a task's latest result; nil without error when it has none.
func lastResultIn(ctx context.Context, results jetstream.Stream, run, id string) (*messages.Result, error) {
	m, err := results.GetLastMsgForSubject(ctx, messages.ResultSubject(run, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := messages.DecodeResult(m.Data)
	if err != nil {
		return nil, nil // not ours to read; the subscription logged it
	}
	return r, nil
}

// lastResult reads one task's latest result; nil when it has none or it cannot be read.
func (c *Coordinator) lastResult(ctx context.Context, run, id string) *messages.Result {
	ctx, cancel := c.callContext(ctx, queueCallWait)
	defer cancel()
	s, err := c.js.Stream(ctx, messages.StreamResults)
	if c.queue.note(err) != nil {
		return nil
	}
	r, _ := lastResultIn(ctx, s, run, id)
	return r
}

// consumerState is what the workers' consumer says about delivered messages.
type consumerState struct {
	ackFloor   uint64 // every message at or below it is settled or given up
	delivered  uint64 // the highest stream sequence delivered so far
	ackPending int    // messages delivered and not yet settled, any run's
}

// gaveUp reports whether the consumer will not deliver the message at seq again, given that
// it is still in the work queue (a settled message is removed): it is below the ack floor,
// or it was delivered and nothing at all is awaiting an ack. Which pending message is which
// is not visible, so while other messages are in flight a given-up task is found later.
func (s consumerState) gaveUp(seq uint64) bool {
	return seq <= s.ackFloor || (seq <= s.delivered && s.ackPending == 0)
}

// consumerState reads the workers' consumer.
func (c *Coordinator) consumerState(ctx context.Context) (consumerState, bool) {
	cons, err := c.js.Consumer(ctx, messages.StreamTasks, messages.ConsumerWorkers)
	if err != nil {
		return consumerState{}, false
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return consumerState{}, false
	}
	return consumerState{ackFloor: info.AckFloor.Stream, delivered: info.Delivered.Stream, ackPending: info.NumAckPending}, true
}

// readQueue reads the workers' consumer: idle pull requests and tasks in flight.
func (c *Coordinator) readQueue(ctx context.Context) queueState {
	ctx, cancel := c.callContext(ctx, queueCallWait)
	defer cancel()
	cons, err := c.js.Consumer(ctx, messages.StreamTasks, messages.ConsumerWorkers)
	if c.queue.note(err) != nil {
		return queueState{}
	}
	info, err := cons.Info(ctx)
	if c.queue.note(err) != nil {
		return queueState{}
	}
	return queueState{Known: true, Waiting: info.NumWaiting, InFlight: info.NumAckPending}
}

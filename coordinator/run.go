// Package coordinator plans a run, publishes its tasks to JetStream, collects every result and
// assembles the outcome: for a backup, the Django-compatible folder or archive (see the
// README's "Backup layout").
//
// The coordinator never runs tasks itself and never imports package workers: in the embedded
// default the workers are goroutines of the same process, elsewhere they are other processes,
// and the code path is the same.
package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
)

// Coordinator drives runs over one JetStream connection.
type Coordinator struct {
	js  jetstream.JetStream
	log *slog.Logger
	// StallWarning is how long the coordinator waits without any result before it logs that no
	// worker seems to be taking tasks.
	StallWarning time.Duration
	// StallTimeout fails a run that has made no task progress for this long, naming its
	// pending tasks and how many workers are subscribed; 0 waits for ever.
	StallTimeout time.Duration
}

// New makes a coordinator. The streams must exist (queue.Ensure).
func New(js jetstream.JetStream, log *slog.Logger) *Coordinator {
	if log == nil {
		log = slog.Default()
	}
	return &Coordinator{js: js, log: log, StallWarning: 30 * time.Second, StallTimeout: DefaultStallTimeout}
}

// DefaultStallTimeout is how long a run may make no task progress before it fails.
const DefaultStallTimeout = 10 * time.Minute

// NewRunID returns a run id: the start time and random bits, usable as a subject token.
func NewRunID(t time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return t.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// TaskError is a task that failed for good.
type TaskError struct {
	Task  string
	Cause string
}

func (e *TaskError) Error() string { return fmt.Sprintf("task %s failed: %s", e.Task, e.Cause) }

// dispatch publishes tasks and waits for a final result of every one. It returns the results
// by task id, or the first task failure / ctx error, after purging the run's leftover tasks.
// Tasks in done (a resumed run's finished work) are not published again; their results count.
func (c *Coordinator) dispatch(ctx context.Context, run string, tasks []*messages.Task, done map[string]*messages.Result, progress func(*messages.Result)) (map[string]*messages.Result, error) {
	results := map[string]*messages.Result{}
	for id, r := range done {
		results[id] = r
	}
	if len(results) == len(tasks) {
		return results, nil
	}
	byID := map[string]*messages.Task{}
	for _, t := range tasks {
		byID[t.ID] = t
	}

	// Listen before publishing, so no result or advisory can be missed.
	resultsCh := make(chan *messages.Result, 256)
	oc, err := c.js.OrderedConsumer(ctx, messages.StreamResults, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{messages.RunResultsSubject(run)},
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: subscribe to results: %w", run, err)
	}
	cc, err := oc.Consume(func(m jetstream.Msg) {
		r, err := messages.DecodeResult(m.Data())
		if err != nil {
			c.log.Warn("ignoring undecodable result", "subject", m.Subject(), "err", err)
			return
		}
		select {
		case resultsCh <- r:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: consume results: %w", run, err)
	}
	defer cc.Stop()

	exhausted := make(chan uint64, 16)
	sub, err := c.js.Conn().Subscribe(messages.MaxDeliveriesAdvisory, func(m *nats.Msg) {
		var adv struct {
			StreamSeq uint64 `json:"stream_seq"`
		}
		if json.Unmarshal(m.Data, &adv) == nil {
			select {
			case exhausted <- adv.StreamSeq:
			default:
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: subscribe to advisories: %w", run, err)
	}
	defer sub.Unsubscribe()

	seqTask := map[uint64]string{}
	for _, t := range tasks {
		if results[t.ID] != nil {
			continue
		}
		data, err := messages.Marshal(t)
		if err != nil {
			return nil, err
		}
		// The task's headers carry its producer span, the parent of the worker's span.
		subject, hdr := messages.TaskSubject(run, t.Kind), nats.Header{}
		_, span := telemetry.StartPublish(ctx, subject, t, hdr)
		ack, err := c.publishTask(ctx, &nats.Msg{Subject: subject, Data: data, Header: hdr}, messages.MsgID(run, t.ID))
		telemetry.End(span, err)
		if err != nil {
			c.purge(run)
			return nil, fmt.Errorf("run %s: publish task %s: %w", run, t.ID, err)
		}
		seqTask[ack.Sequence] = t.ID
	}
	c.log.Info("tasks published", "run", run, "tasks", len(tasks))

	lastCause := map[string]string{}
	stall := time.NewTicker(c.StallWarning)
	defer stall.Stop()
	lastNews := time.Now()
	fail := func(err error) (map[string]*messages.Result, error) {
		c.purge(run)
		return nil, err
	}
	handle := func(r *messages.Result) error {
		lastNews = time.Now()
		if _, ok := byID[r.Task]; !ok {
			return nil
		}
		if !r.Final {
			lastCause[r.Task] = r.Error
			c.log.Warn("task attempt failed", "task", r.Task, "attempt", r.Attempt, "worker", r.Worker, "err", r.Error)
			return nil
		}
		if r.Error != "" {
			return &TaskError{Task: r.Task, Cause: fmt.Sprintf("%s (attempt %d on worker %s)", r.Error, r.Attempt, r.Worker)}
		}
		if _, dup := results[r.Task]; !dup {
			results[r.Task] = r
			if progress != nil {
				progress(r)
			}
		}
		return nil
	}
	resync := time.NewTicker(resyncAfter)
	defer resync.Stop()
	for len(results) < len(tasks) {
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("run %s interrupted: %w", run, context.Cause(ctx)))
		case r := <-resultsCh:
			if err := handle(r); err != nil {
				return fail(err)
			}
		case <-resync.C:
			if time.Since(lastNews) < resyncAfter {
				continue
			}
			for _, r := range c.finalResults(ctx, run, tasks, results) {
				if err := handle(r); err != nil {
					return fail(err)
				}
			}
		case seq := <-exhausted:
			id, ok := seqTask[seq]
			if !ok {
				continue // another run's task
			}
			if _, done := results[id]; done {
				continue
			}
			cause := lastCause[id]
			if cause == "" {
				cause = "no worker finished it (workers died or timed out on every delivery)"
			}
			return fail(&TaskError{Task: id, Cause: "gave up after the last delivery: " + cause})
		case <-stall.C:
			if time.Since(lastNews) >= c.StallWarning {
				c.warnIfNoWorkers(ctx, run, len(tasks)-len(results))
			}
		}
	}
	return results, nil
}

// resyncAfter is how long dispatch waits without news before it reads the results stream
// directly (finalResults).
const resyncAfter = 5 * time.Second

// finalResults reads the final result of each unfinished task straight from the results
// stream, which keeps the latest one per task. The ordered consumer dispatch listens with can
// stall for good after a cluster node is lost, while the results are in the stream.
func (c *Coordinator) finalResults(ctx context.Context, run string, tasks []*messages.Task, have map[string]*messages.Result) []*messages.Result {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, messages.StreamResults)
	if err != nil {
		return nil
	}
	var out []*messages.Result
	for _, t := range tasks {
		if have[t.ID] != nil {
			continue
		}
		m, err := s.GetLastMsgForSubject(ctx, messages.ResultSubject(run, t.ID))
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			continue
		}
		if r, err := messages.DecodeResult(m.Data); err == nil && r.Final {
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		c.log.Warn("results read from the stream: the results subscription missed them", "run", run, "results", len(out))
	}
	return out
}

// warnIfNoWorkers says so when nobody is pulling tasks: with --workers 0 and no worker
// processes, a run would otherwise wait silently.
func (c *Coordinator) warnIfNoWorkers(ctx context.Context, run string, pending int) {
	cons, err := c.js.Consumer(ctx, messages.StreamTasks, messages.ConsumerWorkers)
	if err != nil {
		return
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return
	}
	if info.NumWaiting == 0 && info.NumAckPending == 0 {
		c.log.Warn("no worker is taking tasks; start `webnovel-backup worker` processes or use --workers N", "run", run, "pending", pending)
	} else {
		c.log.Info("waiting for tasks", "run", run, "pending", pending, "in_flight", info.NumAckPending)
	}
}

// purge removes a run's tasks that no worker has finished, so a failed run leaves no work behind.
func (c *Coordinator) purge(run string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, messages.StreamTasks)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(messages.RunTasksSubject(run)))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Warn("purge leftover tasks", "run", run, "err", err)
	}
}

// taskID builds a task id from parts, safe as a subject token.
func taskID(parts ...string) string {
	id := strings.Join(parts, "-")
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '/', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, id)
}

// publishTask publishes a task, again while the cluster does not answer (a node lost, a stream
// leader being elected): the message id makes a repeat a no-op that acks the first copy.
func (c *Coordinator) publishTask(ctx context.Context, msg *nats.Msg, id string) (*jetstream.PubAck, error) {
	const attempts = 8
	for attempt := 1; ; attempt++ {
		ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id))
		if err == nil {
			return ack, nil
		}
		unanswered := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
			errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
		if !unanswered || ctx.Err() != nil || attempt == attempts {
			return nil, err
		}
		c.log.Warn("publish task: no answer; retrying", "task", id, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

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
	"fmt"
	"log/slog"
	"strings"
	"sync"
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

	// timings holds the other collecting clocks (zero: defaults); tests shorten them.
	timings collectTimings
	// noAdvisories makes dispatch ignore the consumer's advisories (a test hook: the resync
	// must find what they would have said).
	noAdvisories bool
	// afterPublish, if set, is called once a run's tasks are published (a test hook).
	afterPublish func()
	// queue remembers whether the queue stopped answering, for the end of a run.
	queue queueHealth
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
	// Result is the task's final failed result, when a worker sent one: what the attempt did
	// before it failed (a restore task's files put in place). Nil when the queue let the
	// task go, or the run stalled.
	Result *messages.Result
}

func (e *TaskError) Error() string { return fmt.Sprintf("task %s failed: %s", e.Task, e.Cause) }

// dispatch publishes tasks and waits for a final result of every one. It returns the results
// by task id, or the first task failure / stall / ctx error, after purging the run's leftover
// tasks, with the results of the tasks that had finished by then. Tasks in done (a resumed run's finished work) are not published again; their results
// count. The decisions are the collector's; dispatch only feeds it.
func (c *Coordinator) dispatch(ctx context.Context, run string, tasks []*messages.Task, done map[string]*messages.Result, progress func(*messages.Result)) (map[string]*messages.Result, error) {
	col := newCollector(run, tasks, done, progress, c.collectTimings(), time.Now())
	if col.done() {
		return col.results, nil
	}
	// Listen before publishing, so no result or advisory can be missed.
	l, err := c.listen(ctx, run)
	if err != nil {
		return nil, err
	}
	defer l.stop()
	if err := c.publishAll(ctx, run, tasks, col); err != nil {
		c.purge(run)
		return nil, err
	}
	c.log.Info("tasks published", "run", run, "tasks", len(tasks))
	if c.afterPublish != nil {
		c.afterPublish()
	}
	if err := c.collect(ctx, run, l, col); err != nil {
		c.purge(run)
		return col.results, err
	}
	return col.results, nil
}

// collectTimings are the coordinator's clocks for collecting a run.
func (c *Coordinator) collectTimings() collectTimings {
	t := c.timings
	t.StallWarning, t.StallTimeout = c.StallWarning, c.StallTimeout
	if t.ResyncAfter <= 0 {
		t.ResyncAfter = defaultResyncAfter
	}
	if t.EndGrace <= 0 {
		t.EndGrace = defaultEndGrace
	}
	if t.Tick <= 0 {
		t.Tick = defaultTick
	}
	return t
}

// publishAll publishes the tasks the collector still waits for and tells it their sequences.
func (c *Coordinator) publishAll(ctx context.Context, run string, tasks []*messages.Task, col *collector) error {
	for _, t := range tasks {
		if col.pending[t.ID] == nil {
			continue
		}
		data, err := messages.Marshal(t)
		if err != nil {
			return fmt.Errorf("run %s: encode task %s: %w", run, t.ID, err)
		}
		// The task's headers carry its producer span, the parent of the worker's span.
		subject, hdr := messages.TaskSubject(run, t.Kind), nats.Header{}
		_, span := telemetry.StartPublish(ctx, subject, t, hdr)
		ack, err := c.publishTask(ctx, &nats.Msg{Subject: subject, Data: data, Header: hdr}, messages.MsgID(run, t.ID))
		telemetry.End(span, err)
		if err != nil {
			return fmt.Errorf("run %s: publish task %s: %w", run, t.ID, err)
		}
		col.published(t.ID, ack.Sequence)
	}
	return nil
}

// collect feeds the collector until every task has its final result or the run fails.
func (c *Coordinator) collect(ctx context.Context, run string, l *listener, col *collector) error {
	tick := time.NewTicker(col.t.Tick)
	defer tick.Stop()
	for !col.done() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("run %s interrupted: %w", run, context.Cause(ctx))
		case <-l.results.ready:
			for _, r := range l.results.drain() {
				if !r.Final && r.Error != "" {
					c.log.Warn("task attempt failed", "task", r.Task, "attempt", r.Attempt, "worker", r.Worker, "err", r.Error)
				}
				if err := col.result(r, time.Now()); err != nil {
					return err
				}
			}
		case <-l.advisories.ready:
			for _, a := range l.advisories.drain() {
				if err := c.onAdvisory(ctx, run, col, a); err != nil {
					return err
				}
			}
		case now := <-tick.C:
			if err := c.onTick(ctx, run, col, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// onAdvisory reads the task's final result first (a worker publishes it before it
// terminates the message, but the results subscription may trail the advisory), then tells
// the collector the queue let go of the task.
func (c *Coordinator) onAdvisory(ctx context.Context, run string, col *collector, a advisory) error {
	id, ok := col.bySeq[a.seq]
	if !ok {
		return nil
	}
	c.log.Debug("task advisory", "run", run, "task", id, "kind", a.kind, "reason", a.reason)
	if r := c.lastResult(ctx, run, id); r != nil && r.Final {
		return col.result(r, time.Now())
	}
	col.advisory(a, time.Now())
	return nil
}

// onTick lets the collector look at its clocks, and reads JetStream when it asks.
func (c *Coordinator) onTick(ctx context.Context, run string, col *collector, now time.Time) error {
	d, err := col.tick(now)
	if err != nil {
		return err
	}
	if d.resync {
		if err := col.snapshot(c.readStates(ctx, run, col.pendingSeqs()), now); err != nil {
			return err
		}
	}
	if d.queue {
		q := c.readQueue(ctx)
		warn, err := col.stalled(now, q)
		if warn {
			c.warnStall(run, len(col.pending), q)
		}
		return err
	}
	return nil
}

// warnStall says whether anybody is taking tasks: with --workers 0 and no worker processes,
// a run would otherwise wait silently until the stall timeout.
func (c *Coordinator) warnStall(run string, pending int, q queueState) {
	if q.Known && q.Waiting == 0 && q.InFlight == 0 {
		c.log.Warn("no worker is taking tasks; start `webnovel-backup worker` processes or use --workers N", "run", run, "pending", pending)
	} else {
		c.log.Info("waiting for tasks", "run", run, "pending", pending, "in_flight", q.InFlight, "idle_workers", q.Waiting)
	}
}

// listener holds a run's subscriptions: its results and the consumer's advisories.
type listener struct {
	results    *eventQueue[*messages.Result]
	advisories *eventQueue[advisory]
	stops      []func()
	queue      *queueHealth // how long stop waits
}

func (l *listener) stop() {
	done := make(chan struct{})
	go func() {
		for _, f := range l.stops {
			f()
		}
		close(done)
	}()
	// The ordered consumer's Stop waits for its reset, which retries for ever while the
	// server does not answer: a run that ends on a frozen queue does not wait for it (the
	// connection's close at the end of the session ends it).
	select {
	case <-done:
	case <-time.After(l.queue.wait(listenerStopWait)):
	}
}

// listenerStopWait bounds how long the end of a run waits for its subscriptions to stop.
const listenerStopWait = 5 * time.Second

// listen subscribes to the run's results (an ordered consumer of the results stream) and to
// the max-deliveries and terminated advisories of the workers' consumer.
func (c *Coordinator) listen(ctx context.Context, run string) (*listener, error) {
	l := &listener{results: newEventQueue[*messages.Result](), advisories: newEventQueue[advisory](), queue: &c.queue}
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
		l.results.push(r)
	})
	if err != nil {
		return nil, fmt.Errorf("run %s: consume results: %w", run, err)
	}
	l.stops = append(l.stops, cc.Stop)
	if c.noAdvisories {
		return l, nil
	}
	for subject, kind := range map[string]advisoryKind{
		messages.MaxDeliveriesAdvisory: advMaxDeliveries,
		messages.TerminatedAdvisory:    advTerminated,
	} {
		if err := c.subscribeAdvisory(l, subject, kind); err != nil {
			l.stop()
			return nil, fmt.Errorf("run %s: subscribe to advisories: %w", run, err)
		}
	}
	return l, nil
}

// subscribeAdvisory queues every advisory on subject. Advisories are core NATS: one lost in a
// reconnect is not replayed, which the resync covers.
func (c *Coordinator) subscribeAdvisory(l *listener, subject string, kind advisoryKind) error {
	sub, err := c.js.Conn().Subscribe(subject, func(m *nats.Msg) {
		var adv struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries int    `json:"deliveries"`
			Reason     string `json:"reason"`
		}
		if json.Unmarshal(m.Data, &adv) == nil {
			l.advisories.push(advisory{kind: kind, seq: adv.StreamSeq, deliveries: adv.Deliveries, reason: adv.Reason})
		}
	})
	if err != nil {
		return err
	}
	// The callback only queues, but never let the client drop an advisory as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return err
	}
	l.stops = append(l.stops, func() { sub.Unsubscribe() })
	return nil
}

// eventQueue is an unbounded queue that a subscription callback fills and the collecting loop
// drains: the callback never blocks, and nothing is dropped.
type eventQueue[T any] struct {
	mu    sync.Mutex
	items []T
	ready chan struct{}
}

func newEventQueue[T any]() *eventQueue[T] { return &eventQueue[T]{ready: make(chan struct{}, 1)} }

func (q *eventQueue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *eventQueue[T]) drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// purge removes a run's tasks that no worker has finished, so a failed run leaves no work behind.
func (c *Coordinator) purge(run string) {
	ctx, cancel := c.queue.context()
	defer cancel()
	s, err := c.js.Stream(ctx, messages.StreamTasks)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(messages.RunTasksSubject(run)))
	}
	if c.queue.note(err) != nil { // its context is its own: never cancelled, only timed out
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

// publishWait bounds one attempt to publish a task (the jetstream package's own default).
const publishWait = 5 * time.Second

// publishTask publishes a task, again while the cluster does not answer (a node lost, a stream
// leader being elected): the message id makes a repeat a no-op that acks the first copy.
func (c *Coordinator) publishTask(ctx context.Context, msg *nats.Msg, id string) (*jetstream.PubAck, error) {
	const attempts = 8
	start := time.Now()
	for attempt := 1; ; attempt++ {
		actx, cancel := c.callContext(ctx, publishWait)
		ack, err := c.js.PublishMsg(actx, msg, jetstream.WithMsgID(id))
		cancel()
		if c.queue.note(err) == nil {
			return ack, nil
		}
		if !unanswered(err) || ctx.Err() != nil || attempt == attempts {
			return nil, err
		}
		if c.StallTimeout > 0 && time.Since(start) >= c.StallTimeout {
			return nil, fmt.Errorf("the queue took no task for %s (--stall-timeout): %w", c.StallTimeout, err)
		}
		c.log.Warn("publish task: no answer; retrying", "task", id, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

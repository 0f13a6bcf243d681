package coordinator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/messages"
)

// collectTimings are the clocks of collecting a run's results.
type collectTimings struct {
	// StallWarning: without news for this long, log whether workers are taking tasks.
	StallWarning time.Duration
	// StallTimeout fails a run without task progress for this long; 0 waits for ever.
	StallTimeout time.Duration
	// ResyncAfter: without news for this long, read the unfinished tasks' state from
	// JetStream instead of trusting the subscriptions alone.
	ResyncAfter time.Duration
	// EndGrace is how long a task the queue let go of (terminated, max deliveries) may still
	// deliver its final result, which can trail the advisory.
	EndGrace time.Duration
	// Tick is how often the clocks are looked at.
	Tick time.Duration
}

// Default collecting clocks (StallWarning and StallTimeout come from the Coordinator).
const (
	defaultResyncAfter = 5 * time.Second
	defaultEndGrace    = 2 * time.Second
	defaultTick        = 500 * time.Millisecond
	// maxResyncGaps bounds the gap between two resyncs of a silent run, in ResyncAfter.
	maxResyncGaps = 12
)

// advisoryKind is which JetStream advisory said the queue let go of a task.
type advisoryKind int

const (
	advMaxDeliveries advisoryKind = iota + 1
	advTerminated
)

// advisory is a JetStream consumer advisory about one task message.
type advisory struct {
	kind       advisoryKind
	seq        uint64 // the task's stream sequence
	deliveries int
	reason     string // why a worker terminated it
}

// taskState is what a resync read from JetStream about one unfinished task.
type taskState struct {
	ID string
	// Final is its final result in the results stream, if any.
	Final *messages.Result
	// Unknown: the state could not be read; nothing is concluded.
	Unknown bool
	// InQueue: its message is still in the work-queue stream (acked and terminated messages
	// are removed from it).
	InQueue bool
	// GaveUp: the message is still there but the consumer will not deliver it again: it was
	// delivered MaxDeliver times without being settled.
	GaveUp bool
}

// queueState is the workers' consumer as the stall check sees it.
type queueState struct {
	Known bool
	// Waiting counts pull requests waiting for a task: idle workers.
	Waiting int
	// InFlight counts tasks delivered and not yet acked (any run's).
	InFlight int
}

// pendingTask is a published task without a final result yet.
type pendingTask struct {
	seq      uint64
	lastErr  string    // the last failed attempt's error
	ended    time.Time // when an advisory said the queue let go of it
	endCause string
}

// collector decides a run's outcome from the events dispatch feeds it: results, advisories,
// resync snapshots and clock ticks. It does no I/O, so every decision is unit-testable.
type collector struct {
	run      string
	t        collectTimings
	total    int
	results  map[string]*messages.Result
	pending  map[string]*pendingTask
	bySeq    map[uint64]string
	progress func(*messages.Result)

	lastNews     time.Time // any result or advisory of the run
	lastProgress time.Time // a task finished, or tasks were in flight with no failed attempt
	lastFailure  time.Time // a failed (non-final) attempt
	lastResync   time.Time
	resyncGap    time.Duration // grows while resyncs find nothing, back to ResyncAfter on news
	lastWarn     time.Time
}

// newCollector starts collecting tasks; those in done (a resumed run's finished work) count
// as results already.
func newCollector(run string, tasks []*messages.Task, done map[string]*messages.Result, progress func(*messages.Result), t collectTimings, now time.Time) *collector {
	c := &collector{
		run: run, t: t, total: len(tasks), results: map[string]*messages.Result{},
		pending: map[string]*pendingTask{}, bySeq: map[uint64]string{}, progress: progress,
		lastNews: now, lastProgress: now, lastResync: now, lastWarn: now, resyncGap: t.ResyncAfter,
	}
	for _, task := range tasks {
		if r := done[task.ID]; r != nil {
			c.results[task.ID] = r
		} else {
			c.pending[task.ID] = &pendingTask{}
		}
	}
	return c
}

// done reports whether every task has its final result.
func (c *collector) done() bool { return len(c.pending) == 0 }

// published records the stream sequence of a task's message.
func (c *collector) published(id string, seq uint64) {
	if p := c.pending[id]; p != nil {
		p.seq = seq
		c.bySeq[seq] = id
	}
}

// result takes a task's result: a final failure fails the run, a failed attempt is kept as
// the task's last cause.
func (c *collector) result(r *messages.Result, now time.Time) error {
	p := c.pending[r.Task]
	if p == nil {
		return nil // another run's, or a duplicate of a finished task's
	}
	c.news(now)
	if !r.Final {
		p.lastErr = r.Error
		c.lastFailure = now
		return nil
	}
	if r.Error != "" {
		return &TaskError{Task: r.Task, Cause: fmt.Sprintf("%s (attempt %d on worker %s)", r.Error, r.Attempt, r.Worker), Result: r}
	}
	delete(c.pending, r.Task)
	delete(c.bySeq, p.seq)
	c.results[r.Task] = r
	c.lastProgress = now
	if c.progress != nil {
		c.progress(r)
	}
	return nil
}

// advisory notes that the queue let go of a task: unless its final result follows within
// EndGrace, tick fails the run.
func (c *collector) advisory(a advisory, now time.Time) {
	id, ok := c.bySeq[a.seq]
	if !ok {
		return // another run's task, or one finished already
	}
	p := c.pending[id]
	c.news(now)
	if !p.ended.IsZero() {
		return
	}
	p.ended = now
	switch a.kind {
	case advTerminated:
		reason := a.reason
		if reason == "" {
			reason = "no reason given"
		}
		p.endCause = fmt.Sprintf("a worker terminated it without a final result after %d deliveries: %s", a.deliveries, reason)
	default:
		p.endCause = "gave up after the last delivery: " + c.lastCause(p)
	}
}

// news notes that the run heard of its tasks.
func (c *collector) news(now time.Time) {
	c.lastNews = now
	c.resyncGap = c.t.ResyncAfter
}

// lastCause is a pending task's last failed attempt, or what its silence means.
func (c *collector) lastCause(p *pendingTask) string {
	if p.lastErr != "" {
		return p.lastErr
	}
	return "no worker finished it (workers died or timed out on every delivery)"
}

// snapshot takes a resync's reading of the unfinished tasks: final results count as if they
// had arrived, and a task the queue no longer delivers without a final result fails the run.
func (c *collector) snapshot(states []taskState, now time.Time) error {
	// A long task is silent: resync less often while each finds nothing new.
	c.lastResync = now
	c.resyncGap = min(2*c.resyncGap, maxResyncGaps*c.t.ResyncAfter)
	for _, s := range states {
		if s.Final != nil {
			if err := c.result(s.Final, now); err != nil {
				return err
			}
			continue
		}
		p := c.pending[s.ID]
		switch {
		case p == nil || s.Unknown:
		case !s.InQueue:
			return &TaskError{Task: s.ID, Cause: "its message left the queue without a final result (terminated by a worker that could not run it, or purged); last attempt: " + c.lastCause(p)}
		case s.GaveUp:
			return &TaskError{Task: s.ID, Cause: "gave up after the last delivery: " + c.lastCause(p)}
		}
	}
	return nil
}

// due says what the plumbing should do on a tick.
type due struct {
	// resync: read the unfinished tasks' state (snapshot).
	resync bool
	// queue: read the consumer's state and call stalled.
	queue bool
}

// tick fails the run when a task the queue let go of has had its grace, and says whether a
// resync or a stall check is due.
func (c *collector) tick(now time.Time) (due, error) {
	for _, id := range c.pendingIDs() {
		p := c.pending[id]
		if !p.ended.IsZero() && now.Sub(p.ended) >= c.t.EndGrace {
			return due{}, &TaskError{Task: id, Cause: p.endCause}
		}
	}
	var d due
	d.resync = now.Sub(c.lastNews) >= c.t.ResyncAfter && now.Sub(c.lastResync) >= c.resyncGap
	warn := c.t.StallWarning > 0 && now.Sub(c.lastNews) >= c.t.StallWarning && now.Sub(c.lastWarn) >= c.t.StallWarning
	d.queue = warn || (c.t.StallTimeout > 0 && now.Sub(c.lastProgress) >= c.t.StallTimeout)
	return d, nil
}

// stalled decides, with the consumer's state, whether the run has stalled for good (a
// *StallError) and whether to log the stall warning. Tasks in flight count as progress while
// no attempt fails: a long task is not a stall, a worker handing tasks back is.
func (c *collector) stalled(now time.Time, q queueState) (warn bool, err error) {
	if c.t.StallWarning > 0 && now.Sub(c.lastNews) >= c.t.StallWarning && now.Sub(c.lastWarn) >= c.t.StallWarning {
		warn = true
		c.lastWarn = now
	}
	if c.t.StallTimeout <= 0 || now.Sub(c.lastProgress) < c.t.StallTimeout {
		return warn, nil
	}
	if q.Known && q.InFlight > 0 && now.Sub(c.lastFailure) >= c.t.StallTimeout {
		c.lastProgress = now
		return warn, nil
	}
	e := &StallError{Run: c.run, For: c.t.StallTimeout, Pending: c.pendingIDs(), Causes: map[string]string{},
		QueueKnown: q.Known, Waiting: q.Waiting, InFlight: q.InFlight}
	for _, id := range e.Pending {
		if p := c.pending[id]; p.lastErr != "" {
			e.Causes[id] = p.lastErr
		}
	}
	return warn, e
}

// pendingIDs lists the unfinished tasks in order.
func (c *collector) pendingIDs() []string {
	ids := make([]string, 0, len(c.pending))
	for id := range c.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// pendingSeqs lists the unfinished tasks with their stream sequences, for a resync.
func (c *collector) pendingSeqs() map[string]uint64 {
	out := make(map[string]uint64, len(c.pending))
	for id, p := range c.pending {
		out[id] = p.seq
	}
	return out
}

// StallError is a run that made no task progress for the stall timeout.
type StallError struct {
	Run string
	For time.Duration
	// Pending are the unfinished tasks, sorted.
	Pending []string
	// Causes holds the last failed attempt of pending tasks that had one (for example a
	// worker configured for another database handing the task back).
	Causes map[string]string
	// QueueKnown is false when the workers' consumer could not be read; otherwise Waiting
	// counts idle workers' pull requests and InFlight the tasks (any run's) held by workers.
	QueueKnown        bool
	Waiting, InFlight int
}

// stallNamed bounds how many pending tasks and causes the message names.
const stallNamed = 5

func (e *StallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s stalled: no task finished for %s; %d tasks pending (%s", e.Run, e.For, len(e.Pending), strings.Join(e.Pending[:min(len(e.Pending), stallNamed)], ", "))
	if len(e.Pending) > stallNamed {
		b.WriteString(", ...")
	}
	b.WriteString(")")
	if e.QueueKnown {
		fmt.Fprintf(&b, "; %d workers waiting for tasks, %d tasks in flight", e.Waiting, e.InFlight)
	} else {
		b.WriteString("; the workers' consumer could not be read")
	}
	n := 0
	for _, id := range e.Pending {
		if cause, ok := e.Causes[id]; ok && n < stallNamed {
			fmt.Fprintf(&b, "; %s last failed: %s", id, cause)
			n++
		}
	}
	if e.QueueKnown && e.Waiting == 0 && e.InFlight == 0 {
		b.WriteString("; start `webnovel-backup worker` processes or use --workers N")
	}
	return b.String()
}

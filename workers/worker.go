// Package workers runs tasks from the WNB_TASKS work queue: database exports and file copies.
//
// A worker fetches one task at a time from the shared durable consumer, signals progress while
// it works, writes its outputs to the run's destination under deterministic names, publishes a
// result, and only then acks.
//
// Every delivery, whether or not it decodes, ends in settle, which carries out what the pure
// function Decide makes of the attempt: ack, retry (nak with delay), term, or hand back (nak
// without counting as a failure). Nothing else acks, naks or terminates a task message. A
// message that is not a task this worker can run (undecodable, or of another wire version)
// still gets a final failure result that says so, whenever its run and id can be read; a
// final result is never skipped: if it cannot be published the task is handed back. A panic
// in a handler is a failed attempt, and a worker configured for another database or storage
// hands the task back for one that is not.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
)

// Config configures a worker.
type Config struct {
	// Name identifies the worker in results and logs (default: hostname and pid).
	Name string
	// Concurrency is how many tasks the worker runs at once (default 1), and how many file
	// transfers its copy tasks have in flight between them.
	Concurrency int
	// DatabaseURL is the platform database export tasks read; it must be the one the
	// coordinator reads (tasks carry its redacted URL and are refused on a mismatch).
	DatabaseURL string
	// StorageURL is the platform storage copy tasks read.
	StorageURL string
	// Backoff gives the redelivery delay after a failed attempt (1-based); default exponential
	// from 1s up to 30s.
	Backoff func(attempt int) time.Duration
	// ShutdownGrace is how long in-flight tasks may run on after Run's context ends before
	// they are handed back to the queue; 0 hands them back at once.
	ShutdownGrace time.Duration
	// PrivateQueue says the queue is this process's own (an embedded server): a task handed
	// to a pull cancelled as the worker stops cannot delay anyone, so the pull ends at once
	// instead of running out fetchWait (a second added to every in-process run's exit).
	PrivateQueue bool
	// Identities are the age keys that decrypt an encrypted backup's files in a restore
	// (--identity): read by this process, never sent in a task. Without them a restore task
	// of an encrypted backup is handed back for a worker that has them.
	Identities *encryption.Identities
	// StallTimeout cancels an attempt that moved nothing for this long (rows read, bytes
	// written), as a failed attempt naming the stall; 0 never does. Only the task kinds that
	// count all their progress are watched (exports: the stall of a database that holds its
	// connection open without answering); copies rely on the storage's own timeouts.
	StallTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Worker consumes tasks.
type Worker struct {
	cfg  Config
	js   jetstream.JetStream
	cons jetstream.Consumer
	log  *slog.Logger

	ackWait    time.Duration
	maxDeliver int

	mu   sync.Mutex
	db   *database.DB
	runs jetstream.KeyValue // the run registry, opened on first use

	slotsOnce sync.Once
	slots     chan []byte   // see copySlots
	commits   chan struct{} // see copySlots

	// handler, when set (by tests), runs tasks in place of handle.
	handler func(context.Context, *messages.Task) (*messages.Result, error)
	// publishWaits, when set (by tests), replace defaultPublishWaits.
	publishWaits []time.Duration

	running  atomic.Bool
	draining atomic.Bool
	inFlight atomic.Int64
}

// New makes a worker on the shared consumer cons (see queue.Ensure).
func New(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, cfg Config) (*Worker, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("worker %s: read consumer: %w", cfg.Name, err)
	}
	return &Worker{
		cfg: cfg, js: js, cons: cons, log: cfg.Logger.With("worker", cfg.Name),
		ackWait: info.Config.AckWait, maxDeliver: info.Config.MaxDeliver,
	}, nil
}

// DefaultBackoff doubles from one second to at most thirty.
func DefaultBackoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 5)
	return min(d, 30*time.Second)
}

// Run works until ctx is cancelled. Then it stops fetching, lets tasks in flight finish for up
// to ShutdownGrace, and hands back (nak) those still running so another worker takes them at
// once.
func (w *Worker) Run(ctx context.Context) error {
	taskCtx, cancelTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelTasks()
	w.running.Store(true)
	defer w.running.Store(false)
	defer telemetry.WorkerRunning(w.cfg.Name)()
	go func() {
		select {
		case <-ctx.Done():
		case <-taskCtx.Done():
			return
		}
		w.draining.Store(true)
		if n := w.inFlight.Load(); n > 0 && w.cfg.ShutdownGrace > 0 {
			w.log.Info("stopping: finishing tasks in flight", "tasks", n, "grace", w.cfg.ShutdownGrace)
		} else if n > 0 {
			// Without grace (in-process workers closing after their run) a task in flight is
			// one whose result is out and whose ack is on its way, or one handed back.
			w.log.Debug("stopping: tasks in flight are settled or handed back", "tasks", n)
		}
		t := time.NewTimer(w.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelTasks()
		case <-taskCtx.Done():
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, taskCtx)
		}()
	}
	wg.Wait()
	cancelTasks()
	w.mu.Lock()
	if w.db != nil {
		w.db.Close()
		w.db = nil
	}
	w.mu.Unlock()
	return nil
}

func (w *Worker) loop(ctx, taskCtx context.Context) {
	for ctx.Err() == nil {
		// The pull is not cancelled with ctx: a message the server hands to a cancelled pull
		// is dropped by the client and stays unacked until AckWait, delaying its task by
		// that much. A short pull ends on its own instead.
		msg, err := w.next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				w.log.Warn("fetch task", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		if ctx.Err() != nil {
			// Fetched as the worker stops: another worker takes it at once.
			if err := msg.Nak(); err != nil {
				w.log.Warn("hand back a task fetched while stopping", "subject", msg.Subject(), "err", err)
			}
			return
		}
		w.inFlight.Add(1)
		pause := w.process(taskCtx, msg)
		w.inFlight.Add(-1)
		sleep(ctx, pause)
	}
}

// next pulls one task, waiting up to fetchWait; on a private queue ctx ends the pull too.
func (w *Worker) next(ctx context.Context) (jetstream.Msg, error) {
	if !w.cfg.PrivateQueue {
		return w.cons.Next(jetstream.FetchMaxWait(fetchWait))
	}
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	return w.cons.Next(jetstream.FetchContext(fctx))
}

// fetchWait bounds one pull for a task, and so how long a stopping worker may wait for it.
const fetchWait = time.Second

// Check reports whether the worker can take tasks: running, not shutting down, and connected
// to NATS. It backs the health endpoint.
func (w *Worker) Check() error {
	switch {
	case !w.running.Load():
		return errors.New("not running")
	case w.draining.Load():
		return errors.New("shutting down")
	case w.js.Conn().Status() != nats.CONNECTED:
		return fmt.Errorf("nats connection is %s", w.js.Conn().Status())
	}
	return nil
}

// InFlight is the number of tasks being worked on now.
func (w *Worker) InFlight() int64 { return w.inFlight.Load() }

// delivery is one task message as the worker understands it.
type delivery struct {
	msg     jetstream.Msg
	attempt int
	// task is nil when the message cannot be run; err then says why.
	task *messages.Task
	err  error
	// run and id address the task's result: the task's, or what PeekTask recovered ("" when
	// not even that).
	run, id string
}

// readDelivery decodes a task message. A message that is not a task this worker can run
// still yields a delivery, with err set, so that it is settled like any other.
func readDelivery(msg jetstream.Msg) *delivery {
	d := &delivery{msg: msg}
	md, err := msg.Metadata()
	if err != nil {
		d.err = Permanent(fmt.Errorf("task message without JetStream metadata: %w", err))
	} else {
		d.attempt = int(md.NumDelivered)
	}
	task, terr := messages.DecodeTask(msg.Data())
	if terr == nil {
		d.task, d.run, d.id = task, task.Run, task.ID
		return d
	}
	var version int
	d.run, d.id, version = messages.PeekTask(msg.Data())
	if version != messages.Version {
		terr = fmt.Errorf("task of wire version %d; this worker speaks %d", version, messages.Version)
	}
	d.task, d.err = nil, Permanent(fmt.Errorf("cannot run task: %w", terr))
	return d
}

// process runs one task with progress heartbeats and settles it. It returns how long the
// worker should pause before fetching another.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg) time.Duration {
	d := readDelivery(msg)
	log := w.log.With("run", d.run, "task", d.id, "attempt", d.attempt)
	if d.err != nil {
		log.Error("cannot run task", "subject", msg.Subject(), "err", d.err)
		return w.settle(ctx, d, log, &messages.Result{}, d.err, func() {})
	}
	ctx, span := telemetry.StartTask(ctx, msg.Headers(), msg.Subject(), d.task, d.attempt, w.cfg.Name)
	// The heartbeat goes on until the task is settled: publishing its result may take a while.
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.heartbeat(hctx, msg)
	start := time.Now()
	res, err := w.watched(ctx, d.task, w.attempt)
	if res == nil {
		res = &messages.Result{}
	}
	res.Kind, res.Duration = d.task.Kind, time.Since(start)
	pause := w.settle(ctx, d, log, res, err, stop)
	telemetry.EndTask(span, res, err)
	return pause
}

// watched runs one attempt of t (run) with its progress meter, cancelled once its armed
// meter stands still for Config.StallTimeout.
func (w *Worker) watched(ctx context.Context, t *messages.Task, run func(context.Context, *messages.Task) (*messages.Result, error)) (*messages.Result, error) {
	actx, cancel := context.WithCancelCause(ctx)
	actx, meter := withMeter(actx)
	if w.cfg.StallTimeout > 0 {
		go watchProgress(actx, meter, w.cfg.StallTimeout, cancel)
	}
	res, err := run(actx, t)
	err = stallOf(actx, err)
	cancel(nil)
	return res, err
}

// attempt runs the task's handler, turning a panic into a failed attempt so that one bad task
// cannot take the worker (and, in turn, every worker of a fleet) down with it.
func (w *Worker) attempt(ctx context.Context, t *messages.Task) (res *messages.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("task handler panicked", "run", t.Run, "task", t.ID, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, fmt.Errorf("task %s: panic: %v", t.ID, p)
		}
	}()
	if err := w.checkRun(ctx, t); err != nil {
		return nil, err
	}
	handle := w.handle
	if w.handler != nil {
		handle = w.handler
	}
	if res, err = handle(ctx, t); err != nil {
		return res, err
	}
	return res, w.checkRunAfter(ctx, t)
}

// settle publishes the result Decide asks for and carries out its action. stopHeartbeat is
// called once the result is out, before the message is settled.
func (w *Worker) settle(ctx context.Context, d *delivery, log *slog.Logger, res *messages.Result, err error, stopHeartbeat func()) time.Duration {
	in := Attempt{
		Err: err, Number: d.attempt, MaxDeliver: w.maxDeliver, ShuttingDown: ctx.Err() != nil,
		Unnamed: d.run == "" || d.id == "", Backoff: w.cfg.Backoff,
	}
	dec := Decide(in)
	if dec.Publish {
		res.Version, res.Run, res.Task = messages.Version, d.run, d.id
		res.Attempt, res.Worker = d.attempt, w.cfg.Name
		res.Final, res.Mismatch = dec.Final, dec.Mismatch
		if err != nil {
			res.Error = redact.Text(err.Error()) // a queue message is an output too
		}
		if perr := w.publishResult(ctx, log, res); perr != nil {
			log.Warn("publish result", "final", res.Final, "err", perr)
			in.ResultLost = true
			dec = Decide(in)
		}
	}
	stopHeartbeat()
	w.act(ctx, d.msg, log, dec, err)
	return dec.Pause
}

// act carries out a decision on the message.
func (w *Worker) act(ctx context.Context, msg jetstream.Msg, log *slog.Logger, dec Decision, err error) {
	log = log.With("why", dec.Reason)
	var serr error
	switch dec.Action {
	case Ack:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		serr = msg.DoubleAck(actx)
		cancel()
		log.Debug("task done")
	case Retry:
		log.Warn("task attempt failed; will retry", "err", err, "retry_in", dec.Delay)
		serr = msg.NakWithDelay(dec.Delay)
	case HandBack:
		log.Info("handing task back "+dec.Reason, "err", err, "again_in", dec.Delay)
		if dec.Delay > 0 {
			serr = msg.NakWithDelay(dec.Delay)
		} else {
			serr = msg.Nak()
		}
	case Term:
		log.Error("task failed", "err", err)
		reason := dec.Reason
		if err != nil {
			reason = redact.Text(err.Error())
		}
		serr = msg.TermWithReason(truncate(reason, 200))
	}
	if serr != nil {
		log.Warn("settle task message", "action", dec.Action, "err", serr)
	}
}

// publishResult publishes a result. A final one is retried with back-off: without it the
// coordinator would not learn the task's end. A non-final one is tried once; the next
// attempt publishes another.
func (w *Worker) publishResult(ctx context.Context, log *slog.Logger, res *messages.Result) error {
	waits := w.publishWaits
	if waits == nil {
		waits = defaultPublishWaits
	}
	if !res.Final {
		waits = nil
	}
	err := w.publish(ctx, res)
	for i := 0; err != nil && i < len(waits); i++ {
		log.Warn("publish result; will retry", "err", err, "retry_in", waits[i])
		t := time.NewTimer(waits[i])
		<-t.C
		err = w.publish(ctx, res)
	}
	return err
}

// defaultPublishWaits space the retries of a final result's publish over about fifteen
// seconds: a JetStream leader election or a reconnect is over by then.
var defaultPublishWaits = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

func (w *Worker) publish(ctx context.Context, res *messages.Result) error {
	data, err := messages.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err = w.js.PublishMsg(pctx, &nats.Msg{Subject: messages.ResultSubject(res.Run, res.Task), Data: data},
		jetstream.WithMsgID(fmt.Sprintf("%s/%s/%d/%t", res.Run, res.Task, res.Attempt, res.Final)))
	if err != nil {
		return fmt.Errorf("publish result of task %s: %w", res.Task, err)
	}
	return nil
}

// heartbeat tells the server the task is still being worked on, well inside AckWait.
func (w *Worker) heartbeat(ctx context.Context, msg jetstream.Msg) {
	every := w.ackWait / 3
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := msg.InProgress(); err != nil {
				w.log.Warn("signal progress", "err", err)
			}
		}
	}
}

func (w *Worker) handle(ctx context.Context, t *messages.Task) (*messages.Result, error) {
	switch t.Kind {
	case messages.KindExportModel:
		return w.export(ctx, t)
	case messages.KindCopyPrefix, messages.KindRestorePrefix:
		return w.copy(ctx, t)
	case messages.KindCopyBackup:
		return w.copyBackup(ctx, t)
	default:
		return nil, Permanent(fmt.Errorf("task %s: unknown kind %q", t.ID, t.Kind))
	}
}

// database opens the configured database once per worker.
func (w *Worker) database(ctx context.Context) (*database.DB, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.db != nil {
		return w.db, nil
	}
	if w.cfg.DatabaseURL == "" {
		return nil, Mismatch(errors.New("this worker has no database configured (--database / DATABASE_URL)"))
	}
	db, err := database.Open(ctx, w.cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	w.db = db
	return db, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

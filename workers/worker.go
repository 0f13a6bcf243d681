// Package workers runs tasks from the WNB_TASKS work queue: database exports and file copies.
//
// A worker fetches one task at a time from the shared durable consumer, signals progress while
// it works, writes its outputs to the run's destination under deterministic names, publishes a
// result, and only then acks. settle is the one place that maps a task's error to
// ack / nak-with-delay / term.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/database"
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

	mu sync.Mutex
	db *database.DB

	slotsOnce sync.Once
	slots     chan []byte   // see copySlots
	commits   chan struct{} // see copySlots

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
	go func() {
		select {
		case <-ctx.Done():
		case <-taskCtx.Done():
			return
		}
		w.draining.Store(true)
		if n := w.inFlight.Load(); n > 0 {
			w.log.Info("stopping: finishing tasks in flight", "tasks", n, "grace", w.cfg.ShutdownGrace)
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
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := w.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				w.log.Warn("fetch task", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		w.inFlight.Add(1)
		w.process(taskCtx, msg)
		w.inFlight.Add(-1)
	}
}

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

// process runs one task with progress heartbeats and settles it.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error("task without metadata", "subject", msg.Subject(), "err", err)
		msg.Term()
		return
	}
	attempt := int(md.NumDelivered)
	task, err := messages.DecodeTask(msg.Data())
	if err != nil {
		w.log.Error("undecodable task", "subject", msg.Subject(), "err", err)
		msg.TermWithReason(err.Error())
		return
	}
	log := w.log.With("run", task.Run, "task", task.ID, "attempt", attempt)
	ctx, span := telemetry.StartTask(ctx, msg.Headers(), msg.Subject(), task, attempt, w.cfg.Name)

	hctx, stop := context.WithCancel(ctx)
	go w.heartbeat(hctx, msg)
	start := time.Now()
	res, err := w.handle(ctx, task)
	stop()
	if res == nil {
		res = &messages.Result{}
	}
	res.Version, res.Run, res.Task, res.Kind = messages.Version, task.Run, task.ID, task.Kind
	res.Attempt, res.Worker, res.Duration = attempt, w.cfg.Name, time.Since(start)
	w.settle(ctx, msg, log, res, err, attempt)
	telemetry.EndTask(span, res, err)
}

// settle is the one place that maps a task's outcome to ack, nak-with-delay or term.
func (w *Worker) settle(ctx context.Context, msg jetstream.Msg, log *slog.Logger, res *messages.Result, err error, attempt int) {
	switch {
	case err == nil:
		res.Final = true
		if perr := w.publish(ctx, res); perr != nil {
			// Without a result the coordinator would wait forever: let the task run again.
			log.Warn("publish result; handing task back", "err", perr)
			msg.NakWithDelay(w.cfg.Backoff(attempt))
			return
		}
		if aerr := msg.DoubleAck(ctx); aerr != nil {
			log.Warn("ack task", "err", aerr)
		}
		log.Debug("task done", "rows", res.Rows, "files", res.Files, "bytes", res.Bytes, "took", res.Duration)
	case ctx.Err() != nil:
		// Shutting down: hand the task back for another worker, without a failure result.
		log.Info("handing task back on shutdown")
		msg.Nak()
	default:
		res.Error = err.Error()
		final := IsPermanent(err) || (w.maxDeliver > 0 && attempt >= w.maxDeliver)
		res.Final = final
		if perr := w.publish(ctx, res); perr != nil {
			log.Warn("publish failure result", "err", perr)
		}
		if final {
			log.Error("task failed", "err", err)
			msg.TermWithReason(truncate(err.Error(), 200))
			return
		}
		delay := w.cfg.Backoff(attempt)
		log.Warn("task attempt failed; will retry", "err", err, "retry_in", delay)
		msg.NakWithDelay(delay)
	}
}

func (w *Worker) publish(ctx context.Context, res *messages.Result) error {
	data, err := messages.Marshal(res)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err = w.js.PublishMsg(pctx, &nats.Msg{Subject: messages.ResultSubject(res.Run, res.Task), Data: data},
		jetstream.WithMsgID(fmt.Sprintf("%s/%s/%d/%t", res.Run, res.Task, res.Attempt, res.Final)))
	return err
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
	if err := w.checkRun(ctx, t); err != nil {
		return nil, err
	}
	switch t.Kind {
	case messages.KindExportModel:
		return w.export(ctx, t)
	case messages.KindCopyPrefix, messages.KindRestorePrefix:
		return w.copy(ctx, t)
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
		return nil, Permanent(errors.New("this worker has no database configured (--database / DATABASE_URL)"))
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

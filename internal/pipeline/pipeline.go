// Package pipeline wires one command's run: it connects to NATS or starts the embedded server,
// declares the streams, starts in-process workers, and hands the coordinator the connection.
//
// With no NATS URL everything runs in this process, through the same queue, the same
// consumer and the same worker code as a cluster with worker processes.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/workers"
)

// Config says where the queue is and how many in-process workers to run.
type Config struct {
	// NATSURL is the cluster to use; empty starts an embedded server.
	NATSURL string
	// NATSOptions are extra connection options (credentials, TLS).
	NATSOptions []nats.Option
	// Workers is how many in-process workers run tasks (0: leave all work to worker processes).
	Workers int
	// DatabaseURL and StorageURL are what in-process workers read.
	DatabaseURL string
	StorageURL  string
	// Queue shapes the streams and the consumer.
	Queue queue.Config
	// Backoff overrides the workers' redelivery delay (tests use a short one).
	Backoff func(attempt int) time.Duration
	Logger  *slog.Logger
	// Identities are the age keys in-process workers decrypt an encrypted backup's files
	// with in a restore (the command's --identity, or a passphrase backup's opened key).
	Identities *encryption.Identities
	// StallTimeout is the in-process workers' workers.Config.StallTimeout (0: never).
	StallTimeout time.Duration
	// NoQueue starts neither NATS nor workers: the coordinator runs without a queue, which
	// serves a run that has no tasks (a database-only restore). Starting an embedded server
	// and declaring its streams is a fixed cost such a run has no use for.
	NoQueue bool
}

// workersStopWait bounds how long Close waits for the in-process workers to stop (a healthy
// queue takes milliseconds), silentWorkersStopWait once the queue has left a call of the
// coordinator's unanswered.
const (
	workersStopWait       = 15 * time.Second
	silentWorkersStopWait = time.Second
)

// Session is a connected queue with its in-process workers running.
type Session struct {
	Coordinator *coordinator.Coordinator
	JetStream   jetstream.JetStream

	log      *slog.Logger
	nc       *nats.Conn
	embedded *queue.Embedded
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// Start connects (or starts the embedded server), declares the streams and starts the workers.
func Start(ctx context.Context, cfg Config) (*Session, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// Temporary files of this program's killed processes (a SIGKILL runs no clean-up).
	if removed := scratch.SweepAll(""); len(removed) > 0 {
		log.Info("removed temporary files of processes that are gone", "paths", removed)
	}
	s := &Session{log: log}
	if cfg.NoQueue {
		s.Coordinator = coordinator.New(nil, log)
		return s, nil
	}
	nc, err := s.connect(cfg)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s.JetStream = js
	cons, err := queue.Ensure(ctx, js, cfg.Queue)
	if err != nil {
		s.Close()
		return nil, err
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	if cfg.Workers > 0 {
		w, err := workers.New(ctx, js, cons, workers.Config{
			Name:         "embedded",
			Concurrency:  cfg.Workers,
			PrivateQueue: s.embedded != nil,
			DatabaseURL:  cfg.DatabaseURL,
			StorageURL:   cfg.StorageURL,
			Backoff:      cfg.Backoff,
			Logger:       log,
			Identities:   cfg.Identities,
			StallTimeout: cfg.StallTimeout,
		})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.Run(wctx)
		}()
	}
	s.Coordinator = coordinator.New(js, log)
	return s, nil
}

// connect dials the cluster, or starts the embedded server and connects to it in-process
// (no network listener: nobody else on the host can reach its queue). The cluster's
// credentials and TLS settings mean nothing to the embedded server and are not passed to it.
func (s *Session) connect(cfg Config) (*nats.Conn, error) {
	if cfg.NATSURL != "" {
		return queue.Connect(cfg.NATSURL, "webnovel-backup", cfg.NATSOptions...)
	}
	emb, err := queue.StartEmbedded("")
	if err != nil {
		return nil, err
	}
	s.embedded = emb
	return emb.Connect("webnovel-backup")
}

// Close stops the workers (handing back what they hold), then the connection and any
// embedded server. It waits for the workers only as long as the queue answers: a worker
// ending a task tells the queue (its result, the message handed back), and on a queue that
// stopped answering it would hold the command's exit for its full limits. Its tasks go back to
// the queue when their AckWait passes.
func (s *Session) Close() {
	if s.stop != nil {
		s.stop()
	}
	stopped := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(stopped)
	}()
	wait := workersStopWait
	if s.Coordinator != nil && s.Coordinator.QueueSilent() {
		wait = silentWorkersStopWait
	}
	select {
	case <-stopped:
	case <-time.After(wait):
		s.log.Warn("in-process workers did not stop in time; leaving their tasks to the queue's AckWait", "waited", wait)
	}
	if s.nc != nil {
		s.nc.Drain()
		s.nc.Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
	}
}

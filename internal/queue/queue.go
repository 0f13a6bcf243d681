// Package queue connects to NATS JetStream, or starts an embedded server, and declares the
// streams and the shared consumer the pipeline runs on.
package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/messages"
)

// Config shapes the streams and the workers' consumer.
type Config struct {
	// Replicas of both streams (3 on a three-node cluster). 0 means 1.
	Replicas int
	// AckWait is how long a worker may hold a task without acking or signalling progress
	// before the server hands it to another worker. Workers send in-progress well before.
	AckWait time.Duration
	// MaxDeliver bounds the attempts of one task.
	MaxDeliver int
	// ResultsMaxAge is how long results are kept (so a restarted coordinator can recount them).
	ResultsMaxAge time.Duration
}

// DefaultConfig is what production uses.
func DefaultConfig() Config {
	return Config{Replicas: 1, AckWait: 30 * time.Second, MaxDeliver: 5, ResultsMaxAge: 7 * 24 * time.Hour}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Replicas <= 0 {
		c.Replicas = d.Replicas
	}
	if c.AckWait <= 0 {
		c.AckWait = d.AckWait
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = d.MaxDeliver
	}
	if c.ResultsMaxAge <= 0 {
		c.ResultsMaxAge = d.ResultsMaxAge
	}
	return c
}

// Ensure declares StreamTasks (a work queue), StreamResults (latest result per task), the
// RunsBucket registry and the workers' durable pull consumer, updating them when they exist.
// It returns the consumer.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Consumer, error) {
	cfg = cfg.withDefaults()
	if err := declare(ctx, "stream "+messages.StreamTasks, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        messages.StreamTasks,
			Description: "webnovel-backup tasks",
			Subjects:    []string{messages.TasksSubjects},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  time.Hour,
		})
		return err
	}); err != nil {
		return nil, err
	}
	if err := declare(ctx, "stream "+messages.StreamResults, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              messages.StreamResults,
			Description:       "webnovel-backup task results",
			Subjects:          []string{messages.ResultsSubjects},
			Retention:         jetstream.LimitsPolicy,
			MaxMsgsPerSubject: 1,
			MaxAge:            cfg.ResultsMaxAge,
			Storage:           jetstream.FileStorage,
			Replicas:          cfg.Replicas,
		})
		return err
	}); err != nil {
		return nil, err
	}
	if err := declare(ctx, "key-value bucket "+messages.RunsBucket, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      messages.RunsBucket,
			Description: "webnovel-backup runs",
			History:     1,
			TTL:         cfg.ResultsMaxAge * 8,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		return err
	}); err != nil {
		return nil, err
	}
	var cons jetstream.Consumer
	if err := declare(ctx, "consumer "+messages.ConsumerWorkers, func(ctx context.Context) error {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, messages.StreamTasks, jetstream.ConsumerConfig{
			Durable:       messages.ConsumerWorkers,
			Description:   "webnovel-backup workers",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    cfg.MaxDeliver,
			MaxAckPending: 10000,
			Replicas:      cfg.Replicas,
		})
		return err
	}); err != nil {
		return nil, err
	}
	return cons, nil
}

// Declaration attempts: each gets declareTimeout, then a short random pause.
const (
	declareAttempts = 6
	declareTimeout  = 5 * time.Second
)

// declare runs an idempotent declaration, again when the server does not answer in time. On a
// cluster, concurrent creations of one replicated stream or bucket (a coordinator and workers
// starting together) can all go unanswered, while a second attempt finds it and succeeds.
func declare(ctx context.Context, what string, f func(context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, declareTimeout)
		err = f(actx)
		cancel()
		if err == nil {
			return nil
		}
		unanswered := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
		if !unanswered || ctx.Err() != nil || attempt == declareAttempts {
			return fmt.Errorf("declare %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("declare %s: %w", what, err)
		case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
		}
	}
}

// Embedded is an in-process NATS server with JetStream, for running with nothing else set up.
type Embedded struct {
	srv *server.Server
	dir string
	own bool
}

// StartEmbedded starts an in-process server that stores JetStream data in dir (a new temporary
// folder when dir is ""), listening on a free loopback port so worker processes could join.
func StartEmbedded(dir string) (*Embedded, error) {
	own := false
	if dir == "" {
		d, err := os.MkdirTemp("", "wnb-nats-")
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: %w", err)
		}
		dir, own = d, true
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "wnb-embedded",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("start embedded nats: not ready after 15s")
	}
	return &Embedded{srv: srv, dir: dir, own: own}, nil
}

// URL is the client URL of the embedded server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and removes its temporary store.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	if e.own {
		os.RemoveAll(e.dir)
	}
}

// Connect dials NATS with reconnects that outlast a cluster node's restart.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", Redact(url), err)
	}
	return nc, nil
}

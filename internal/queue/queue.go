// Package queue connects to NATS JetStream, or starts an embedded server, and declares the
// streams and the shared consumer the pipeline runs on.
package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/internal/scratch"
)

// Config shapes the streams and the workers' consumer when Ensure creates them. A zero field
// means "not asked": the default is used for a creation, and an existing stream or consumer is
// never compared against it.
type Config struct {
	// Replicas of the streams, the bucket and the consumer (3 on a three-node cluster).
	Replicas int
	// AckWait is how long a worker may hold a task without acking or signalling progress
	// before the server hands it to another worker. Workers send in-progress well before.
	AckWait time.Duration
	// MaxDeliver bounds the attempts of one task.
	MaxDeliver int
	// ResultsMaxAge is how long results are kept (so a restarted coordinator can recount them).
	ResultsMaxAge time.Duration
	// Logger receives the warnings about existing settings that differ from the asked ones
	// (default: slog.Default()).
	Logger *slog.Logger
}

// DefaultConfig is what production uses.
func DefaultConfig() Config {
	return Config{Replicas: 1, AckWait: 30 * time.Second, MaxDeliver: 5, ResultsMaxAge: 7 * 24 * time.Hour}
}

// withDefaults fills the fields that were not asked for.
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
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
		d, err := scratch.MkdirTemp("", "wnb-nats-")
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

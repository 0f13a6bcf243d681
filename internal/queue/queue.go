// Package queue connects to NATS JetStream, or starts an embedded server, and declares the
// streams and the shared consumer the pipeline runs on.
package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/internal/redact"
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
// By default it has no network listener at all: this process reaches it through an in-process
// connection (Connect), so no other local user can read or publish tasks.
type Embedded struct {
	srv *server.Server
	dir string
	own bool
	url string
}

// EmbeddedOption changes how StartEmbedded sets up the server.
type EmbeddedOption func(*embeddedSetup)

type embeddedSetup struct {
	listen bool
}

// WithListener makes the embedded server listen on a free loopback port, protected by a
// random user and password that only URL carries. Tests use it to let other processes (or
// other connections by URL) join; production embedded mode never listens.
func WithListener() EmbeddedOption {
	return func(s *embeddedSetup) { s.listen = true }
}

// StartEmbedded starts an in-process server that stores JetStream data in dir (a new temporary
// folder when dir is ""). Without WithListener it opens no network port.
func StartEmbedded(dir string, options ...EmbeddedOption) (*Embedded, error) {
	var setup embeddedSetup
	for _, o := range options {
		o(&setup)
	}
	own := false
	if dir == "" {
		d, err := scratch.MkdirTemp("", "wnb-nats-")
		if err != nil {
			return nil, fmt.Errorf("start embedded nats: %w", err)
		}
		dir, own = d, true
	}
	opts, user, pass, err := embeddedOptions(dir, setup)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("start embedded nats: not ready after 15s")
	}
	e := &Embedded{srv: srv, dir: dir, own: own}
	if setup.listen {
		u, err := neturl.Parse(srv.ClientURL())
		if err != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("start embedded nats: client URL: %w", err)
		}
		u.User = neturl.UserPassword(user, pass)
		e.url = u.String()
	}
	return e, nil
}

// embeddedOptions are the server's settings: no listener, or a loopback one with random
// credentials.
func embeddedOptions(dir string, setup embeddedSetup) (*server.Options, string, string, error) {
	opts := &server.Options{
		ServerName: "wnb-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		DontListen: !setup.listen,
	}
	if !setup.listen {
		return opts, "", "", nil
	}
	user, err := randomSecret()
	if err != nil {
		return nil, "", "", err
	}
	pass, err := randomSecret()
	if err != nil {
		return nil, "", "", err
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.Username, opts.Password = user, pass
	return opts, user, pass, nil
}

// randomSecret is 128 random bits, hex-encoded.
func randomSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("start embedded nats: random credentials: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// URL is the client URL of an embedded server started WithListener, credentials included;
// "" when it has no listener (use Connect).
func (e *Embedded) URL() string { return e.url }

// Listening reports whether the server has a network listener.
func (e *Embedded) Listening() bool { return e.srv.Addr() != nil }

// Connect opens an in-process connection to the embedded server: no network involved.
func (e *Embedded) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{
		nats.Name(name),
		nats.InProcessServer(e.srv),
		nats.Timeout(5 * time.Second),
	}
	nc, err := nats.Connect("", append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and removes its temporary store. JetStream is stopped first, on
// its own: a server shutting down with JetStream on tells the consumers' waiting pull
// requests that it goes away and then sleeps 50ms for the news to get out, but an embedded
// server's workers are stopped before it (Session.Close), and any other client loses its
// connection, and so its pulls, with the server anyway.
func (e *Embedded) Shutdown() {
	e.srv.ShutdownJetStream() //nolint:errcheck // it fails only on a cluster; this server is not one
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
	for _, one := range strings.Split(url, ",") {
		if !strings.Contains(one, "://") {
			continue // host:port, which nats.go takes as it is
		}
		// nats.go parses each server itself, and would look a password's head up as a host
		// when the password holds "/" (nats://user:12/tail@host).
		if _, err := redact.ParseURL(strings.TrimSpace(one)); err != nil {
			return nil, fmt.Errorf("connect to nats %s: %w", redact.URL(url), err)
		}
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redact.URL(url), withoutURL(err))
	}
	return nc, nil
}

// withoutURL drops the location from a net/url error: it is printed raw, password included;
// the caller names the location redacted. A parse error's own words quote no piece of it.
func withoutURL(err error) error {
	if perr := redact.ParseError(err); perr != err {
		return perr
	}
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s URL: %w", ue.Op, ue.Err)
	}
	return err
}

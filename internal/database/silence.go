package database

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A PostgreSQL server that stops answering (frozen, overloaded past its limits, or behind a
// proxy or firewall that stopped forwarding and left the connection open) would hold every
// statement waiting on it for ever: a restore's checks, a backup's plan, a commit. So every
// connection fails a read or a write that has waited Options.Silence with nothing moving either
// way, unless the server shows, on a connection of its own, that it is still working on that
// session's statement (a long index build or commit check moves nothing and is not a stall).

// ErrDatabaseSilent is a statement given up because the database sent and took nothing for
// the silence limit and was not working on it.
var ErrDatabaseSilent = errors.New("the database stopped answering")

// ErrCommitUnknown is a commit whose answer was lost (the connection failed or fell silent
// after the commit was sent): the transaction may or may not have been committed.
var ErrCommitUnknown = errors.New("the commit was sent but its answer was lost: the transaction may have been committed or rolled back")

// commitOutcome words a failed commit: a server's refusal rolled it back; a lost answer may not
// have, and says so.
func commitOutcome(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) || pgconn.SafeToRetry(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
}

// silenceBehind names the silence behind err when one of db's connections gave up on the
// database: the statements that shared the connection fail only with "conn closed".
func (db *DB) silenceBehind(err error) error {
	if err == nil || !db.silent.Load() || errors.Is(err, ErrDatabaseSilent) {
		return err
	}
	return fmt.Errorf("%w (after %w)", err, ErrDatabaseSilent)
}

// DefaultSilence is Options.Silence when it is 0: the default stall timeout of a run.
const DefaultSilence = 10 * time.Minute

// silenceError is ErrDatabaseSilent with the limit that passed.
type silenceError struct{ limit time.Duration }

func (e *silenceError) Error() string {
	return fmt.Sprintf("%s: nothing came or went on its connection for %s (--stall-timeout), and it was not working on this session's statement", ErrDatabaseSilent, e.limit)
}

func (e *silenceError) Unwrap() error { return ErrDatabaseSilent }

// SilenceFor is the Options.Silence of a run whose stall timeout is stall (0: waits for ever).
func SilenceFor(stall time.Duration) time.Duration {
	if stall <= 0 {
		return -1
	}
	return stall
}

// silence returns the limit of o (0: none).
func (o Options) silence() time.Duration {
	switch {
	case o.Silence < 0:
		return 0
	case o.Silence == 0:
		return DefaultSilence
	}
	return o.Silence
}

// silentConn is a connection whose reads and writes fail after limit with nothing moving either
// way, unless working says the server is busy with the session's statement.
type silentConn struct {
	net.Conn
	limit   time.Duration
	working func(pid uint32) bool // nil: every silence fails
	fell    func()                // called when a wait fails for silence
	pid     atomic.Uint32         // the session's backend, once known
	last    atomic.Int64          // unix nanoseconds of the last byte moved either way
	dead    atomic.Bool           // a wait failed for silence: every later one fails at once

	mu    sync.Mutex
	set   time.Time // the deadline the driver set (zero: none)
	armed time.Time // the deadline of the wait in progress
}

func newSilentConn(c net.Conn, limit time.Duration, working func(uint32) bool, fell func()) *silentConn {
	s := &silentConn{Conn: c, limit: limit, working: working, fell: fell}
	s.last.Store(time.Now().UnixNano())
	return s
}

func (c *silentConn) Read(b []byte) (int, error) {
	return c.wait(b, c.Conn.Read, c.Conn.SetReadDeadline)
}

func (c *silentConn) Write(b []byte) (int, error) {
	return c.wait(b, c.Conn.Write, c.Conn.SetWriteDeadline)
}

// wait runs op (a read or a write: a write goes on until all of b is written) under the
// silence limit, and decides what a silence means. Once a wait failed, the connection is lost
// to its user: the driver's goodbye on it (a terminate, a drain) fails at once instead of
// waiting out the limit again.
func (c *silentConn) wait(b []byte, op func([]byte) (int, error), deadline func(time.Time) error) (int, error) {
	if c.dead.Load() {
		return 0, &silenceError{limit: c.limit}
	}
	done := 0
	for {
		c.arm(deadline)
		n, err := op(b[done:])
		done += n
		if n > 0 {
			c.last.Store(time.Now().UnixNano())
		}
		if err == nil || !c.silenced(err) {
			return done, err
		}
		if time.Since(time.Unix(0, c.last.Load())) < c.limit {
			continue // the other way moved: a long COPY's reader, say
		}
		if c.working != nil && c.working(c.pid.Load()) {
			c.last.Store(time.Now().UnixNano())
			continue
		}
		c.dead.Store(true)
		if c.fell != nil {
			c.fell()
		}
		return done, &silenceError{limit: c.limit}
	}
}

// arm sets the deadline of the next wait: the silence limit, or the driver's deadline if
// sooner (a cancelled context).
func (c *silentConn) arm(deadline func(time.Time) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = time.Now().Add(c.limit)
	d := c.armed
	if !c.set.IsZero() && c.set.Before(d) {
		d = c.set
	}
	deadline(d) //nolint:errcheck // a closed connection fails the wait itself
}

// silenced reports whether err is the silence limit passing (not the driver's deadline).
func (c *silentConn) silenced(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.IsZero() || time.Now().Before(c.set)
}

// SetDeadline records the driver's deadline (pgx sets one to interrupt a cancelled statement)
// and applies the sooner of it and the wait in progress's.
func (c *silentConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = t
	d := c.armed
	if !t.IsZero() && t.Before(d) {
		d = t
	}
	return c.Conn.SetDeadline(d)
}

func (c *silentConn) SetReadDeadline(t time.Time) error  { return c.SetDeadline(t) }
func (c *silentConn) SetWriteDeadline(t time.Time) error { return c.SetDeadline(t) }

// guardSilence makes cfg's connections silentConns with limit (0: leaves cfg alone), which ask
// the server over a connection of their own whether it is working when they fall silent, and
// call fell when one gives up.
func guardSilence(cfg *pgx.ConnConfig, limit time.Duration, fell func()) {
	if limit <= 0 {
		return
	}
	probe := cfg.Copy() // before the hooks: the probe's own connection is not guarded
	dial := cfg.DialFunc
	working := func(pid uint32) bool { return sessionWorking(probe, pid, limit) }
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newSilentConn(c, limit, working, fell), nil
	}
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, pc *pgconn.PgConn) error {
		if s := unwrapSilent(pc.Conn()); s != nil {
			s.pid.Store(pc.PID())
		}
		if after != nil {
			return after(ctx, pc)
		}
		return nil
	}
}

// unwrapSilent finds the silentConn under c (a TLS connection wraps it).
func unwrapSilent(c net.Conn) *silentConn {
	for c != nil {
		if s, ok := c.(*silentConn); ok {
			return s
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// minProbeWait is the least time the probe gets to connect and ask: a loaded machine may take
// longer than a short silence limit to open a connection.
const minProbeWait = 5 * time.Second

// sessionWorking reports whether the server answers, within limit (minProbeWait at least), that backend pid is running
// a statement and not waiting for its client (a server waiting to read from or write to a
// connection that moves nothing has lost it), or does not know the pid.
func sessionWorking(cfg *pgx.ConnConfig, pid uint32, limit time.Duration) bool {
	if pid == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(limit, minProbeWait))
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var state, wait string
	err = conn.QueryRow(ctx, `SELECT coalesce(state, ''), coalesce(wait_event_type, '')
		FROM pg_stat_activity WHERE pid = $1`, int32(pid)).Scan(&state, &wait)
	if errors.Is(err, pgx.ErrNoRows) {
		// The server answers but knows no session by that pid: a pooler (PgBouncer) gives its
		// clients pids of its own. It is not frozen, and a long statement is not a stall.
		return true
	}
	return err == nil && state == "active" && wait != "Client"
}

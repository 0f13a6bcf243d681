package database

import (
	"context"
	"crypto/tls"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// plainAfterRefusal remembers that a server answered sslmode=prefer (the default) in the
// clear. pgx tries TLS first and, when the server refuses it, opens a second TCP connection
// without TLS: two connects and two server processes for each of a run's dozen
// connections. libpq goes on over the same socket instead. Once the server has refused TLS,
// later connections of this process go straight to the plain attempt that would have
// followed, which is what prefer allows; require and verify-* have no plain fallback and are
// never changed.
type plainAfterRefusal struct {
	applies bool // one host, TLS first with a plain fallback: there is an attempt to skip
	seen    atomic.Bool
}

// newPlainAfterRefusal applies only to one host with sslmode=prefer: a TLS first
// attempt and a plain fallback to the same address.
func newPlainAfterRefusal(cc *pgx.ConnConfig) *plainAfterRefusal {
	m := &plainAfterRefusal{}
	if cc.TLSConfig == nil || len(cc.Fallbacks) != 1 {
		return m
	}
	f := cc.Fallbacks[0]
	if f.TLSConfig == nil && f.Host == cc.Host && f.Port == cc.Port {
		m.applies = true
	}
	return m
}

// trim makes cc skip the TLS attempt once the server is known to refuse it.
func (m *plainAfterRefusal) trim(cc *pgx.ConnConfig) {
	if m.applies && m.seen.Load() {
		cc.TLSConfig = nil
		cc.Fallbacks = nil
	}
}

// observe records whether conn ended up in the clear.
func (m *plainAfterRefusal) observe(conn *pgconn.PgConn) {
	if !m.applies {
		return
	}
	if _, isTLS := conn.Conn().(*tls.Conn); !isTLS {
		m.seen.Store(true)
	}
}

// install hooks the memo into a pool's connects.
func (m *plainAfterRefusal) install(cfg *pgxpool.Config) {
	cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		m.trim(cc)
		return nil
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		m.observe(c.PgConn())
		return nil
	}
}

// connect opens one connection outside the pool with the same memo.
func (m *plainAfterRefusal) connect(ctx context.Context, base *pgx.ConnConfig) (*pgx.Conn, error) {
	cc := base.Copy()
	m.trim(cc)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err == nil {
		m.observe(conn.PgConn())
	}
	return conn, err
}

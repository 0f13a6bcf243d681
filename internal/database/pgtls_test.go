package database

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/proctest"
)

func TestPlainAfterRefusalApplies(t *testing.T) {
	for _, tc := range []struct {
		dsn   string
		skips bool
	}{
		{"postgres://u@127.0.0.1:5432/db", true}, // sslmode defaults to prefer
		{"postgres://u@127.0.0.1:5432/db?sslmode=prefer", true},
		{"postgres://u@127.0.0.1:5432/db?sslmode=allow", false}, // plain first already
		{"postgres://u@127.0.0.1:5432/db?sslmode=disable", false},
		{"postgres://u@127.0.0.1:5432/db?sslmode=require", false},
		{"postgres://u@127.0.0.1:5432/db?sslmode=verify-full", false},
		{"postgres://u@127.0.0.1:5432,127.0.0.2:5432/db?sslmode=prefer", false},
	} {
		cc, err := pgx.ParseConfig(tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		m := newPlainAfterRefusal(cc)
		if m.applies != tc.skips {
			t.Errorf("%s: skips TLS after a refusal = %v, want %v", tc.dsn, m.applies, tc.skips)
		}
		// Before any connection it never changes the config.
		tlsBefore := cc.TLSConfig
		m.trim(cc)
		if cc.TLSConfig != tlsBefore {
			t.Errorf("%s: trimmed before any refusal", tc.dsn)
		}
	}
}

// TestPlainAfterRefusalConnectsOnce counts the TCP connections a pool makes to a server
// without TLS under the default sslmode: only the first pays for the refused TLS attempt.
func TestPlainAfterRefusalConnectsOnce(t *testing.T) {
	proxy, u := proctest.ProxyURL(t, pgtest.URL(t))
	q := u.Query()
	q.Del("sslmode") // pgx's default: prefer
	u.RawQuery = q.Encode()
	db := openT(t, u.String())

	ctx := context.Background()
	conns := make([]*pgxpool.Conn, 4)
	for i := range conns {
		c, err := db.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
	snap, err := db.beginSnapshotPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close()
	opened := int64(db.pool.Stat().TotalConns()) + 1 // the pool's and the snapshot's
	if got := proxy.Accepted(); got != opened+1 {
		t.Errorf("%d TCP connections for %d server connections, want %d: only the first should try TLS", got, opened, opened+1)
	}
}

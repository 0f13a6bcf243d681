package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/filelock"
)

// ErrRestoreRunning is a database another restore is writing to.
var ErrRestoreRunning = errors.New("another restore holds this database's restore lock")

// restoreLockKey is the PostgreSQL advisory lock every restore of a database holds (advisory
// locks are per database): the bytes of "wnb-rest".
const restoreLockKey = 0x776e622d72657374

// lockWait bounds taking or checking the restore lock (a connection and a statement that
// answers at once): a server that stopped answering fails it instead of holding the run.
const lockWait = 30 * time.Second

// LockRestore takes the restore lock of the database at url without waiting: a PostgreSQL
// session advisory lock, or a lock on the SQLite file. Two restores into one database would
// each report success over the other's rows; the second is refused, before it changes
// anything, with ErrRestoreRunning. release lets go of it (ending the process does too).
func LockRestore(ctx context.Context, url string) (release func(), err error) {
	src, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if src.Engine == SQLite {
		release, err := filelock.Try(src.DSN)
		switch {
		case errors.Is(err, filelock.ErrLocked):
			return nil, fmt.Errorf("%s: %w", src.Redacted, ErrRestoreRunning)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			// A file system without flock (some network ones): the restore goes on unguarded.
			slog.Warn("the restore takes no lock on the SQLite file", "err", err)
			return func() {}, nil
		}
		return release, err
	}
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	conn, err := lockSession(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("lock %s for the restore: %w", src.Redacted, err)
	}
	var taken bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(restoreLockKey)).Scan(&taken); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("lock %s for the restore: %w", src.Redacted, err)
	}
	if !taken {
		holder := restoreLockHolder(ctx, conn)
		conn.Close(context.Background())
		return nil, fmt.Errorf("%s: %w (%s)", src.Redacted, ErrRestoreRunning, holder)
	}
	return func() {
		// Unlocked by name: through a pooler (PgBouncer) the server session outlives this
		// connection, and closing it would not let go.
		ctx, cancel := context.WithTimeout(context.Background(), poolCloseWait)
		defer cancel()
		conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", int64(restoreLockKey)) //nolint:errcheck // closing lets go too
		conn.Close(ctx)
	}, nil
}

// lockSession opens the connection a restore lock is taken on, named in pg_stat_activity as
// this tool's unless the URL names it.
func lockSession(ctx context.Context, src Source) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(src.DSN)
	if err != nil {
		return nil, err
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = applicationName
	}
	return pgx.ConnectConfig(ctx, cfg)
}

// restoreLockHolder names the session that holds the restore lock, for the operator to judge
// (a session a crashed restore left behind a pooler can be ended with pg_terminate_backend).
func restoreLockHolder(ctx context.Context, conn interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) string {
	var pid int32
	var app, client string
	var since time.Time
	err := conn.QueryRow(ctx, `SELECT l.pid, coalesce(a.application_name, ''),
			coalesce(host(a.client_addr), 'local'), coalesce(a.backend_start, now())
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
		AND l.granted LIMIT 1`,
		uint32(restoreLockKey>>32), uint32(restoreLockKey&0xffffffff)).Scan(&pid, &app, &client, &since)
	if err != nil {
		return "its holder is not visible to this user"
	}
	return fmt.Sprintf("held by session pid %d, %q from %s, connected since %s", pid, app, client, since.UTC().Format(time.RFC3339))
}

// CheckNoRestore returns ErrRestoreRunning when a restore holds db's restore lock (a backup
// taken then would hold a half-restored database); it holds nothing itself, and asks over db's
// own connections. A SQLite file without flock support is not checked.
func (db *DB) CheckNoRestore(ctx context.Context) error {
	if db.pool == nil {
		release, err := filelock.TryShared(db.src.DSN)
		if errors.Is(err, filelock.ErrLocked) {
			return fmt.Errorf("%s: %w", db.src.Redacted, ErrRestoreRunning)
		}
		if err == nil {
			release()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	// A transaction's lock, let go at its end: nothing is held after the check, even through a
	// pooler.
	var free bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock_shared($1)", int64(restoreLockKey)).Scan(&free)
	})
	if err != nil {
		return fmt.Errorf("check %s for a restore: %w", db.src.Redacted, err)
	}
	if !free {
		return fmt.Errorf("%s: %w (%s)", db.src.Redacted, ErrRestoreRunning, restoreLockHolder(ctx, db.pool))
	}
	return nil
}

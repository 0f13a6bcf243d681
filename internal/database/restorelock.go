package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/filelock"
)

// ErrRestoreRunning is a database another restore is writing to.
var ErrRestoreRunning = errors.New("another restore holds this database's restore lock")

// restoreLockKey is the PostgreSQL advisory lock every restore of a database holds (advisory
// locks are per database): the bytes of "wnb-rest".
const restoreLockKey = 0x776e622d72657374

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
	conn, err := pgx.Connect(ctx, src.DSN)
	if err != nil {
		return nil, fmt.Errorf("lock %s for the restore: %w", src.Redacted, err)
	}
	var taken bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(restoreLockKey)).Scan(&taken); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("lock %s for the restore: %w", src.Redacted, err)
	}
	if !taken {
		conn.Close(context.Background())
		return nil, fmt.Errorf("%s: %w", src.Redacted, ErrRestoreRunning)
	}
	// Closing the session lets go of its advisory lock.
	return func() { conn.Close(context.Background()) }, nil
}

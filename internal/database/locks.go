package database

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// DefaultLockTimeout is how long a statement waits for a lock another session holds before it
// fails, when Options.LockTimeout is 0.
const DefaultLockTimeout = 30 * time.Second

// Options shape how a database is opened.
type Options struct {
	// LockTimeout bounds every wait for a lock another session or process holds: PostgreSQL's
	// lock_timeout on every connection, SQLite's busy_timeout. 0 means DefaultLockTimeout.
	// Without it a restore would wait without a word behind an open transaction, and the
	// application's own queries on those tables would queue behind the restore.
	LockTimeout time.Duration
	// Silence fails a statement whose connection moved nothing either way for this long while
	// the server was not working on it (see ErrDatabaseSilent). 0 means DefaultSilence; a
	// negative value waits for ever.
	Silence time.Duration
}

func (o Options) lockTimeout() time.Duration {
	if o.LockTimeout <= 0 {
		return DefaultLockTimeout
	}
	return o.LockTimeout
}

// LockHolder is another session holding a lock on a table, as pg_locks and pg_stat_activity
// show it.
type LockHolder struct {
	Table       string
	Mode        string // pg_locks.mode: AccessShareLock ... AccessExclusiveLock
	PID         int32
	Application string
	State       string    // pg_stat_activity.state: "idle in transaction", "active", ...
	Since       time.Time // the holder's transaction start
}

func (h LockHolder) String() string {
	app := h.Application
	if app == "" {
		app = "(none)"
	}
	since := "unknown"
	if !h.Since.IsZero() {
		since = h.Since.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("table %s is held (%s) by session pid %d, application %q, state %q, in a transaction since %s",
		h.Table, h.Mode, h.PID, app, h.State, since)
}

// LockError is a wait for a lock that outlasted the lock timeout. Nothing was changed: the
// operation can be retried once the holder is done.
type LockError struct {
	Doing   string        // what waited: "load", "plan books.chapter", ...
	Target  string        // the SQLite file, or "" for PostgreSQL
	Timeout time.Duration // the lock timeout that ran out
	Holders []LockHolder  // PostgreSQL: the sessions holding locks on the tables involved
	Err     error
}

func (e *LockError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: waited %s (--lock-timeout) for a lock another ", e.Doing, e.Timeout)
	switch {
	case e.Target != "":
		fmt.Fprintf(&b, "process holds on the SQLite database %s", e.Target)
	case len(e.Holders) == 0:
		b.WriteString("session holds (it ended before it could be named)")
	default:
		b.WriteString("session holds: ")
		for i, h := range e.Holders {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(h.String())
		}
	}
	b.WriteString("; nothing was changed: retry when it is done, or raise --lock-timeout")
	return b.String()
}

func (e *LockError) Unwrap() error { return e.Err }

// isLockTimeout reports whether err is PostgreSQL's lock_not_available (lock_timeout ran out,
// or NOWAIT) or SQLite's busy/locked.
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "55P03"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		code := sqErr.Code() & 0xff
		return code == 5 || code == 6 // SQLITE_BUSY, SQLITE_LOCKED
	}
	return false
}

// lockError turns a lock timeout met while doing something on tables into a *LockError
// naming who holds locks on them (PostgreSQL: sessions other than self, the failed
// connection, whose own locks do not count). Other errors are returned as they are.
func (db *DB) lockError(err error, doing string, self uint32, tables ...string) error {
	if err == nil || !isLockTimeout(err) {
		return err
	}
	le := &LockError{Doing: doing, Timeout: db.opts.lockTimeout(), Err: err}
	if db.pool == nil {
		le.Target = db.src.DSN
		return le
	}
	// A context of its own: the caller's may be what is ending.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	holders, herr := db.lockHolders(ctx, self, tables)
	if herr != nil {
		le.Err = errors.Join(err, fmt.Errorf("find the sessions holding the locks: %w", herr))
	}
	le.Holders = holders
	return le
}

// maxHolders is how many holders an error names, the strongest locks first.
const maxHolders = 3

// lockHolders lists the granted locks on tables held by sessions other than self and this
// query's, the strongest modes first (they are what a wait is most likely behind).
func (db *DB) lockHolders(ctx context.Context, self uint32, tables []string) ([]LockHolder, error) {
	rows, err := db.pool.Query(ctx, `SELECT c.relname::text, l.mode, a.pid, coalesce(a.application_name, ''),
			coalesce(a.state, ''), coalesce(a.xact_start, a.backend_start)
		FROM pg_locks l
		JOIN pg_class c ON c.oid = l.relation
		JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.granted AND l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND c.relname = ANY($1) AND l.pid <> pg_backend_pid() AND l.pid <> $2
		ORDER BY array_position(ARRAY['AccessExclusiveLock', 'ExclusiveLock', 'ShareRowExclusiveLock', 'ShareLock',
			'ShareUpdateExclusiveLock', 'RowExclusiveLock', 'RowShareLock', 'AccessShareLock'], l.mode), a.xact_start, c.relname
		LIMIT $3`, tables, int64(self), 4*maxHolders)
	if err != nil {
		return nil, err
	}
	var (
		out []LockHolder
		h   LockHolder
	)
	_, err = pgx.ForEachRow(rows, []any{&h.Table, &h.Mode, &h.PID, &h.Application, &h.State, &h.Since}, func() error {
		// A session holding several modes on a table is named once, with its strongest.
		if len(out) < maxHolders && !slices.ContainsFunc(out, func(o LockHolder) bool { return o.PID == h.PID && o.Table == h.Table }) {
			out = append(out, h)
		}
		return nil
	})
	return out, err
}

// modelTables names a model's table and its many-to-many through tables.
func modelTables(m platform.Model) []string {
	out := []string{m.Table}
	for _, f := range m.ManyToMany() {
		out = append(out, f.ThroughTable)
	}
	return out
}

// platformTables names every table of the platform's models.
func platformTables() []string {
	var out []string
	for _, m := range platform.Default.Models {
		out = append(out, modelTables(m)...)
	}
	return out
}

package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/storage"
)

// sqliteDSN is a modernc.org/sqlite file: URI for path with SQLite's open mode (ro, rw, rwc),
// waiting at most busy for another process's lock.
func sqliteDSN(path, mode string, busy time.Duration, pragmas ...string) string {
	q := url.Values{"mode": {mode}}
	q["_pragma"] = append([]string{fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds())}, pragmas...)
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func openSQLite(ctx context.Context, path string, create bool, busy time.Duration) (*sql.DB, error) {
	mode := "rw"
	if create {
		mode = "rwc"
	} else if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("database %s does not exist", path)
	}
	if err := checkSideFiles(path); err != nil {
		return nil, err
	}
	// Django turns foreign keys on for every connection.
	db, err := sql.Open("sqlite", sqliteDSN(path, mode, busy, "foreign_keys(1)"))
	if err != nil {
		return nil, err
	}
	// Reading the schema proves the file is a database.
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// checkSideFiles refuses a database whose journal or write-ahead log, where one exists, is not
// a regular file: SQLite opens them as it opens the database, and a FIFO would hold it (and
// every command) for ever, whatever the busy timeout.
func checkSideFiles(path string) error {
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		fi, err := os.Stat(path + suffix)
		if err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("database %s: %s is a %s, not a regular file: SQLite would wait on it; remove it", path, path+suffix, storage.KindOf(fi.Mode()))
		}
	}
	return nil
}

// sqliteSequenceDDL is in `.schema` output but cannot be executed: SQLite creates the table
// itself with the first AUTOINCREMENT table.
var sqliteSequenceDDL = regexp.MustCompile(`(?m)^CREATE TABLE sqlite_sequence\([^)]*\);\s*$`)

func (db *DB) applySchemaSQLite(ctx context.Context) (created bool, err error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'accounts_user'").Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, sqliteSequenceDDL.ReplaceAllString(platform.SchemaSQLite, "")); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// declTypes returns each column's declared type, lower case, from pragma table_info.
func declTypes(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table string) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT name, type FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		types[name] = strings.ToLower(typ)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("table %s does not exist", table)
	}
	return types, nil
}

func (db *DB) bulkInsertSQLite(ctx context.Context, table string, columns []string, next func() ([]any, bool)) (int64, error) {
	types, err := declTypes(ctx, db.sql, table)
	if err != nil {
		return 0, err
	}
	colTypes := make([]string, len(columns))
	quoted := make([]string, len(columns))
	for i, c := range columns {
		t, ok := types[c]
		if !ok {
			return 0, fmt.Errorf("table %s has no column %s", table, c)
		}
		colTypes[i], quoted[i] = t, quote(c)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)",
		quote(table), strings.Join(quoted, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ")))
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	var n int64
	for {
		row, ok := next()
		if !ok {
			break
		}
		if len(row) != len(columns) {
			return 0, fmt.Errorf("row %d has %d values for %d columns", n+1, len(row), len(columns))
		}
		for i, v := range row {
			if row[i], err = sqliteValue(colTypes[i], v); err != nil {
				return 0, fmt.Errorf("row %d column %s: %w", n+1, columns[i], err)
			}
		}
		if _, err := stmt.ExecContext(ctx, row...); err != nil {
			return 0, fmt.Errorf("row %d: %w", n+1, err)
		}
		n++
	}
	if _, ok := types["id"]; ok {
		// AUTOINCREMENT tracks explicit ids itself; this also covers a sqlite_sequence row
		// left behind a lower value by hand.
		q := fmt.Sprintf(`UPDATE sqlite_sequence SET seq = (SELECT max("id") FROM %[1]s)
			WHERE name = ? AND seq < (SELECT max("id") FROM %[1]s)`, quote(table))
		if _, err := tx.ExecContext(ctx, q, table); err != nil && !strings.Contains(err.Error(), "no such table") {
			return 0, fmt.Errorf("update sqlite_sequence: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// sqliteValue converts a BulkInsert value to what Django stores in a SQLite column of the
// declared type: datetimes as UTC text with microseconds, bools as 0/1, durations as
// microseconds, UUIDs as 32 hex digits, decimals as REAL.
func sqliteValue(declType string, v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		if declType == "date" {
			return x.Format(time.DateOnly), nil
		}
		return x.UTC().Format("2006-01-02 15:04:05.000000"), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case time.Duration:
		return x.Microseconds(), nil
	case string:
		switch {
		case declType == "char(32)" && len(x) == 36:
			u, err := fixture.AppendUUID(nil, []byte(x))
			if err != nil {
				return nil, fmt.Errorf("UUID %q: %w", x, err)
			}
			return strings.ReplaceAll(string(u[1:len(u)-1]), "-", ""), nil
		case strings.HasPrefix(declType, "decimal"):
			f, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, fmt.Errorf("decimal %q: %w", x, err)
			}
			return f, nil
		}
	}
	return v, nil
}

func liveColumnsSQLite(ctx context.Context, db *sql.DB) (map[string]map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c
		WHERE m.type = 'table'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	live := map[string]map[string]bool{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return nil, err
		}
		if live[table] == nil {
			live[table] = map[string]bool{}
		}
		live[table][col] = true
	}
	return live, rows.Err()
}

func (db *DB) beginSnapshotSQLite(ctx context.Context, dir string) (*Snapshot, error) {
	// Named after this process, so that the next run removes the copy if this one is killed.
	f, err := scratch.CreateTemp(dir, "wnb-snapshot-*.sqlite3")
	if err != nil {
		return nil, err
	}
	path, err := filepath.Abs(f.Name())
	f.Close()
	os.Remove(f.Name()) // VACUUM INTO wants to create the file
	if err != nil {
		return nil, err
	}
	if _, err := db.sql.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		os.Remove(path)
		return nil, err
	}
	return &Snapshot{db: db, id: path}, nil
}

// snapshotHandle returns the read-only handle of a SQLite snapshot copy, opened once per path.
func (db *DB) snapshotHandle(path string) (*sql.DB, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if h, ok := db.snapshots[path]; ok {
		return h, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	// immutable: nobody writes the copy, so SQLite can skip locking.
	h, err := sql.Open("sqlite", sqliteDSN(path, "ro", DefaultLockTimeout)+"&immutable=1")
	if err != nil {
		return nil, err
	}
	if db.snapshots == nil {
		db.snapshots = map[string]*sql.DB{}
	}
	db.snapshots[path] = h
	return h, nil
}

func (db *DB) closeSnapshotSQLite(path string) error {
	db.mu.Lock()
	h := db.snapshots[path]
	delete(db.snapshots, path)
	db.mu.Unlock()
	var errs []error
	if h != nil {
		errs = append(errs, h.Close())
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// planSQL counts a model's rows and finds the pks at row numbers chunk, 2*chunk, ... before the
// last row.
func planSQL(ctx context.Context, h *sql.DB, m platform.Model, chunk int) (int64, []int64, error) {
	var total int64
	if err := h.QueryRowContext(ctx, "SELECT count(*) FROM "+quote(m.Table)).Scan(&total); err != nil {
		return 0, nil, err
	}
	if total <= int64(chunk) {
		return total, nil, nil
	}
	pk := quote(m.PK.Column)
	rows, err := h.QueryContext(ctx, fmt.Sprintf(`SELECT pk FROM (SELECT %s AS pk, row_number() OVER (ORDER BY %s) AS n FROM %s)
		WHERE n %% ? = 0 AND n < ? ORDER BY pk`, pk, pk, quote(m.Table)), chunk, total)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	var bounds []int64
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			return 0, nil, err
		}
		bounds = append(bounds, b)
	}
	return total, bounds, rows.Err()
}

func (db *DB) exportSQLite(ctx context.Context, snapshotID string, p *exportPlan, r Range, out *fixture.Writer) (int64, error) {
	h := db.sql
	if snapshotID != "" {
		var err error
		if h, err = db.snapshotHandle(snapshotID); err != nil {
			return 0, err
		}
	}
	q, args := p.query(r, func(int) string { return "?" })
	anyArgs := make([]any, len(args))
	for i, a := range args {
		anyArgs[i] = a
	}
	rows, err := h.QueryContext(ctx, q, anyArgs...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]any, len(p.fields)+1)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var (
		n   int64
		buf = make([]byte, 0, 4096)
	)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if buf, err = p.appendSQLiteRow(buf[:0], vals); err != nil {
			return n, err
		}
		if err := out.WriteObject(buf); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

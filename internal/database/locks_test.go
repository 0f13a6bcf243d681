package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// testLockTimeout is short so the tests end soon; callCtx is a deadline far past it, so a
// call that waits for ever fails with the context's error instead of a *LockError.
const testLockTimeout = time.Second

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openLockTimeout opens url with testLockTimeout, closed with the test.
func openLockTimeout(t *testing.T, url string) *DB {
	t.Helper()
	db, err := OpenWith(context.Background(), url, Options{LockTimeout: testLockTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// pgBlocker opens a session named "blocker-app" that runs stmts in a transaction it leaves
// open, and returns its pid; the transaction ends with the test (or with release).
func pgBlocker(t *testing.T, url string, stmts ...string) (pid uint32, release func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "blocker-app"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	release = func() { conn.Close(ctx) }
	t.Cleanup(release)
	for _, s := range append([]string{"BEGIN"}, stmts...) {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("blocker: %s: %v", s, err)
		}
	}
	return conn.PgConn().PID(), release
}

// wantLockError checks err is a lock timeout naming every string in want.
func wantLockError(t *testing.T, err error, want ...string) {
	t.Helper()
	var le *LockError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a lock timeout", err)
	}
	t.Log(err)
	for _, w := range append(want, "nothing was changed", "retry") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

// TestLockTimeoutPostgres: another session's lock makes a restore's load, its row counts and
// a backup's plan and export fail after the lock timeout, naming the table and the blocking
// session, with nothing changed; once the blocker is gone the same load succeeds.
func TestLockTimeoutPostgres(t *testing.T) {
	chapter := model(t, "books.chapter")
	tests := []struct {
		name    string
		blocker string
		state   string
		run     func(ctx context.Context, db *DB) error
	}{
		{"restore behind a reader", "SELECT count(*) FROM books_chapter", "idle in transaction", func(ctx context.Context, db *DB) error {
			_, err := db.Load(ctx, fileFixtures(filepath.Join(testdata, "sample-fixtures")), LoadOptions{})
			return err
		}},
		{"restore merge behind a reader", "SELECT count(*) FROM books_chapter", "idle in transaction", func(ctx context.Context, db *DB) error {
			_, err := db.Load(ctx, fileFixtures(filepath.Join(testdata, "sample-fixtures")), LoadOptions{Merge: true})
			return err
		}},
		{"restore behind an exclusive lock", "LOCK TABLE books_chapter IN ACCESS EXCLUSIVE MODE", "idle in transaction", func(ctx context.Context, db *DB) error {
			_, err := db.Load(ctx, fileFixtures(filepath.Join(testdata, "sample-fixtures")), LoadOptions{})
			return err
		}},
		{"restore plan counts rows", "LOCK TABLE books_chapter IN ACCESS EXCLUSIVE MODE", "idle in transaction", func(ctx context.Context, db *DB) error {
			_, err := db.CountRows(ctx, []platform.Model{chapter})
			return err
		}},
		{"backup plan", "LOCK TABLE books_chapter IN ACCESS EXCLUSIVE MODE", "idle in transaction", func(ctx context.Context, db *DB) error {
			snap, err := db.BeginSnapshot(ctx, "")
			if err != nil {
				return err
			}
			defer snap.Close()
			_, err = snap.Plan(ctx, chapter, 1000)
			return err
		}},
		{"backup export", "LOCK TABLE books_chapter IN SHARE ROW EXCLUSIVE MODE; LOCK TABLE books_chapter IN ACCESS EXCLUSIVE MODE", "idle in transaction", func(ctx context.Context, db *DB) error {
			var b strings.Builder
			_, err := db.Export(ctx, "", chapter, All, fixture.Format{}, &b)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := samplePostgres(t)
			db := openLockTimeout(t, url)
			before, seqBefore := exportAll(t, db, fixture.Format{}), sequenceStates(t, db)
			pid, release := pgBlocker(t, url, tt.blocker)
			err := tt.run(callCtx(t), db)
			wantLockError(t, err, "books_chapter", fmt.Sprintf("pid %d", pid), `"blocker-app"`, tt.state)
			release()
			compareExports(t, exportAll(t, db, fixture.Format{}), before)
			if got := sequenceStates(t, db); !maps.Equal(got, seqBefore) {
				t.Errorf("sequences moved: before %v, after %v", seqBefore, got)
			}
			if err := tt.run(callCtx(t), db); err != nil {
				t.Errorf("once the blocker is gone: %v", err)
			}
		})
	}
}

// TestLockTimeoutParallelLoad: a parallel load (--jobs) behind another session's lock fails
// after the lock timeout, naming the table and the blocking session, with nothing changed;
// once the blocker is gone the same load succeeds.
func TestLockTimeoutParallelLoad(t *testing.T) {
	url := samplePostgres(t)
	db := openLockTimeout(t, url)
	emptyPlatform(t, db)
	schema := schemaObjects(t, db)
	fixtures := weighedFixtures(t, filepath.Join(testdata, "sample-fixtures"))
	pid, release := pgBlocker(t, url, "SELECT count(*) FROM books_chapter")
	_, err := db.Load(callCtx(t), fixtures, LoadOptions{Jobs: 2})
	wantLockError(t, err, "books_chapter", fmt.Sprintf("pid %d", pid), `"blocker-app"`, "idle in transaction")
	release()
	if !reflect.DeepEqual(schemaObjects(t, db), schema) || markerExists(t, db) {
		t.Error("the failed load changed the schema")
	}
	load(t, db, fixtures, LoadOptions{Jobs: 2})
	checkSampleLoaded(t, db)
}

// TestLockTimeoutDefault: a database opened without options waits DefaultLockTimeout.
func TestLockTimeoutDefault(t *testing.T) {
	db := openT(t, pgtest.URL(t))
	var got string
	if err := db.pool.QueryRow(context.Background(), "SHOW lock_timeout").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "30s" {
		t.Errorf("lock_timeout = %s, want 30s", got)
	}
}

// TestLockTimeoutSQLite: another process's write lock on the SQLite file makes a restore
// fail after the lock timeout naming the file, with nothing changed.
func TestLockTimeoutSQLite(t *testing.T) {
	url := sampleSQLite(t)
	db := openLockTimeout(t, url)
	before := exportAll(t, db, fixture.Format{})
	path := db.Source().DSN
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Load(callCtx(t), fileFixtures(engineFixtures(db)), LoadOptions{})
	wantLockError(t, err, path, "another process")
	conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()
	compareExports(t, exportAll(t, db, fixture.Format{}), before)
}

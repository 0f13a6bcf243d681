//go:build unix

package pipeline_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/proctest"
)

// parallelMarker is the table a parallel restore keeps while the database is half-restored.
const parallelMarker = "wnb_parallel_restore"

// TestRestoreJobsKilledMidway: the real command restoring with --jobs 2 is killed (SIGKILL)
// once some tables are committed and others are not; a rerun with --jobs 2 empties what the
// first left and finishes: the database equals the backup, and every index and constraint of
// a freshly migrated database is back, the same and valid.
func TestRestoreJobsKilledMidway(t *testing.T) {
	src := filledPlatform(t, database.Postgres, demo.Options{Seed: 3, Users: 20, Authors: 4, Languages: 4,
		Books: 60, ChaptersPerBook: 50, MediaPerChapter: 1, ChangeLogsPerChapter: 3, NoFiles: true})
	if err := os.MkdirAll(src.storage, 0o755); err != nil { // an empty storage: no files
		t.Fatal(err)
	}
	backup := backupOf(t, src, false)
	target := emptyTarget(t, database.Postgres)
	want := schemaOf(t, emptyTarget(t, database.Postgres).dbURL)
	bin := proctest.Binary(t)
	args := []string{"restore", backup, "--database", target.dbURL, "--skip-files", "--force", "--jobs", "2"}

	first := proctest.Start(t, bin, nil, args...)
	tables := waitHalfRestored(t, first, target.dbURL)
	first.Kill()
	if !hasMarker(t, target.dbURL) {
		t.Fatalf("the restore finished before the kill (tables with rows: %v): the data set is too small to kill it midway", tables)
	}
	t.Logf("killed with %v committed", tables)

	rerun := proctest.Run(t, bin, nil, args...)
	if code := rerun.ExitCode(); code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, rerun.Stderr())
	}
	if !strings.Contains(rerun.Stderr(), "did not finish") {
		t.Errorf("the rerun did not say it empties what an unfinished restore left:\n%s", rerun.Stderr())
	}
	compareWithBackup(t, backup, target)
	if got := schemaOf(t, target.dbURL); !slices.Equal(got, want) {
		t.Errorf("indexes and constraints after the rerun differ from a migrated database:\n got %d: %v\nwant %d: %v", len(got), got, len(want), want)
	}
	if hasMarker(t, target.dbURL) {
		t.Errorf("the rerun left %s behind", parallelMarker)
	}
}

// waitHalfRestored waits, up to a deadline, until the restore has committed rows into some
// tables while its marker says it is unfinished, and returns those tables. A table being
// loaded is locked: the look skips it (lock_timeout) rather than wait for its commit.
func waitHalfRestored(t *testing.T, p *proctest.Proc, url string) []string {
	t.Helper()
	conn := connect(t, url)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET lock_timeout = '5ms'"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var tables []string
		for _, m := range platform.Default.Models {
			var rows bool
			q := "SELECT to_regclass($1) IS NOT NULL AND EXISTS (SELECT 1 FROM " + pgx.Identifier{m.Table}.Sanitize() + ")"
			if err := conn.QueryRow(ctx, q, parallelMarker).Scan(&rows); err == nil && rows {
				tables = append(tables, m.Table)
			}
		}
		if len(tables) > 0 {
			return tables
		}
		if p.Exited() {
			t.Fatalf("the restore ended (exit %d) before any table was committed:\n%s", p.ExitCode(), p.Stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no table committed within 60s:\n%s", p.Stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connect opens a connection to url, closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// hasMarker reports whether the parallel restore's marker table is in the database.
func hasMarker(t *testing.T, url string) bool {
	t.Helper()
	var ok bool
	if err := connect(t, url).QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", parallelMarker).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// schemaOf lists a database's indexes and constraints by definition, with whether each is
// valid: what a parallel restore drops and must create again.
func schemaOf(t *testing.T, url string) []string {
	t.Helper()
	rows, err := connect(t, url).Query(context.Background(), `
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
		UNION ALL
		SELECT 'index valid ' || indexrelid::regclass::text || ' ' || indisvalid FROM pg_index
		WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace)
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
		FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 50 {
		t.Fatalf("only %d indexes and constraints in %s: %v", len(out), url, out)
	}
	return out
}

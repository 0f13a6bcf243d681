package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A restore with nothing for workers to do (--skip-files, or a backup made without files)
// starts no queue: it succeeds with NATS_URL naming an address nobody listens on, which a
// restore that connects (or checks the queue before it starts) cannot.
func TestRestoreDatabaseOnlyNeedsNoQueue(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup_data"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	full := onlyBackup(t, filepath.Join(dir, "backups"))
	if code, out := cli(t, dir, "backup_data", "--skip-files", "--backup-dir", "dbonly"); code != 0 {
		t.Fatalf("backup --skip-files: %d %s", code, out)
	}
	dbOnly := onlyBackup(t, filepath.Join(dir, "dbonly"))
	want := rowCount(t, "sqlite:///"+filepath.Join(dir, "db.sqlite3"), "books.chapter")
	cases := []struct {
		name string
		args []string
	}{
		{"--skip-files", []string{"restore", full, "--force", "--skip-files"}},
		{"backup without files", []string{"restore", dbOnly, "--force"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dbURL, _ := emptyTarget(t)
			t.Setenv("NATS_URL", "nats://"+freeAddr(t))
			if code, out := cli(t, dir, c.args...); code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if got := rowCount(t, dbURL, "books.chapter"); got != want {
				t.Fatalf("%d chapters restored, want %d", got, want)
			}
		})
	}
	t.Run("files still need the queue", func(t *testing.T) {
		emptyTarget(t)
		t.Setenv("NATS_URL", "nats://"+freeAddr(t))
		if code, out := cli(t, dir, "restore", full, "--force", "--skip-db"); code == 0 {
			t.Fatalf("a files restore without a reachable queue succeeded:\n%s", out)
		}
	})
}

// --jobs is checked before anything changes: below 1, with --merge or --skip-db it is a
// usage error; on SQLite (one connection) too, naming --jobs; the target keeps its rows.
func TestRestoreJobsUsage(t *testing.T) {
	dir := sitePlatform(t)
	if code, out := cli(t, dir, "backup_data", "--skip-files"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	dbURL, _ := emptyTarget(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--jobs", "0"}, "--jobs must be at least 1"},
		{[]string{"--jobs", "2", "--merge"}, "--merge"},
		{[]string{"--jobs", "2", "--skip-db"}, "--skip-db"},
		{[]string{"--jobs", "2"}, "SQLite"},
		{[]string{"--jobs", "2", "--dry-run"}, "SQLite"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out := cli(t, dir, append([]string{"restore", backup, "--force"}, c.args...)...)
			if code != 2 || !strings.Contains(out, c.want) || !strings.Contains(out, "--jobs") {
				t.Fatalf("exit %d, want 2 naming --jobs and %q:\n%s", code, c.want, out)
			}
			if n := rowCount(t, dbURL, "books.chapter"); n != 0 {
				t.Fatalf("the refused restore loaded %d chapters", n)
			}
		})
	}
}

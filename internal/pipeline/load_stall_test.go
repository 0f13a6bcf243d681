package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// TestRestoreLoadStallsAndRollsBack: a PostgreSQL connection that stops carrying data in the
// middle of the load (a proxy or firewall that stopped forwarding, the connection left open)
// fails the restore once the stall timeout passes, naming why, instead of holding the load and
// its locks for ever; the target is left as it was.
func TestRestoreLoadStallsAndRollsBack(t *testing.T) {
	backup := backupOf(t, filledPlatform(t, database.SQLite, demo.DefaultOptions()), false)
	target := emptyTarget(t, database.Postgres)
	direct := target.dbURL
	target.dbURL = throughStallingProxy(t, direct, 24<<10)
	s := startSession(t, target, 2, queue.Config{})
	s.Coordinator.StallTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := s.Coordinator.Restore(ctx, coordinator.RestoreOptions{Source: backup, SkipFiles: true,
		DatabaseURL: target.dbURL, StorageURL: target.storage, TempDir: t.TempDir()})
	// The load's watch or the connection's own (whichever notices first) gives up.
	if !errors.Is(err, coordinator.ErrLoadStalled) && !errors.Is(err, database.ErrDatabaseSilent) {
		t.Fatalf("restore: %v; want the load stalled", err)
	}
	requireNoBooks(t, direct)
}

// TestRestoreCheckStallFails: a PostgreSQL connection that stops carrying data while the
// restore checks the target (its schema, its migrations, its rows) fails the restore once the
// stall timeout passes, naming it, before anything changed.
func TestRestoreCheckStallFails(t *testing.T) {
	backup := backupOf(t, filledPlatform(t, database.SQLite, demo.DefaultOptions()), false)
	target := emptyTarget(t, database.Postgres)
	direct := target.dbURL
	target.dbURL = throughStallingProxy(t, direct, 600)
	s := startSession(t, target, 2, queue.Config{})
	s.Coordinator.StallTimeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := s.Coordinator.Restore(ctx, coordinator.RestoreOptions{Source: backup, SkipFiles: true,
		DatabaseURL: target.dbURL, StorageURL: target.storage, TempDir: t.TempDir()})
	if !errors.Is(err, database.ErrDatabaseSilent) || !strings.Contains(err.Error(), "--stall-timeout") {
		t.Fatalf("restore: %v; want the silent database named", err)
	}
	requireNoBooks(t, direct)
}

// throughStallingProxy returns dbURL through a proxy on loopback that stops each connection,
// both ways, once its client has sent after bytes.
func throughStallingProxy(t *testing.T, dbURL string, after int64) string {
	t.Helper()
	p, u := proctest.ProxyURL(t, dbURL)
	p.StallAfter(after)
	return u.String()
}

// requireNoBooks fails unless the database at dbURL holds no book.
func requireNoBooks(t *testing.T, dbURL string) {
	t.Helper()
	db, err := database.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	book, _ := platform.Default.Model("books.Book")
	counts, err := db.CountRows(context.Background(), []platform.Model{book})
	if err != nil || counts[book.Label] != 0 {
		t.Fatalf("the target holds %d books (%v): the stalled load was not rolled back", counts[book.Label], err)
	}
}

// TestBackupPlanStallFails: a PostgreSQL connection that stops carrying data while the backup
// checks the schema and plans fails the backup once the stall timeout passes, naming it; the
// tasks' own stall watch starts only once they are published.
func TestBackupPlanStallFails(t *testing.T) {
	src := filledPlatform(t, database.Postgres, demo.DefaultOptions())
	src.dbURL = throughStallingProxy(t, src.dbURL, 600)
	s := startSession(t, src, 2, queue.Config{})
	s.Coordinator.StallTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{DatabaseURL: src.dbURL, StorageURL: src.storage, BackupDir: t.TempDir(), SkipFiles: true})
	if !errors.Is(err, database.ErrDatabaseSilent) || !strings.Contains(err.Error(), "--stall-timeout") {
		t.Fatalf("backup: %v; want the planning stall named", err)
	}
}

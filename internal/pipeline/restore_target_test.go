package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/roundtrip"
)

// TestRestoreOverCheckedTarget: a restore handed the target already opened and checked
// (RestoreOptions.Target, the preflight's) loads over it instead of opening DatabaseURL again:
// here that URL names a database that does not exist, so opening it would fail the restore.
func TestRestoreOverCheckedTarget(t *testing.T) {
	src := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	backup := backupOf(t, src, false)
	target := emptyTarget(t, database.SQLite)
	db, err := database.OpenWith(context.Background(), target.dbURL, database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := startSession(t, target, 2, queue.Config{})
	rep, err := s.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{
		Source: backup, SkipFiles: true, Target: db, TempDir: t.TempDir(),
		DatabaseURL: "sqlite:///" + filepath.Join(t.TempDir(), "missing", "db.sqlite3"),
	})
	if err != nil {
		t.Fatalf("restore over the checked target: %v", err)
	}
	if len(rep.Loaded) != 10 {
		t.Fatalf("loaded %d models, want 10", len(rep.Loaded))
	}
	diff := &roundtrip.Report{}
	if err := roundtrip.CompareDatabase(context.Background(), diff, backup, target.dbURL, "restored database"); err != nil {
		t.Fatal(err)
	}
	if len(diff.Differences) > 0 {
		t.Fatalf("%d differences, e.g. %s", len(diff.Differences), diff.Differences[0])
	}
}

package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
)

// TestRestoreRefusesSpecialFiles: a FIFO put in a backup in place of its metadata, its
// manifest or a fixture, or given as the archive to restore, is refused at once with an error
// naming it, in every mode, and the target is unchanged. Opened as a file, a FIFO without a
// writer blocks its reader for ever: every restore here must end within the deadline.
func TestRestoreRefusesSpecialFiles(t *testing.T) {
	for _, engine := range []string{database.SQLite, database.Postgres} {
		t.Run(engine, func(t *testing.T) {
			src := filledPlatform(t, engine, demo.Options{Books: 2, ChaptersPerBook: 2, Users: 2, Authors: 1, Languages: 1, Seed: 3, NoFiles: true})
			if err := os.MkdirAll(src.storage, 0o755); err != nil {
				t.Fatal(err)
			}
			backup := backupOf(t, src, false)
			modes := map[string]coordinator.RestoreOptions{"forced": {}, "dry run": {DryRun: true}}
			if engine == database.Postgres {
				modes["jobs"] = coordinator.RestoreOptions{Jobs: 2}
			}
			target := emptyTarget(t, engine)
			os.MkdirAll(target.storage, 0o755)
			before := state(t, target)
			for _, name := range []string{"backup_metadata.json", "SHA256SUMS", "db_books_book.json", "archive"} {
				source := withFIFO(t, backup, name)
				for mode, o := range modes {
					t.Run(name+"/"+mode, func(t *testing.T) {
						o.Source = source
						err := restoreWithin(t, target, o, 30*time.Second)
						if err == nil || !strings.Contains(err.Error(), filepath.Base(source)) && !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "is a fifo, not a regular file") {
							t.Fatalf("err = %v, want the FIFO refused by name", err)
						}
						if state(t, target) != before {
							t.Fatal("the refused restore changed the target")
						}
					})
				}
			}
		})
	}
}

// withFIFO returns a copy of backup with name replaced by a FIFO, or for "archive" a FIFO
// named like a backup archive.
func withFIFO(t *testing.T, backup, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup_20261203_060000.tar.gz")
	if name != "archive" {
		p = filepath.Join(copyTree(t, backup), name)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if name == "archive" {
		return p
	}
	return filepath.Dir(p)
}

// restoreWithin restores o into target as a database-only restore runs (no NATS) and fails
// the test if that takes longer than limit.
func restoreWithin(t *testing.T, target platformFixture, o coordinator.RestoreOptions, limit time.Duration) error {
	t.Helper()
	s, err := pipeline.Start(context.Background(), pipeline.Config{NoQueue: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o.DatabaseURL, o.StorageURL, o.TempDir, o.SkipFiles = target.dbURL, target.storage, t.TempDir(), true
	return within(t, limit, "the restore of "+o.Source, func() error {
		_, err := s.Coordinator.Restore(context.Background(), o)
		return err
	})
}

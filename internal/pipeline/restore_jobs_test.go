package pipeline_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
)

// restoreNoQueue restores into target as a database-only restore runs: without NATS.
func restoreNoQueue(t *testing.T, target platformFixture, o coordinator.RestoreOptions) (*coordinator.RestoreReport, error) {
	t.Helper()
	s, err := pipeline.Start(context.Background(), pipeline.Config{NoQueue: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o.DatabaseURL, o.StorageURL, o.TempDir, o.SkipFiles = target.dbURL, target.storage, t.TempDir(), true
	return s.Coordinator.Restore(context.Background(), o)
}

// TestRestoreJobsPostgres: a restore with --jobs 2 fills an empty target; a target with rows
// is refused before the confirmation (and in a dry run), naming the table and its count; a
// parallel restore that fails after committing some tables says the database is
// half-restored, and a rerun with --jobs empties those tables and completes.
func TestRestoreJobsPostgres(t *testing.T) {
	src := filledPlatform(t, database.Postgres, demo.Options{Books: 3, ChaptersPerBook: 4, Users: 5, Authors: 2, Languages: 2, Seed: 7, NoFiles: true})
	if err := os.MkdirAll(src.storage, 0o755); err != nil { // an empty storage: no files
		t.Fatal(err)
	}
	backup := backupOf(t, src, false)

	t.Run("empty target", func(t *testing.T) {
		target := emptyTarget(t, database.Postgres)
		os.MkdirAll(target.storage, 0o755)
		o := coordinator.RestoreOptions{Source: backup, Jobs: 2}
		o.EarlySums = coordinator.StartEarlySums(context.Background(), o) // as the command does
		defer o.EarlySums.Stop()
		rep, err := restoreNoQueue(t, target, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Loaded) == 0 {
			t.Fatal("nothing loaded")
		}
		compareWithBackup(t, backup, target)
	})

	t.Run("target with rows", func(t *testing.T) {
		for _, c := range []struct {
			name       string
			dry, asked bool
		}{{"dry run", true, true}, {"asked", false, true}, {"forced", false, false}} {
			asked := false
			o := coordinator.RestoreOptions{Source: backup, Jobs: 2, DryRun: c.dry}
			if c.asked {
				o.Confirm = func(*coordinator.RestorePlan) (bool, error) { asked = true; return true, nil }
			}
			_, err := restoreNoQueue(t, src, o)
			var ne *database.NotEmptyError
			if !errors.As(err, &ne) || ne.Rows == 0 || !strings.Contains(err.Error(), ne.Table) || outcome.Of(err).Code != 2 {
				t.Fatalf("%s: got %v, want a refusal (exit 2) naming a table and its rows", c.name, err)
			}
			if asked {
				t.Errorf("%s: asked for confirmation before refusing", c.name)
			}
			compareWithBackup(t, backup, src) // the refused restore changed nothing
		}
	})

	t.Run("fails midway, rerun", func(t *testing.T) {
		target := emptyTarget(t, database.Postgres)
		os.MkdirAll(target.storage, 0o755)
		// Chapters alone: they commit, then their foreign key to books (empty) fails.
		_, err := restoreNoQueue(t, target, coordinator.RestoreOptions{Source: backup, Jobs: 2, Models: []string{"books.chapter"}})
		var half *database.HalfRestoredError
		if !errors.As(err, &half) || !strings.Contains(err.Error(), "half-restored") || !strings.Contains(err.Error(), "--jobs") ||
			strings.Contains(err.Error(), "unchanged") {
			t.Fatalf("got %v, want a half-restored error that says to rerun with --jobs", err)
		}
		if _, err := restoreNoQueue(t, target, coordinator.RestoreOptions{Source: backup}); outcome.Of(err).Code != 2 {
			t.Fatalf("a one-transaction restore into the half-restored target: %v, want a refusal", err)
		}
		if _, err := restoreNoQueue(t, target, coordinator.RestoreOptions{Source: backup, Jobs: 2}); err != nil {
			t.Fatalf("rerun: %v", err)
		}
		compareWithBackup(t, backup, target)
	})
}

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
	"github.com/webnovel/webnovel-backup/internal/filelock"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// TestRestoreRefusesABusyTarget: while another restore holds the target database's lock, or
// the storage folder's, a restore into it is refused before it changes anything, naming the
// target; once the lock is let go the same restore runs.
func TestRestoreRefusesABusyTarget(t *testing.T) {
	backup := backupOf(t, filledPlatform(t, database.SQLite, demo.DefaultOptions()), false)
	for _, engine := range []string{database.SQLite, database.Postgres} {
		t.Run(engine, func(t *testing.T) {
			target := emptyTarget(t, engine)
			if err := os.MkdirAll(target.storage, 0o755); err != nil {
				t.Fatal(err)
			}
			s := startSession(t, target, 2, queue.Config{})
			restore := func() error {
				_, err := s.Coordinator.Restore(context.Background(), coordinator.RestoreOptions{Source: backup,
					DatabaseURL: target.dbURL, StorageURL: target.storage, TempDir: t.TempDir()})
				return err
			}
			for name, lock := range restoreLocks(target) {
				release, err := lock()
				if err != nil {
					t.Fatal(err)
				}
				err = restore()
				release()
				if !errors.Is(err, coordinator.ErrTargetBusy) {
					t.Fatalf("restore while another holds the %s lock: %v; want ErrTargetBusy", name, err)
				}
				// The operator is told who holds a PostgreSQL lock (a session a crashed restore
				// left behind a pooler can be ended by hand).
				if name == "database" && engine == database.Postgres && !strings.Contains(err.Error(), "held by session pid") {
					t.Errorf("restore refused with %q: want the lock's holder named", err)
				}
				requireNoBooks(t, target.dbURL)
				if entries, _ := os.ReadDir(target.storage); len(entries) > 0 {
					t.Fatalf("a refused restore wrote %d entries into the storage", len(entries))
				}
			}
			if err := restore(); err != nil {
				t.Fatalf("restore once the locks are let go: %v", err)
			}
		})
	}
}

// TestBackupRefusedDuringARestore: a backup of a database or storage folder that a restore
// holds locked is refused, naming it (it would hold a half-restored platform); once the
// restore has ended the backup runs.
func TestBackupRefusedDuringARestore(t *testing.T) {
	for _, engine := range []string{database.SQLite, database.Postgres} {
		t.Run(engine, func(t *testing.T) {
			src := filledPlatform(t, engine, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, MediaPerChapter: 1, FileBytes: 100, Seed: 7})
			s := startSession(t, src, 2, queue.Config{})
			backup := func() error {
				_, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: src.dbURL,
					StorageURL: src.storage, BackupDir: t.TempDir()})
				return err
			}
			for name, lock := range restoreLocks(src) {
				release, err := lock()
				if err != nil {
					t.Fatal(err)
				}
				err = backup()
				release()
				if !errors.Is(err, coordinator.ErrRestoreRunning) {
					t.Fatalf("backup while a restore holds the %s lock: %v; want ErrRestoreRunning", name, err)
				}
			}
			if err := backup(); err != nil {
				t.Fatalf("backup once the restore has ended: %v", err)
			}
		})
	}
}

// restoreLocks are the locks a restore into p holds, each taken as another restore would.
func restoreLocks(p platformFixture) map[string]func() (func(), error) {
	return map[string]func() (func(), error){
		"database": func() (func(), error) { return database.LockRestore(context.Background(), p.dbURL) },
		"storage":  func() (func(), error) { return filelock.Try(p.storage) },
	}
}

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/filelock"
	"github.com/webnovel/webnovel-backup/storage"
)

// Two restores into one target would each report success over the other's work: the database
// holding one backup's rows, the storage a mix of both backups' files, the second restore's
// sweep deleting the first's files in flight. So a restore holds its target's locks from its
// first check to its end, and a second one is refused before it changes anything.

// ErrTargetBusy is a restore refused because another one is writing to its target.
var ErrTargetBusy = errors.New("the restore is refused: wait for the other one to end (nothing was changed)")

// lockRestoreTarget takes the restore locks of o's target: the database's (database.LockRestore)
// and a local storage folder's (a lock on the folder itself, which leaves nothing behind). A
// database file or folder that does not exist yet is not locked: the checks refuse the one, the
// restore makes the other. S3 storage has no lock; the database's covers a whole restore.
func lockRestoreTarget(ctx context.Context, o RestoreOptions) (release func(), err error) {
	var held []func()
	release = func() {
		for _, r := range held {
			r()
		}
	}
	if !o.SkipDB && o.DatabaseURL != "" {
		r, err := database.LockRestore(ctx, o.DatabaseURL)
		switch {
		case errors.Is(err, database.ErrRestoreRunning):
			release()
			return nil, fmt.Errorf("database %w: %w", err, ErrTargetBusy) // err names the lock's holder
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			release()
			return nil, err
		default:
			held = append(held, r)
		}
	}
	if !o.SkipFiles && o.StorageURL != "" && !storage.IsS3(o.StorageURL) {
		dir := storage.LocalPath(o.StorageURL)
		r, err := filelock.Try(dir)
		switch {
		case errors.Is(err, filelock.ErrLocked):
			release()
			return nil, fmt.Errorf("storage %s: another restore is writing to it: %w", dir, ErrTargetBusy)
		case err == nil:
			held = append(held, r)
		case !errors.Is(err, fs.ErrNotExist):
			slog.Warn("the restore takes no lock on the storage folder", "folder", dir, "err", err)
		}
	}
	return release, nil
}

// ErrRestoreRunning is a backup refused because a restore is writing to its source: it would
// hold a half-restored platform.
var ErrRestoreRunning = errors.New("a restore is writing to it; back up once it has ended")

// refuseDuringRestore refuses a backup whose database (db, nil for none) or local storage
// folder a restore holds locked (lockRestoreTarget). It holds no lock itself: backups run side
// by side, and a restore that starts later is not held up.
func refuseDuringRestore(ctx context.Context, o BackupOptions, db *database.DB) error {
	if db != nil {
		err := db.CheckNoRestore(ctx)
		if errors.Is(err, database.ErrRestoreRunning) {
			return fmt.Errorf("backup: database %s: %w", db.Source().Redacted, ErrRestoreRunning)
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if !o.SkipFiles && !storage.IsS3(o.StorageURL) {
		dir := storage.LocalPath(o.StorageURL)
		release, err := filelock.TryShared(dir)
		if errors.Is(err, filelock.ErrLocked) {
			return fmt.Errorf("backup: storage %s: %w", dir, ErrRestoreRunning)
		}
		if err == nil {
			release()
		}
	}
	return nil
}

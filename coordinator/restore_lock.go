package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/filelock"
	"github.com/webnovel/webnovel-backup/internal/objectlock"
	"github.com/webnovel/webnovel-backup/storage"
)

// Two restores into one target would each report success over the other's work: the database
// holding one backup's rows, the storage a mix of both backups' files, the second restore's
// sweep deleting the first's files in flight. So a restore holds its target's locks from its
// first check to its end, and a second one is refused before it changes anything.

// ErrTargetBusy is a restore refused because another one is writing to its target.
var ErrTargetBusy = errors.New("the restore is refused: wait for the other one to end (nothing was changed)")

// StorageLockKey is the object at the root of an S3 storage that a restore into it holds
// (objectlock): S3 has no lock a crashed process lets go of, so it is a lease, renewed while
// the restore runs and taken over once it has not been for objectlock.DefaultStaleAfter.
// Backups never copy it.
const StorageLockKey = ".webnovel-backup-restore.lock"

// storageLockRenew is how often a restore rewrites its S3 storage lock (shorter in tests).
var storageLockRenew = objectlock.DefaultRenew

// lockRestoreTarget takes the restore locks of o's target: the database's (database.LockRestore),
// a local storage folder's (a lock on the folder itself, which leaves nothing behind) and an
// S3 storage's (StorageLockKey; if another restore takes it over, o.lostLock stops this one). A
// database file or folder that does not exist yet is not locked: the checks refuse the one,
// the restore makes the other.
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
	switch {
	case o.SkipFiles || o.StorageURL == "":
	case storage.IsS3(o.StorageURL):
		r, err := lockS3Storage(ctx, o)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, r)
	default:
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

// lockS3Storage takes StorageLockKey in o's S3 storage. A service without conditional writes
// gets a warning and no lock.
func lockS3Storage(ctx context.Context, o RestoreOptions) (release func(), err error) {
	b, err := storage.Open(ctx, o.StorageURL)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	l, err := objectlock.Take(ctx, b, StorageLockKey, objectlock.Options{
		Holder: objectlock.Holder{Run: o.RunID, Host: host, PID: os.Getpid()}, Renew: storageLockRenew, Lost: o.lostLock})
	switch {
	case errors.Is(err, objectlock.ErrLocked):
		b.Close()
		return nil, fmt.Errorf("storage %s: another restore is writing to it (%w): %w", b, err, ErrTargetBusy)
	case errors.Is(err, storage.ErrNoConditionalWrites):
		slog.Warn("the restore takes no lock on the storage: its S3 service does not write conditionally", "storage", b.String(), "err", err)
		b.Close()
		return func() {}, nil
	case err != nil:
		b.Close()
		return nil, fmt.Errorf("storage %s: %w", b, err)
	}
	return func() {
		if err := l.Release(ctx); err != nil {
			slog.Warn("the restore could not remove its lock from the storage; the next restore takes it over once stale",
				"storage", b.String(), "key", StorageLockKey, "err", err)
		}
		b.Close()
	}, nil
}

// ErrRestoreRunning is a backup refused because a restore is writing to its source: it would
// hold a half-restored platform.
var ErrRestoreRunning = errors.New("a restore is writing to it; back up once it has ended")

// refuseDuringRestore refuses a backup whose database (db, nil for none) or storage (src, nil
// for none) a restore holds locked (lockRestoreTarget). It holds no lock itself: backups run
// side by side, and a restore that starts later is not held up.
func refuseDuringRestore(ctx context.Context, o BackupOptions, db *database.DB, src *storage.Bucket) error {
	if db != nil {
		err := db.CheckNoRestore(ctx)
		if errors.Is(err, database.ErrRestoreRunning) {
			return fmt.Errorf("backup: database %s: %w", db.Source().Redacted, ErrRestoreRunning)
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if src != nil && !src.IsLocal() {
		return refuseDuringS3Restore(ctx, src)
	}
	if src != nil {
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

// refuseDuringS3Restore refuses a backup of an S3 storage whose restore lock is held. A stale
// one (a restore that died) is warned of: the storage may be half-restored.
func refuseDuringS3Restore(ctx context.Context, b *storage.Bucket) error {
	st, err := objectlock.Check(ctx, b, StorageLockKey, objectlock.DefaultStaleAfter)
	switch {
	case err != nil:
		return fmt.Errorf("backup: storage %s: read its restore lock: %w", b, err)
	case st == nil:
		return nil
	case st.Stale:
		slog.Warn("a restore into the storage stopped without finishing: it may hold a half-restored platform",
			"storage", b.String(), "lock", StorageLockKey, "holder", st.Holder.String(),
			"unrenewed_for", st.Age.Round(time.Second).String())
		return nil
	}
	return fmt.Errorf("backup: storage %s: %w (%s holds %s)", b, ErrRestoreRunning, st.Holder, StorageLockKey)
}

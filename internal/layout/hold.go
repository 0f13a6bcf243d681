package layout

import (
	"errors"
	"fmt"

	"github.com/webnovel/webnovel-backup/internal/filelock"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore, a copy or a verify of an old backup may still be reading it when the nightly
// prune ages it out: the reader would fail half-way (a restore with half its files written).
// So a reader holds a local backup (its folder, or its archive file) with a shared lock, and
// prune deletes only the backups it can lock alone, keeping the others for its next run.

// ErrBeingPruned is a backup a prune is deleting.
var ErrBeingPruned = errors.New("prune is deleting it")

// ErrInUse is a backup a restore, copy or verify is reading.
var ErrInUse = errors.New("a restore, copy or verify is reading it")

// Hold keeps the backup at location from being pruned while it is read; release lets go.
// ErrBeingPruned when a prune is deleting it. S3 backups, and a file system without locks,
// are not held (a missing backup is left for the reader's own open to report).
func Hold(location string) (release func(), err error) {
	if storage.IsS3(location) {
		return func() {}, nil
	}
	return lockBackup(storage.LocalPath(location), filelock.TryShared, ErrBeingPruned)
}

// Claim takes the local backup at path for deletion: ErrInUse while a reader holds it.
// release lets go once it is deleted. A path that cannot be locked is claimed unguarded.
func Claim(path string) (release func(), err error) {
	return lockBackup(path, filelock.Try, ErrInUse)
}

// lockBackup locks path with lock; a lock held the other way is busy. A path that cannot be
// locked at all (missing, or on a file system without locks) goes unguarded.
func lockBackup(path string, lock func(string) (func(), error), busy error) (func(), error) {
	release, err := lock(path)
	switch {
	case errors.Is(err, filelock.ErrLocked):
		return nil, fmt.Errorf("backup %s: %w", path, busy)
	case err != nil:
		return func() {}, nil
	}
	return release, nil
}

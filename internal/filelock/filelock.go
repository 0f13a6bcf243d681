// Package filelock takes advisory locks on files and folders (flock), held by an open file:
// the kernel lets go of them when the process ends, however it ends, so a lock never outlives
// its holder and nothing is left behind to clean up.
package filelock

import "errors"

// ErrLocked is a lock another open file holds.
var ErrLocked = errors.New("locked by another process")

// errNotLockable is a path that is neither a regular file nor a folder (a FIFO, a device):
// it is not locked, and not opened in a way that could wait.
var errNotLockable = errors.New("not a file or a folder")

// Try takes an exclusive lock on path (a file or a folder) without waiting. It returns
// ErrLocked when another process holds one; release lets go of it.
func Try(path string) (release func(), err error) {
	return try(path, false)
}

// TryShared takes a shared lock on path without waiting: ErrLocked when another process holds
// an exclusive one.
func TryShared(path string) (release func(), err error) {
	return try(path, true)
}

package workers

import (
	"errors"
	"syscall"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/storage"
)

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks an error that retrying cannot fix: the task fails at once (Term) instead of
// burning its deliveries.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err cannot be fixed by retrying: marked Permanent, a stored
// value the export cannot write (database.ValueError: the snapshot holds it at every
// attempt), a file that is not a regular one where a task must read one (a FIFO in a backup
// being copied or restored: a backup's copy task skips such a source file with a warning
// instead, before its error reaches here), or a storage error of a class no redelivery cures — refused access (a local
// EACCES or EROFS, an S3 403), a full disk, or a name the file system cannot give (a file and
// a folder of one name, or a name longer than it allows) — whichever driver gave it.
func IsPermanent(err error) bool {
	var p permanentError
	if errors.As(err, &p) {
		return true
	}
	var v *database.ValueError
	if errors.As(err, &v) || errors.Is(err, storage.ErrNotRegular) || errors.Is(err, syscall.ENAMETOOLONG) {
		return true
	}
	switch storage.ErrorCode(err) {
	case storage.CodePermission, storage.CodeNoSpace, storage.CodeConflict:
		return true
	}
	return false
}

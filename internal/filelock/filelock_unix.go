//go:build unix

package filelock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func try(path string, shared bool) (func(), error) {
	// Non-blocking: opening a FIFO put where a file was expected would wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !(fi.IsDir() || fi.Mode().IsRegular()) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, errNotLockable)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file lets go of the lock
}

package coordinator

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// insertRange inserts n bytes (whole blocks) of holes at the start of f, moving its blocks
// up without copying them.
func insertRange(f *os.File, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_INSERT_RANGE, 0, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("%w (%v)", errInsertUnsupported, err)
	}
	if err != nil {
		return fmt.Errorf("insert the archive's first part: %w", err)
	}
	return nil
}

// blockSize is the block size of f's file system: what insertRange inserts multiples of.
func blockSize(f *os.File) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("the archive's file system: %w", err)
	}
	if st.Bsize <= 0 || st.Bsize%512 != 0 {
		return 0, fmt.Errorf("%w (block size %d)", errInsertUnsupported, st.Bsize)
	}
	return int64(st.Bsize), nil
}

// startWriteback starts writing n bytes of f at off to disk, without waiting: the sync at
// the publish then waits for little.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE) //nolint:errcheck // a hint; the publish syncs
}

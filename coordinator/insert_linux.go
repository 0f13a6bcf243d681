package coordinator

import (
	"os"

	"golang.org/x/sys/unix"
)

// insertRange inserts n bytes (a multiple of the block size) at the start of f, moving its
// content up without copying it (ext4, XFS); the room reads as zeros until written.
func insertRange(f *os.File, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_INSERT_RANGE, 0, n)
}

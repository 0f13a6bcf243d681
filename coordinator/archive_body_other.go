//go:build !linux

package coordinator

import "os"

// insertRange is Linux's only: elsewhere the publish concatenates the parts.
func insertRange(*os.File, int64) error { return errInsertUnsupported }

// blockSize is unused where blocks cannot be inserted.
func blockSize(*os.File) (int64, error) { return 4096, nil }

// startWriteback does nothing: the publish syncs.
func startWriteback(*os.File, int64, int64) {}

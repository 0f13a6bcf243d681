//go:build !linux

package coordinator

import "errors"

// sameFilesystem is false where a filesystem cannot be synced whole (no syncfs): a restore's
// unpacked files are copied, each synced on its way, rather than linked.
func sameFilesystem(a, b string) bool { return false }

// syncFilesystem is never needed here (sameFilesystem is false).
func syncFilesystem(dir string) error {
	return errors.New("syncing a whole filesystem is not supported on this system")
}

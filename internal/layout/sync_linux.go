package layout

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SyncTree makes everything under root durable, so that a published backup (or a restore's
// unpacked files, before they are linked into place) survives a crash:
// all of it is on disk before the rename that publishes it. One syncfs(2) of root's
// filesystem does it for any number of files (an fsync of each of a million files takes
// minutes); each writer has already synced what it wrote and checked for errors, so this is
// the last word, not the only one.
func SyncTree(root string) error {
	f, err := os.Open(root)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", root, err)
	}
	return nil
}

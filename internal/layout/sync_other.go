//go:build !linux

package layout

import (
	"io/fs"
	"path/filepath"
)

// SyncTree makes everything under root durable, so that a published backup (or a restore's
// unpacked files, before they are linked into place) survives a crash:
// all of it is on disk before the rename that publishes it. Without syncfs(2), every file and
// folder is synced one by one.
func SyncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		return syncPath(p)
	})
}

//go:build !unix

package coordinator

import (
	"os"
	"path/filepath"
)

// copyStats lstats a base folder's copies by their manifest paths.
type copyStats struct{ root string }

func newCopyStats(root string) *copyStats { return &copyStats{root: root} }

// regular returns the size and modification time of the copy at p (slash-separated, under
// root) when it is a regular file; ok is false for anything else, or nothing.
func (c *copyStats) regular(p string) (ok bool, size, modTime int64) {
	fi, err := os.Lstat(filepath.Join(c.root, filepath.FromSlash(p)))
	if err != nil || !fi.Mode().IsRegular() {
		return false, 0, 0
	}
	return true, fi.Size(), fi.ModTime().UnixNano()
}

func (c *copyStats) close() {}

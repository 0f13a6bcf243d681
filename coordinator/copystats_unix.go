//go:build unix

package coordinator

import (
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copyStats lstats a base folder's copies by their manifest paths through the open folder of
// the last path's parent: the paths of a sorted manifest come folder by folder, so each lstat
// looks up one name instead of walking the whole path (a third of the cost).
type copyStats struct {
	root string
	dir  string // the folder fd is open on, relative to root; fd is -1 when it failed to open
	fd   int
	open bool
}

func newCopyStats(root string) *copyStats { return &copyStats{root: root, fd: -1} }

// regular returns the size and modification time of the copy at p (slash-separated, under
// root) when it is a regular file; ok is false for anything else, or nothing.
func (c *copyStats) regular(p string) (ok bool, size, modTime int64) {
	dir, name := path.Split(p)
	if !c.open || dir != c.dir {
		c.close()
		c.dir, c.open = dir, true
		fd, err := unix.Open(filepath.Join(c.root, filepath.FromSlash(dir)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, 0, 0 // a folder gone: none of its copies is usable
		}
		c.fd = fd
	}
	if c.fd < 0 {
		return false, 0, 0
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(c.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return false, 0, 0
		}
		return true, st.Size, st.Mtim.Nano()
	}
}

// close closes the open folder.
func (c *copyStats) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	c.open = false
}

//go:build !linux

package storage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// canSyncFS: without syncfs(2), each commit syncs its own file.
const canSyncFS = false

func syncFS(*os.File) error { return errors.ErrUnsupported }

func startWriteback(*os.File) {}

func setModTime(_ *os.File, dir *os.Root, name string, mtime time.Time) error {
	return dir.Chtimes(name, time.Time{}, mtime) // by name: no portable futimens
}

// linkAt makes dname in folder d a hard link to sname in folder s, by their paths.
func linkAt(s *openDir, sname string, d *openDir, dname string) error {
	return os.Link(filepath.Join(s.root.Name(), sname), filepath.Join(d.root.Name(), dname))
}

// FileOwner returns the user and group that own the file fi describes: never known here, so
// owners are left as they are.
func FileOwner(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

// ChangeTime is fi's inode change time: not given here (zero).
func ChangeTime(fs.FileInfo) time.Time { return time.Time{} }

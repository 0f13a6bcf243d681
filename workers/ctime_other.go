//go:build !linux

package workers

import (
	"io/fs"
	"time"
)

// changeTime is fi's inode change time; off Linux it is not used (size and modification time
// still tell a changed file).
func changeTime(fs.FileInfo) time.Time { return time.Time{} }

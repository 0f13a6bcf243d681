package workers

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime is fi's inode change time (zero where the system does not give it).
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return time.Time{}
}

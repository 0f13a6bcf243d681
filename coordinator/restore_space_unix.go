//go:build linux || darwin

package coordinator

import (
	"io/fs"
	"syscall"
)

// freedBy is the space replacing the file fi gives back: its blocks, unless another link
// keeps them (or it is no regular file, which the restore does not replace).
func freedBy(fi fs.FileInfo) int64 {
	if !fi.Mode().IsRegular() {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return fi.Size()
	case st.Nlink > 1:
		return 0
	}
	return int64(st.Blocks) * 512
}

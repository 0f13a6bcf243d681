//go:build !(linux || darwin)

package coordinator

import "io/fs"

// freedBy is the space replacing the file fi gives back: its size (links cannot be told
// here), or nothing when it is no regular file.
func freedBy(fi fs.FileInfo) int64 {
	if !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Size()
}

package coordinator

import "syscall"

// sameFilesystem tells whether the existing paths a and b are on one filesystem (device).
func sameFilesystem(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

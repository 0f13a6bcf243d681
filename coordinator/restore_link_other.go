//go:build !linux

package coordinator

// sameFilesystem is false where a filesystem cannot be synced whole (no syncfs): a restore's
// unpacked files are copied, each synced on its way, rather than linked.
func sameFilesystem(a, b string) bool { return false }

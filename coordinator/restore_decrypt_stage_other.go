//go:build !(linux || darwin)

package coordinator

// diskFree cannot tell on this system.
func diskFree(string) int64 { return -1 }

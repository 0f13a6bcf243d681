//go:build unix && !linux

package scratch

import (
	"errors"
	"syscall"
)

// startTime is 0 where the start time cannot be read cheaply: only the pid is compared.
func startTime(int) uint64 { return 0 }

// alive reports whether a process with the pid exists (a pid reused since keeps the
// leftovers until that process ends too).
func alive(pid int, _ uint64) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

package scratch

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// startTime is the process's start time in clock ticks since boot (field 22 of
// /proc/<pid>/stat), which tells a process from a later one that got the same pid; 0 when
// the process does not exist.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces and parentheses: count from its end.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	const startField = 22 - 3 // fields after the name start at field 3
	if len(fields) <= startField {
		return 0
	}
	t, err := strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return 0
	}
	return t
}

// alive reports whether the process that made a tag still runs: pid exists and started when
// the tag says. Without /proc (or a tag made without it) only the pid is checked.
func alive(pid int, start uint64) bool {
	if t := startTime(pid); t != 0 {
		return start == 0 || t == start
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

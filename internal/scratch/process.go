package scratch

// ProcessStart returns an identifier of when process pid started (clock ticks since boot on
// Linux; 0 where it cannot be read or the process does not exist). With the pid it tells a
// process from a later one that got the same pid.
func ProcessStart(pid int) uint64 { return startTime(pid) }

// ProcessAlive reports whether process pid runs and, when start is not 0 and start times can
// be read, started at start.
func ProcessAlive(pid int, start uint64) bool { return alive(pid, start) }

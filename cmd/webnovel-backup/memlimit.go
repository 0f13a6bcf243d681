package main

import (
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT says otherwise.
//
// Why: a run's live heap is small and flat (tens of MB: fixed buffers, not per file), but
// with the default GOGC the heap may grow to twice the live heap before a collection, and
// memory freed by bursts (8 MB upload part buffers, sort runs) goes back to the system only
// slowly; the process's RSS was then well over 100 MB at a live heap of about 40 MB. A soft
// limit makes the collector run earlier and return freed memory once the total nears it.
//
// Care: it is soft. A run whose live heap really needs more keeps working (the runtime caps
// the collector's share of CPU when it cannot get under the limit); it only collects more
// often, which is why the limit sits well above the live heap we measured, not at it.
// GOMEMLIMIT (any value, "off" included) replaces it.
//
// 48 MiB: the process's RSS is this plus about 36 MiB of the binary's own mapped pages; at
// 64 MiB the collector let freed memory pile up to a peak RSS near 100 MB, while the live
// heap of a 100k-file backup stays near 20 MiB, so 48 MiB still leaves it twice that.
const defaultMemoryLimit = 48 << 20

// setMemoryLimit applies defaultMemoryLimit unless getenv("GOMEMLIMIT") is set, and returns
// the limit in force.
func setMemoryLimit(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1) // the runtime has read it already
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	return defaultMemoryLimit
}

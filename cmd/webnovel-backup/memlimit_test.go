package main

import (
	"runtime/debug"
	"testing"
)

// The command runs under a soft memory limit of its own, unless GOMEMLIMIT sets one (or
// "off"): then the runtime's reading of it stands.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, tc := range []struct {
		name, env string
		before    int64
		want      int64
	}{
		{"unset: the default", "", 1 << 40, defaultMemoryLimit},
		{"GOMEMLIMIT set: left alone", "200MiB", 200 << 20, 200 << 20},
		{"GOMEMLIMIT=off: left alone", "off", 1 << 62, 1 << 62},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(tc.before) // as the runtime would have read GOMEMLIMIT
			got := setMemoryLimit(func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.env
				}
				return ""
			})
			if now := debug.SetMemoryLimit(-1); got != tc.want || now != tc.want {
				t.Errorf("GOMEMLIMIT=%q: returned %d, limit in force %d, want %d", tc.env, got, now, tc.want)
			}
		})
	}
}

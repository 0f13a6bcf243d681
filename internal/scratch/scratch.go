// Package scratch makes temporary files and folders named after the process that owns them
// (its pid and start time) and removes those whose owner is gone. A process ended by SIGKILL
// or a power cut runs none of its clean-up, so the next process that makes the same kind of
// temporary file removes what the dead one left: a SQLite snapshot copy is a whole database.
package scratch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Kinds are the prefixes of the program's temporary files and folders, each followed by an
// owner tag: SweepAll removes the dead owners' leftovers of every kind.
var Kinds = []string{"wnb-snapshot-", "wnb-sums-", "wnb-nats-", "wnb-restore-", "wnb-verify-", "wnb-roundtrip-"}

// SweepAll is Sweep for every one of Kinds; it returns the paths removed.
func SweepAll(dir string) []string {
	var removed []string
	for _, k := range Kinds {
		removed = append(removed, Sweep(dir, k)...)
	}
	return removed
}

// MkdirTemp sweeps dir (os.TempDir() when "") of prefix folders and files whose owner is dead,
// then creates a new folder there named prefix, this process's owner tag and a random part.
func MkdirTemp(dir, prefix string) (string, error) {
	dir = orTempDir(dir)
	Sweep(dir, prefix)
	name, err := os.MkdirTemp(dir, prefix+selfTag()+"*")
	if err != nil {
		return "", fmt.Errorf("make temporary folder %s*: %w", filepath.Join(dir, prefix), err)
	}
	return name, nil
}

// CreateTemp is MkdirTemp for a file: pattern is prefix*suffix as for os.CreateTemp (a pattern
// without "*" has the random part at its end).
func CreateTemp(dir, pattern string) (*os.File, error) {
	dir = orTempDir(dir)
	prefix, suffix, found := strings.Cut(pattern, "*")
	Sweep(dir, prefix)
	name := prefix + selfTag() + "*"
	if found {
		name += suffix
	}
	f, err := os.CreateTemp(dir, name)
	if err != nil {
		return nil, fmt.Errorf("make temporary file %s: %w", filepath.Join(dir, pattern), err)
	}
	return f, nil
}

// Sweep removes the entries of dir named prefix followed by an owner tag whose process is no
// longer running, and returns their paths. Entries without a tag are never touched: their
// owner cannot be known. A sweep is best effort: what cannot be read or removed stays.
func Sweep(dir, prefix string) []string {
	dir = orTempDir(dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pid, start, ok := parseTag(rest)
		if !ok || alive(pid, start) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err == nil || errors.Is(err, fs.ErrNotExist) {
			removed = append(removed, p)
		}
	}
	return removed
}

func orTempDir(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}

// selfTag is this process's owner tag: "<pid>.<start>-".
var selfTag = sync.OnceValue(func() string {
	return tag(os.Getpid(), startTime(os.Getpid()))
})

func tag(pid int, start uint64) string {
	return strconv.Itoa(pid) + "." + strconv.FormatUint(start, 10) + "-"
}

// parseTag reads "<pid>.<start>-" at the start of s.
func parseTag(s string) (pid int, start uint64, ok bool) {
	p, rest, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, false
	}
	st, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(st, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return pid, start, true
}

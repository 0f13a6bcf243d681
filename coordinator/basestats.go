package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// baseStats reads a self-indexed base's SHA256SUMS and lstats each listed copy on its own
// goroutine, while the coordinator walks the storage: the two were the plan's largest costs
// and took turns on one core. What it finds is handed to the join, in the manifest's (path)
// order, in batches through a channel of a few: the join reads them forward as the walk asks
// for paths, and memory does not grow with the number of files.
type baseStats struct {
	*ahead[statRecord]
	// files and took are what the gathering read and how long it ran (set before the
	// producer ends).
	files int
	took  time.Duration
}

// statBatch is how many records go through the channel at once, and statBatches how many
// batches it holds: enough to keep both sides busy, little memory.
const (
	statBatch   = 1024
	statBatches = 8
)

// statRecord is one manifest line under files/: its path and sum, and its copy's size and
// modification time when the copy is a regular file that may be reused (ok).
type statRecord struct {
	path    string
	sum     string
	ok      bool
	size    int64
	modTime int64
}

// startBaseStats starts reading base b's manifest and copies; nil when b is not self-indexed
// (its index has the sizes and times).
func startBaseStats(ctx context.Context, b *baseBackup) *baseStats {
	if b == nil || b.meta.Files.Index != "" || !b.meta.Files.SelfIndexed {
		return nil
	}
	s := &baseStats{}
	s.ahead = startAhead(ctx, statBatch, statBatches, func(ctx context.Context, emit func(statRecord) error) error {
		start := time.Now()
		defer func() { s.took = time.Since(start) }()
		if err := s.gather(ctx, b, emit); err != nil {
			return fmt.Errorf("base backup %s: %w", b.name, err)
		}
		return nil
	})
	return s
}

// logTo logs, at debug level, what the gathering read and how much of it the walk hid.
func (s *baseStats) logTo(log *slog.Logger) {
	if s != nil {
		log.Debug("base copies stat'ed", "files", s.files, "took", s.took.Round(time.Millisecond), "join_waited", s.waited.Round(time.Millisecond))
	}
}

// stop ends the gathering, if it still runs, and waits for it.
func (s *baseStats) stop() {
	if s != nil {
		s.ahead.stop()
	}
}

// gather sends a statRecord for each files/ line of the manifest, which must be sorted (each
// path once) as this tool writes it: the join relies on that order.
func (s *baseStats) gather(ctx context.Context, b *baseBackup, emit func(statRecord) error) error {
	rc, _, err := b.root.Open(ctx, b.name+"/"+layout.FileSums)
	if err != nil {
		return fmt.Errorf("read %s: %w", layout.FileSums, err)
	}
	defer rc.Close()
	// A local bucket's String is its folder (baseFits takes only a local base as
	// self-indexed).
	copies := newCopyStats(filepath.Join(b.root.String(), b.name))
	defer copies.close()
	changed := make(map[string]bool, len(b.meta.Files.ChangedDuringBackup))
	for _, p := range b.meta.Files.ChangedDuringBackup {
		changed[p] = true
	}
	var last string
	first := true
	return layout.EachSum(rc, func(p, sum string) error {
		if !first && p <= last {
			return fmt.Errorf("%s: %q is not after %q (a manifest this tool wrote is sorted, each path once)", layout.FileSums, p, last)
		}
		first, last = false, p
		if !strings.HasPrefix(p, layout.FilesDir+"/") {
			return nil // fixtures and such: never a listed file
		}
		s.files++
		rec := statRecord{path: p, sum: sum}
		// A file that changed as the base read it has a copy whose time is not its
		// content's: never taken as unchanged.
		if !changed[p] {
			rec.ok, rec.size, rec.modTime = copies.regular(p)
		}
		return emit(rec)
	})
}

// statReader reads, forward, what a baseStats gathers.
type statReader struct {
	join forwardJoin[statRecord]
	last string // the last path asked for
}

// open returns the reader of what the gathering finds.
func (s *baseStats) open() *statReader {
	return &statReader{join: forwardJoin[statRecord]{next: s.next, path: func(rec *statRecord) string { return rec.path }}}
}

// find returns the record of path; paths must be asked for in increasing order.
func (x *statReader) find(path string) (statRecord, bool, error) {
	if x.last != "" && path <= x.last {
		return statRecord{}, false, fmt.Errorf("%q asked for after %q (the listing must be sorted)", path, x.last)
	}
	x.last = path
	return x.join.find(path)
}

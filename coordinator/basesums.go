package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// baseSums reads a self-indexed base's SHA256SUMS on its own goroutine, while the
// coordinator walks the storage, and hands its files/ lines to the join in the manifest's
// (path) order, in batches through a channel of a few: the join reads them forward as the walk
// asks for paths, and memory does not grow with the number of files.
//
// The base's copies are not stat'ed here: the worker that links a copy checks, by the link's
// own lstat, that it has the file's size and modification time (CopyTask.SelfIndexedBase), and
// copies the file otherwise. A stat here as well was a second lstat of every copy, on the
// plan's path before any task starts.
type baseSums struct {
	*ahead[sumRecord]
	// files and took are what the gathering read and how long it ran (set before the
	// producer ends).
	files int
	took  time.Duration
}

// sumBatch is how many records go through the channel at once, and sumBatches how many
// batches it holds: enough to keep both sides busy, little memory.
const (
	sumBatch   = 1024
	sumBatches = 8
)

// sumRecord is one manifest line under files/: its path and sum, and whether its copy may
// be reused (ok: the file did not change as the base read it).
type sumRecord struct {
	path string
	sum  string
	ok   bool
}

// startBaseSums starts reading base b's manifest; nil when b is not self-indexed (its index
// has the sums, sizes and times).
func startBaseSums(ctx context.Context, b *baseBackup) *baseSums {
	if b == nil || b.meta.Files.Index != "" || !b.meta.Files.SelfIndexed {
		return nil
	}
	s := &baseSums{}
	s.ahead = startAhead(ctx, sumBatch, sumBatches, func(ctx context.Context, emit func(sumRecord) error) error {
		start := time.Now()
		defer func() { s.took = time.Since(start) }()
		if err := s.gather(ctx, b, emit); err != nil {
			return baseReadFailed(b.name, err)
		}
		return nil
	})
	return s
}

// logTo logs, at debug level, what the gathering read and how much of it the walk hid.
func (s *baseSums) logTo(log *slog.Logger) {
	if s != nil {
		log.Debug("base manifest read", "files", s.files, "took", s.took.Round(time.Millisecond), "join_waited", s.waited.Round(time.Millisecond))
	}
}

// stop ends the gathering, if it still runs, and waits for it.
func (s *baseSums) stop() {
	if s != nil {
		s.ahead.stop()
	}
}

// gather sends a sumRecord for each files/ line of the manifest, which must be sorted (each
// path once) as this tool writes it: the join relies on that order.
func (s *baseSums) gather(ctx context.Context, b *baseBackup, emit func(sumRecord) error) error {
	rc, _, err := b.root.Open(ctx, b.name+"/"+layout.FileSums)
	if err != nil {
		return fmt.Errorf("read %s: %w", layout.FileSums, err)
	}
	defer rc.Close()
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
		// A file that changed as the base read it has a copy whose time is not its
		// content's: never taken as unchanged.
		return emit(sumRecord{path: p, sum: sum, ok: !changed[p]})
	})
}

// sumReader reads, forward, what a baseSums gathers.
type sumReader struct {
	join forwardJoin[sumRecord]
	last string // the last path asked for
}

// open returns the reader of what the gathering finds.
func (s *baseSums) open() *sumReader {
	return &sumReader{join: forwardJoin[sumRecord]{next: s.next, path: func(rec *sumRecord) string { return rec.path }}}
}

// find returns the record of path; paths must be asked for in increasing order.
func (x *sumReader) find(path string) (sumRecord, bool, error) {
	if x.last != "" && path <= x.last {
		return sumRecord{}, false, fmt.Errorf("%q asked for after %q (the listing must be sorted)", path, x.last)
	}
	x.last = path
	return x.join.find(path)
}

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
	batches chan []statRecord
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // set before done and batches close
	// files and took are what the gathering read and how long it ran (set before done
	// closes); waited is how long the join waited for it: the part not overlapped.
	files  int
	took   time.Duration
	waited time.Duration
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
	ctx, cancel := context.WithCancel(ctx)
	s := &baseStats{batches: make(chan []statRecord, statBatches), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.batches)
		start := time.Now()
		defer func() { s.took = time.Since(start) }()
		if err := s.gather(ctx, b); err != nil {
			s.err = fmt.Errorf("base backup %s: %w", b.name, err)
		}
	}()
	return s
}

// logTo logs, at debug level, what the gathering read and how much of it the walk hid.
func (s *baseStats) logTo(log *slog.Logger) {
	if s != nil {
		log.Debug("base copies stat'ed", "files", s.files, "took", s.took.Round(time.Millisecond), "join_waited", s.waited.Round(time.Millisecond))
	}
}

// stop ends the gathering, if it still runs, and waits for it (before the spill folder goes).
func (s *baseStats) stop() {
	if s != nil {
		s.cancel()
		<-s.done
	}
}

// gather sends a statRecord for each files/ line of the manifest, which must be sorted (each
// path once) as this tool writes it: the join relies on that order.
func (s *baseStats) gather(ctx context.Context, b *baseBackup) error {
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
	batch := make([]statRecord, 0, statBatch)
	err = layout.EachSum(rc, func(p, sum string) error {
		if len(batch) > 0 && p <= last {
			return fmt.Errorf("%s: %q is not after %q (a manifest this tool wrote is sorted, each path once)", layout.FileSums, p, last)
		}
		last = p
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
		if batch = append(batch, rec); len(batch) == statBatch {
			if err := s.send(ctx, batch); err != nil {
				return err
			}
			batch = make([]statRecord, 0, statBatch)
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = s.send(ctx, batch)
	}
	return err
}

// send hands a batch to the join, unless the run ends first.
func (s *baseStats) send(ctx context.Context, batch []statRecord) error {
	select {
	case s.batches <- batch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statReader reads, forward, what a baseStats gathers.
type statReader struct {
	s     *baseStats
	batch []statRecord
	join  forwardJoin[statRecord]
	last  string // the last path asked for
}

// open returns the reader of what the gathering finds.
func (s *baseStats) open() *statReader {
	r := &statReader{s: s}
	r.join = forwardJoin[statRecord]{next: r.next, path: func(rec *statRecord) string { return rec.path }}
	return r
}

// next returns the gathering's next record, waiting for it.
func (x *statReader) next() (statRecord, bool, error) {
	if len(x.batch) == 0 {
		start := time.Now()
		b, ok := <-x.s.batches
		x.s.waited += time.Since(start)
		if !ok {
			return statRecord{}, false, x.s.err
		}
		x.batch = b
	}
	rec := x.batch[0]
	x.batch = x.batch[1:]
	return rec, true, nil
}

// find returns the record of path; paths must be asked for in increasing order.
func (x *statReader) find(path string) (statRecord, bool, error) {
	if x.last != "" && path <= x.last {
		return statRecord{}, false, fmt.Errorf("%q asked for after %q (the listing must be sorted)", path, x.last)
	}
	x.last = path
	return x.join.find(path)
}

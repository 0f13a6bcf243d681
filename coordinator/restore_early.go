package coordinator

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// EarlySums hashes a parallel restore's fixtures while the command's preflight connects to
// the target. A parallel load (--jobs) cannot hash them as it reads them, as a one-transaction
// load does: its first commit comes before its reads and waits for their check, which,
// started once the preflight was done, still ran when the load's preparation was ready.
// The restore compares what EarlySums found with SHA256SUMS and the metadata, as it compares
// its own hashes, and hashes itself the files EarlySums has not started.
//
// One goroutine hashes, largest file first: the preflight's round trips need the server,
// which on a small machine shares the client's cores, and more hashing goroutines delayed
// the preflight by as much as they gained.
type EarlySums struct {
	dir      string
	files    map[string]*earlySum // by path relative to dir
	stop     context.CancelFunc
	finished chan struct{} // closed once the hashing ended, done or stopped
}

// earlySum is one file's hash, known once ready is closed.
type earlySum struct {
	state atomic.Int32 // pending, then hashing (by EarlySums) or taken (by the restore)
	ready chan struct{}
	sum   string
	size  int64
	err   error
}

// An earlySum's states.
const (
	earlyPending int32 = iota
	earlyHashing
	earlyTaken
)

// StartEarlySums starts hashing the fixtures that a restore with o checks just before its
// load, when that is known before the restore starts: a parallel restore (Jobs > 1) of a
// local, unencrypted backup folder, unconfirmed and not a dry run (those check before they
// show the plan). It returns nil otherwise, and for a backup it cannot read: the restore
// hashes the fixtures itself and reports what is wrong. Stop ends the hashing.
func StartEarlySums(ctx context.Context, o RestoreOptions) *EarlySums {
	files := earlyFixtures(o)
	if len(files) == 0 {
		return nil
	}
	e := newEarlySums(o.Source, files)
	e.start(ctx, files)
	return e
}

// earlyFile is a fixture EarlySums hashes.
type earlyFile struct {
	rel  string
	size int64
}

// earlyFixtures are the fixtures of StartEarlySums, largest first (none: start nothing).
func earlyFixtures(o RestoreOptions) []earlyFile {
	if o.Jobs <= 1 || !deferFixtureSums(o) || o.Select != nil || storage.IsS3(o.Source) {
		return nil
	}
	meta, err := layout.ReadMetadata(o.Source)
	if err != nil || meta.Encryption != nil {
		return nil
	}
	models, err := selectModels(o.Source, meta, o.Models)
	if err != nil {
		return nil
	}
	var files []earlyFile
	for _, m := range models {
		rel := m.FixtureName()
		if fi, err := os.Stat(filepath.Join(o.Source, rel)); err == nil {
			files = append(files, earlyFile{rel, fi.Size()})
		}
	}
	slices.SortStableFunc(files, func(a, b earlyFile) int { return cmp.Compare(b.size, a.size) })
	return files
}

func newEarlySums(dir string, files []earlyFile) *EarlySums {
	e := &EarlySums{dir: dir, files: make(map[string]*earlySum, len(files)), stop: func() {}, finished: make(chan struct{})}
	for _, f := range files {
		e.files[f.rel] = &earlySum{ready: make(chan struct{})}
	}
	return e
}

// start hashes files in their order, on one goroutine, skipping those the restore took.
func (e *EarlySums) start(ctx context.Context, files []earlyFile) {
	ctx, e.stop = context.WithCancel(ctx)
	go func() {
		defer close(e.finished)
		for _, f := range files {
			s := e.files[f.rel]
			if !s.state.CompareAndSwap(earlyPending, earlyHashing) {
				continue // the restore hashes it
			}
			sum, size, err := layout.HashFile(ctx, filepath.Join(e.dir, f.rel))
			if ctx.Err() != nil {
				return // stopped: the restore hashes what is left
			}
			s.sum, s.size, s.err = sum, size, err
			close(s.ready)
		}
	}()
}

// Stop stops the hashing and waits for it to end (nil: nothing to stop).
func (e *EarlySums) Stop() {
	if e == nil {
		return
	}
	e.stop()
	<-e.finished
}

// sum returns the hash and size of the file rel in the backup folder dir, waiting for it
// when EarlySums is hashing it; ok is false when EarlySums has not started it (another
// folder, another file, not reached yet, or stopped first): the caller hashes it itself.
func (e *EarlySums) sum(ctx context.Context, dir, rel string) (sum string, size int64, ok bool, err error) {
	if e == nil || filepath.Clean(dir) != filepath.Clean(e.dir) {
		return "", 0, false, nil
	}
	s := e.files[rel]
	if s == nil || s.state.CompareAndSwap(earlyPending, earlyTaken) {
		return "", 0, false, nil
	}
	select {
	case <-s.ready:
	case <-e.finished:
		select {
		case <-s.ready: // hashed just before the end
		default:
			return "", 0, false, nil
		}
	case <-ctx.Done():
		return "", 0, false, ctx.Err()
	}
	return s.sum, s.size, true, s.err
}

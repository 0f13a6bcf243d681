package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/archive"
)

// A local compressed backup's archive is built while the run copies: each copy task's part is
// appended to one file in the staging area (the body) as soon as its result arrives, while
// the workers go on, so that the publish does not write the parts a second time at the end.
// The publish then inserts whole file-system blocks at the body's start (FALLOC_FL_INSERT_RANGE:
// no byte of the parts moves), writes the first part into them (padded to fill them exactly),
// appends the end, and links the body to its name. The parts go in in the order their tasks
// finished, which tar does not mind; the archive manifest records that order, so that a
// publish that must start again (resumed after a kill, or on a file system that cannot insert
// blocks) concatenates the parts exactly as the body has them. Only the process that built a
// body trusts it: a resumed run appends afresh.

// archiveBodyFile is the body's key in the staging area.
const archiveBodyFile = internalDir + "/archive.body"

// archiveBody appends parts, in the order they are added, to the body file on a goroutine of
// its own.
type archiveBody struct {
	dir string // the staging folder: part keys are relative to it
	f   *os.File
	log *slog.Logger

	mu       sync.Mutex
	queued   []string        // parts in the order they were added
	seen     map[string]bool // queued, so that a part added twice goes in once
	closed   bool
	stopped  bool // discarded: append nothing more
	wake     chan struct{}
	done     chan struct{}
	err      error
	appended []appendedPart
	size     int64
}

// appendedPart is a part as it was when appended: the publish checks that no part changed
// since (a task run again after its result arrived rewrites its part).
type appendedPart struct {
	key  string
	info os.FileInfo
}

// newArchiveBody starts an empty body in the staging folder dir (a predecessor's is
// replaced: it is not trusted).
func newArchiveBody(ctx context.Context, dir string, log *slog.Logger) (*archiveBody, error) {
	if err := os.MkdirAll(filepath.Join(dir, internalDir), 0o700); err != nil {
		return nil, fmt.Errorf("backup: start the archive: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(archiveBodyFile)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: start the archive: %w", err)
	}
	if err := probeInsert(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	b := &archiveBody{dir: dir, f: f, log: log, seen: map[string]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go b.run(ctx)
	return b, nil
}

// probeInsert checks, on the empty file f, that its file system inserts blocks, and leaves
// it empty: a body the publish could not complete would only cost a copy of every part.
func probeInsert(f *os.File) error {
	blk, err := blockSize(f)
	if err != nil {
		return err
	}
	if _, err := f.Write(make([]byte, blk)); err != nil {
		return fmt.Errorf("backup: start the archive: %w", err)
	}
	if err := insertRange(f, blk); err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("backup: start the archive: %w", err)
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// add queues a part (a key of the staging area) to append; it does not wait.
func (b *archiveBody) add(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.seen[key] {
		return
	}
	b.seen[key] = true
	b.queued = append(b.queued, key)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run appends the queued parts until the body is closed and every part is in, or an append
// fails (the publish then concatenates the parts itself), or ctx ends.
func (b *archiveBody) run(ctx context.Context) {
	defer close(b.done)
	for next := 0; ; {
		b.mu.Lock()
		pending, closed, stopped := b.queued[next:], b.closed, b.stopped
		b.mu.Unlock()
		if stopped {
			return
		}
		for _, key := range pending {
			if b.isStopped() {
				return
			}
			if err := b.append(key); err != nil {
				b.fail(err)
				return
			}
			next++
		}
		if len(pending) > 0 {
			continue
		}
		if closed {
			return
		}
		select {
		case <-b.wake:
		case <-ctx.Done():
			b.fail(ctx.Err())
			return
		}
	}
}

func (b *archiveBody) isStopped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped
}

func (b *archiveBody) fail(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

// append copies one part to the body's end (copy_file_range: the kernel copies, in the page
// cache) and starts writing it to disk, so that the publish's sync finds little left to do.
func (b *archiveBody) append(key string) error {
	part, err := os.Open(filepath.Join(b.dir, filepath.FromSlash(key)))
	if err != nil {
		return fmt.Errorf("archive part %s: %w", key, err)
	}
	defer part.Close()
	info, err := part.Stat()
	if err != nil {
		return fmt.Errorf("archive part %s: %w", key, err)
	}
	n, err := io.Copy(b.f, part)
	if err == nil && n != info.Size() {
		err = fmt.Errorf("copied %d bytes of %d", n, info.Size())
	}
	if err != nil {
		return fmt.Errorf("archive part %s: %w", key, err)
	}
	startWriteback(b.f, b.size, n)
	b.size += n
	b.appended = append(b.appended, appendedPart{key: key, info: info})
	return nil
}

// order is the parts added so far, in order.
func (b *archiveBody) order() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.queued)
}

// finish waits until every added part is in the body; an error says the body cannot be used.
func (b *archiveBody) finish() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-b.done
	return b.err
}

// unchanged checks that every part of the body is the file it was when appended.
func (b *archiveBody) unchanged() error {
	for _, a := range b.appended {
		now, err := os.Stat(filepath.Join(b.dir, filepath.FromSlash(a.key)))
		if err != nil {
			return fmt.Errorf("archive part %s: %w", a.key, err)
		}
		if !os.SameFile(now, a.info) || now.Size() != a.info.Size() || !now.ModTime().Equal(a.info.ModTime()) {
			return fmt.Errorf("archive part %s was written again after it went into the archive", a.key)
		}
	}
	return nil
}

// discard stops the body and removes its file (nil: nothing to do).
func (b *archiveBody) discard() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.finish() //nolint:errcheck // the body is given up
	b.f.Close()
	os.Remove(b.f.Name())
}

// complete makes the body the whole archive: the first part (with a pad) in blocks inserted
// at its start, the end appended, all synced. errInsertUnsupported: the file system cannot
// insert blocks, and the body is as it was.
func (b *archiveBody) complete(ctx context.Context, comp archive.Compression, head func(w io.Writer) error) (int64, error) {
	hf, err := os.CreateTemp(filepath.Join(b.dir, internalDir), "head-*.tmp")
	if err != nil {
		return 0, fmt.Errorf("write the archive's first part: %w", err)
	}
	defer os.Remove(hf.Name())
	defer hf.Close()
	if err := head(hf); err != nil {
		return 0, fmt.Errorf("write the archive's first part: %w", err)
	}
	h, err := hf.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("write the archive's first part: %w", err)
	}
	blk, err := blockSize(b.f)
	if err != nil {
		return 0, err
	}
	pad := archive.PadFor(comp, h, blk)
	if err := insertRange(b.f, h+pad); err != nil {
		return 0, err
	}
	if err := b.writeFront(comp, hf, h, pad); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := b.f.Seek(0, io.SeekEnd); err != nil {
		return 0, err
	}
	if err := archive.WriteEnd(b.f, comp); err != nil {
		return 0, fmt.Errorf("write the archive's end: %w", err)
	}
	return h + pad + b.size, nil
}

// writeFront writes the first part (h bytes in hf) and the pad into the blocks inserted at the
// body's start: a plain tar's pad (a pax header) before the first part, a gzip or zstd pad
// after it (the first bytes tell the compression).
func (b *archiveBody) writeFront(comp archive.Compression, hf *os.File, h, pad int64) error {
	headAt, padAt := int64(0), h
	if comp == archive.None {
		headAt, padAt = pad, 0
	}
	if err := archive.WritePad(io.NewOffsetWriter(b.f, padAt), comp, pad); err != nil {
		return fmt.Errorf("write the archive's first part: %w", err)
	}
	if _, err := b.f.Seek(headAt, io.SeekStart); err != nil {
		return err
	}
	if _, err := hf.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.CopyN(b.f, hf, h); err != nil {
		return fmt.Errorf("write the archive's first part: %w", err)
	}
	return nil
}

// errInsertUnsupported: the body's file system cannot insert blocks into a file.
var errInsertUnsupported = errors.New("the file system cannot insert blocks into a file")

// sameParts reports whether a and b hold the same parts, in any order.
func sameParts(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// startArchiveBody starts building a local compressed backup's archive during the copies
// (not an encrypted one: its age stream must be written from its start), with the parts the
// run's previous generations finished first, in plan order. Without a body (a file system
// that cannot insert blocks) the publish concatenates the parts.
func (r *backupRun) startArchiveBody(ctx context.Context) {
	d, ok := r.stage.(*localDestination)
	if !ok || !r.o.Compress || r.archiveEncrypted() || r.body != nil {
		return
	}
	b, err := newArchiveBody(ctx, d.stage.Path(), r.log)
	if err != nil || b == nil {
		r.log.Debug("the archive is built at the publish", "reason", err)
		return
	}
	r.body = b
	for _, t := range r.tasks {
		if t.Copy != nil && t.Copy.Archive != nil && r.done[t.ID] != nil {
			b.add(t.Copy.Archive.Output)
		}
	}
}

// partDone queues the part of the copy task id, just finished, into the archive's body.
func (r *backupRun) partDone(id string) {
	if r.body == nil {
		return
	}
	for _, t := range r.tasks {
		if t.ID == id && t.Copy != nil && t.Copy.Archive != nil {
			r.body.add(t.Copy.Archive.Output)
			return
		}
	}
}

// publishBody publishes the archive built during the copies, if the run has one whose parts
// are those of m, in its order, unchanged since they went in, and the file system inserts
// blocks; ok false: the caller concatenates the parts instead.
func (d *localDestination) publishBody(ctx context.Context, name string, m *archiveManifest, comp archive.Compression, p publishOptions) (final string, ok bool, err error) {
	b := p.body
	if b == nil || p.seal != nil {
		return "", false, nil
	}
	if err := b.finish(); err != nil || !slices.Equal(b.order(), m.Parts) {
		b.log.Debug("the archive built during the copies is given up", "err", err)
		b.discard()
		return "", false, nil
	}
	if err := b.unchanged(); err != nil {
		b.log.Warn("the archive is built again from its parts", "reason", err)
		b.discard()
		return "", false, nil
	}
	if p.archiveTotal != nil {
		p.archiveTotal(b.size)
	}
	skip := func(rel string) bool { return rel == internalDir }
	total, err := b.complete(ctx, comp, func(w io.Writer) error {
		_, err := archive.WriteHead(ctx, w, comp, d.stage.Path(), m.Top, skip)
		return err
	})
	if errors.Is(err, errInsertUnsupported) {
		b.log.Debug("the archive is built again from its parts", "reason", err)
		b.discard()
		return "", false, nil
	}
	if err != nil {
		return "", true, err
	}
	if p.archived != nil {
		p.archived(total) // the first call halts there, for the tests that kill a publish
	}
	final, err = d.stage.PublishBuilt(name, b.f.Name())
	b.f.Close()
	return final, true, err
}

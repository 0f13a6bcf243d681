package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/messages"
)

// On a local destination the archive's parts are also concatenated, in plan order, while the
// copy tasks run: each part is appended to the body as soon as it and every part before it are
// done, so the copy of the parts overlaps the copying of the files. The publish then only puts
// the head in front of the body, in place (fallocate's INSERT_RANGE: no data is moved), and
// the end after it. Where the file system cannot insert, or the body is not known complete,
// the publish concatenates the parts as before.

// bodyFile is the parts concatenated; bodyMark, written once the body is complete and synced,
// says which parts it holds and its size. The mark is removed before the body is changed in
// place, so a body a killed publish left half changed is never used again.
const (
	bodyFile = internalDir + "/archive.body"
	bodyMark = internalDir + "/archive.body.json"
)

// bodyAlign is the block size an inserted head is padded to (INSERT_RANGE works in blocks).
const bodyAlign = 4096

type bodyRecord struct {
	Parts []string `json:"parts"`
	Size  int64    `json:"size"`
}

// bodyBuilder appends finished parts to the body in a goroutine of its own.
type bodyBuilder struct {
	dir   string
	parts []string
	index map[string]int // task id → its part's position
	f     *os.File
	size  int64

	mu      sync.Mutex
	ready   []bool
	next    int
	closing bool
	wake    chan struct{}
	done    chan error
}

// startBody starts the body of a local compressed backup's copy tasks (nil when there is
// none to build); the parts of tasks done already are ready.
func (r *backupRun) startBody(done map[string]*messages.Result) (*bodyBuilder, error) {
	l, ok := r.stage.(*localDestination)
	if !ok || !r.o.Compress || archive.MinPadding(r.compression()) == 0 {
		return nil, nil
	}
	b := &bodyBuilder{dir: l.stage.Path(), index: map[string]int{}, wake: make(chan struct{}, 1), done: make(chan error, 1)}
	for _, t := range r.tasks {
		if t.Copy != nil && t.Copy.Archive != nil {
			b.index[t.ID] = len(b.parts)
			b.parts = append(b.parts, t.Copy.Archive.Output)
			b.ready = append(b.ready, done[t.ID] != nil)
		}
	}
	if len(b.parts) == 0 {
		return nil, nil
	}
	os.Remove(filepath.Join(b.dir, bodyMark))
	f, err := os.OpenFile(filepath.Join(b.dir, bodyFile), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: archive body: %w", err)
	}
	b.f = f
	go func() { b.done <- b.run() }()
	b.poke()
	return b, nil
}

// taskDone makes a task's part ready to append.
func (b *bodyBuilder) taskDone(id string) {
	b.mu.Lock()
	if i, ok := b.index[id]; ok {
		b.ready[i] = true
	}
	b.mu.Unlock()
	b.poke()
}

func (b *bodyBuilder) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run appends the ready parts in order until every part is in, or until it is told to close.
func (b *bodyBuilder) run() error {
	for range b.wake {
		b.mu.Lock()
		closing := b.closing
		var batch []string
		for b.next < len(b.parts) && b.ready[b.next] {
			batch = append(batch, b.parts[b.next])
			b.next++
		}
		b.mu.Unlock()
		for _, key := range batch {
			if err := b.append(key); err != nil {
				return err
			}
		}
		if closing {
			return nil
		}
	}
	return nil
}

// append copies one part to the end of the body (copy_file_range between files).
func (b *bodyBuilder) append(key string) error {
	part, err := os.Open(filepath.Join(b.dir, filepath.FromSlash(key)))
	if err != nil {
		return fmt.Errorf("archive part %s: %w", key, err)
	}
	defer part.Close()
	n, err := io.Copy(b.f, part)
	b.size += n
	if err != nil {
		return fmt.Errorf("archive part %s: %w", key, err)
	}
	return nil
}

// finish waits for the last parts, syncs the body and marks it complete; ok says whether the
// run's tasks all succeeded (else the body is only closed).
func (b *bodyBuilder) finish(ok bool) error {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.poke()
	err := <-b.done
	defer b.f.Close()
	b.mu.Lock()
	complete := b.next == len(b.parts)
	b.mu.Unlock()
	if !ok || err != nil || !complete {
		return err
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("backup: archive body: %w", err)
	}
	data, err := json.Marshal(bodyRecord{Parts: b.parts, Size: b.size})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.dir, bodyMark), data, 0o600); err != nil {
		return fmt.Errorf("backup: archive body: %w", err)
	}
	return nil
}

// errNoBody: the body cannot be used; the publish concatenates the parts instead.
var errNoBody = errors.New("no complete archive body")

// publishBody publishes the archive by putting the head in front of the body, in place, and
// the end after it. It returns errNoBody, having changed nothing, when the body is not
// complete for these parts or the file system cannot insert.
func (d *localDestination) publishBody(ctx context.Context, m *archiveManifest, comp archive.Compression, name string, p publishOptions) (string, error) {
	dir := d.stage.Path()
	data, err := os.ReadFile(filepath.Join(dir, bodyMark))
	var rec bodyRecord
	if err != nil || json.Unmarshal(data, &rec) != nil || !slices.Equal(rec.Parts, m.Parts) {
		return "", errNoBody
	}
	body := filepath.Join(dir, bodyFile)
	if fi, err := os.Stat(body); err != nil || fi.Size() != rec.Size || rec.Size == 0 {
		return "", errNoBody
	}
	head, err := d.writeBodyHead(ctx, m, comp)
	if err != nil {
		return "", err
	}
	defer head.Close()
	hi, err := head.Stat()
	if err != nil {
		return "", err
	}
	// Unmarked first: from here on the body is changed in place, and a resume after a kill
	// concatenates the parts instead.
	if err := os.Remove(filepath.Join(dir, bodyMark)); err != nil {
		return "", fmt.Errorf("archive body: %w", err)
	}
	if err := syncPath(filepath.Join(dir, internalDir)); err != nil {
		return "", fmt.Errorf("archive body: %w", err)
	}
	f, err := os.OpenFile(body, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("archive body: %w", err)
	}
	defer f.Close()
	if err := insertRange(f, hi.Size()); err != nil {
		return "", errNoBody // unchanged: the file system cannot insert
	}
	if err := d.finishBody(ctx, f, head, hi.Size(), comp, p); err != nil {
		return "", err
	}
	slog.DebugContext(ctx, "archive published by inserting its head before the parts", "name", name, "head_bytes", hi.Size(), "parts_bytes", rec.Size)
	return d.stage.PublishLink(body, name)
}

// writeBodyHead writes the head (top folder, metadata, SHA256SUMS, restore.sh, fixtures) into
// a temporary file of the staging area, padded to a whole number of blocks.
func (d *localDestination) writeBodyHead(ctx context.Context, m *archiveManifest, comp archive.Compression) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Join(d.stage.Path(), internalDir), "archive-head-")
	if err != nil {
		return nil, fmt.Errorf("archive head: %w", err)
	}
	os.Remove(f.Name()) // nameless: gone with its descriptor
	skip := func(rel string) bool { return rel == internalDir }
	if _, err := archive.WriteHead(ctx, f, comp, d.stage.Path(), m.Top, skip); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the archive's first part: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		err = archive.Padding(f, comp, archive.PaddingTo(size, bodyAlign, comp))
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive head: %w", err)
	}
	return f, nil
}

// finishBody writes the head into the room inserted for it and the end after the body, and
// syncs the whole.
func (d *localDestination) finishBody(ctx context.Context, f, head *os.File, headSize int64, comp archive.Compression, p publishOptions) error {
	if _, err := io.Copy(io.NewOffsetWriter(f, 0), io.LimitReader(head, headSize)); err != nil {
		return fmt.Errorf("archive head: %w", err)
	}
	if p.archived != nil {
		p.archived(headSize) // the first call halts there, for the tests that kill a publish
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("archive end: %w", err)
	}
	if err := archive.WriteEnd(f, comp); err != nil {
		return fmt.Errorf("write the archive's end: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// syncPath syncs a folder's entries to disk.
func syncPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

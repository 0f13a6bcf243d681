package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// copyBackup runs a copy-backup task: it copies files of a complete backup into another
// destination. Neither side is the platform's storage, so no worker configuration is
// needed. Each key-list entry gives the file's key in Source (Stored), its key in Dest —
// or in the object store, when Objects is set — (Path) and the SHA-256 it must have; a file
// whose copy has another sum fails the task for good, naming it, and is never committed
// (streamed) or is reported before anything is published (server-side). An entry with Reuse
// is hard-linked from Base/Reuse when both ends are local folders, and copied when the link
// fails.
func (w *Worker) copyBackup(ctx context.Context, t *messages.Task) (res *messages.Result, err error) {
	c := t.Copy
	ctx, span := telemetry.Start(ctx, "storage.copy_backup", telemetry.KeyPrefix.String(c.Prefix))
	defer func() { telemetry.End(span, err) }()
	src, err := storage.Open(ctx, c.Source)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy backup %s: %w", c.Prefix, err))
	}
	defer src.Close()
	stage, err := storage.Open(ctx, t.Dest, storage.DeferSync())
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy backup %s: %w", c.Prefix, err))
	}
	defer stage.Close()
	dst := stage
	if c.Objects != "" {
		if dst, err = storage.Open(ctx, c.Objects); err != nil {
			return nil, Permanent(fmt.Errorf("copy backup %s: %w", c.Prefix, err))
		}
		defer dst.Close()
	}
	lists := stage
	if c.ListStore != "" {
		if lists, err = storage.Open(ctx, c.ListStore); err != nil {
			return nil, Permanent(fmt.Errorf("copy backup %s: %w", c.Prefix, err))
		}
		defer lists.Close()
	}
	list, _, err := lists.Open(ctx, c.KeyList)
	if err != nil {
		return nil, fmt.Errorf("copy backup %s: read key list: %w", c.Prefix, err)
	}
	defer list.Close()
	var entries []messages.FileEntry
	if err := messages.ReadFileList(list, func(e messages.FileEntry) error {
		entries = append(entries, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("copy backup %s: read key list: %w", c.Prefix, err)
	}
	var written atomic.Int64
	stop := w.reportProgress(ctx, t, &written)
	defer stop()
	res, err = w.copyEntries(ctx, src, dst, t, entries, &written)
	if err != nil {
		return nil, fmt.Errorf("copy backup %s: %w", c.Prefix, err)
	}
	if err := dst.Sync(ctx); err != nil {
		return nil, fmt.Errorf("copy backup %s: %w", c.Prefix, err)
	}
	return res, nil
}

// copyEntries copies (or links) every entry, up to the worker's concurrency at once; the
// first failure cancels the others and is returned.
func (w *Worker) copyEntries(ctx context.Context, src, dst *storage.Bucket, t *messages.Task, entries []messages.FileEntry, written *atomic.Int64) (*messages.Result, error) {
	reuse, err := openReuser(ctx, t.Copy, dst, false, w.log)
	if err != nil {
		return nil, err
	}
	defer reuse.close()
	if reuse != nil {
		reuse.sameTime = true // the plan matched the sums, not the times
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots, _ := w.copySlots()
	var (
		mu  sync.Mutex
		res = &messages.Result{}
		wg  sync.WaitGroup
	)
	for _, e := range entries {
		var buf []byte
		got := false
		select {
		case buf = <-slots:
			got = true
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			if got {
				slots <- buf
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if buf == nil {
				buf = make([]byte, copyBufferSize)
			}
			defer func() { slots <- buf }()
			reused, n, err := w.copyEntry(ctx, src, dst, reuse, e, buf, written)
			if err != nil {
				cancel(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			res.Files++
			res.Bytes += n
			if reused {
				res.Reused++
				res.ReusedBytes += n
			}
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	return res, nil
}

// copyEntry links or copies one entry and checks what arrived. reused is true for a link.
func (w *Worker) copyEntry(ctx context.Context, src, dst *storage.Bucket, reuse *reuser, e messages.FileEntry, buf []byte, written *atomic.Int64) (reused bool, n int64, err error) {
	if reuse != nil && e.Reuse != "" && e.ModTime == 0 && src.IsLocal() {
		// A self-indexed source records no times: its copy's own is the file's.
		if obj, err := src.Stat(ctx, e.Stored); err == nil {
			e.ModTime = obj.ModTime.UnixNano()
		}
	}
	if out, ok := reuse.reuse(ctx, src, dst, e, e.Stored, e.Path, buf); ok {
		return true, out.n, nil
	}
	fc := fileCopy{key: e.Stored, destKey: e.Path, want: e.SHA256, mode: backupFileMode, mtime: recordedTime(e), buf: buf, count: &fileCounter{task: written}}
	out, err := copyOne(ctx, src, dst, fc)
	switch {
	case errors.Is(err, errChecksum):
		fc.count.settle(0)
		return false, 0, Permanent(fmt.Errorf("%s: %w", e.Path, err))
	case err != nil:
		fc.count.settle(0)
		return false, 0, fmt.Errorf("%s: %w", e.Path, err)
	case e.SHA256 != "" && out.sum != e.SHA256:
		// A server-side copy is checked after the fact: the staged copy is never published.
		fc.count.settle(0)
		return false, 0, Permanent(fmt.Errorf("%s: %w on arrival (backup says %s, copy has %s)", e.Path, errChecksum, e.SHA256, out.sum))
	}
	fc.count.settle(out.n)
	return false, out.n, nil
}

package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// copyToPart runs a backup's copy task of a compressed backup: instead of one file each, the
// files go, in key-list order, into one part of the archive (c.Archive.Output), each hashed
// as it is written, so the sums are those of what the archive holds. The part is committed
// before the sums are written, and both are synced before the task reports done.
func (w *Worker) copyToPart(ctx context.Context, src, dst, lists *storage.Bucket, c *messages.CopyTask, list io.Reader, written *atomic.Int64) (*messages.Result, error) {
	comp, err := archive.ParseCompression(c.Archive.Compression)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: %w", c.Prefix, err))
	}
	slots, _ := w.copySlots()
	var buf []byte
	select {
	case buf = <-slots:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { slots <- buf }()
	if buf == nil {
		buf = make([]byte, copyBufferSize)
	}
	out, err := dst.Create(ctx, c.Archive.Output, storage.Object{Mode: backupFileMode})
	if err != nil {
		return nil, fmt.Errorf("copy %s: create archive part %s: %w", c.Prefix, c.Archive.Output, err)
	}
	defer out.Abort() // after Commit, a no-op
	pw, err := archive.NewPartWriter(out, comp, c.Archive.Top, buf)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: %w", c.Prefix, err))
	}
	res := &messages.Result{}
	var sums bytes.Buffer
	sw := messages.NewFileListWriter(&sums)
	err = messages.ReadFileList(list, func(e messages.FileEntry) error {
		return w.addToPart(ctx, src, pw, c, e, res, sw, written)
	})
	if err == nil {
		err = pw.Close()
	}
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		return nil, fmt.Errorf("copy %s: archive part %s: %w", c.Prefix, c.Archive.Output, err)
	}
	if err := sw.Flush(); err != nil {
		return nil, err
	}
	if _, err := lists.Put(ctx, c.Sums, &sums, storage.Object{Mode: backupFileMode}); err != nil {
		return nil, fmt.Errorf("copy %s: write sums: %w", c.Prefix, err)
	}
	if err := dst.Sync(ctx); err != nil {
		return nil, fmt.Errorf("copy %s: %w", c.Prefix, err)
	}
	return res, nil
}

// addToPart archives one file of the key list. A file deleted (or replaced by something that
// is not a regular file) since it was listed is a warning, as in a folder backup; a file that
// changed while it was read is kept as read (padded with zeros if it shrank: a tar header
// carries the size before the data) and named in a warning.
func (w *Worker) addToPart(ctx context.Context, src *storage.Bucket, pw *archive.PartWriter, c *messages.CopyTask, e messages.FileEntry, res *messages.Result, sw *messages.FileListWriter, written *atomic.Int64) error {
	srcKey, dstKey := c.SourcePrefix+e.Key, c.DestPrefix+e.Key
	if e.Stored != "" {
		dstKey = e.Stored
	}
	r, obj, err := src.Open(ctx, srcKey)
	if errors.Is(err, storage.ErrNotExist) || errors.Is(err, storage.ErrNotRegular) {
		skippedWarning(res, &copiedFile{key: e.Key, err: err})
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", storage.QuoteKey(srcKey), err)
	}
	defer r.Close()
	before := statSource(r)
	var in io.Reader = r
	if wrap := readHook.Load(); wrap != nil {
		in = (*wrap)(srcKey, in)
	}
	f := archive.File{Name: dstKey, Size: obj.Size, Mode: backupFileMode, ModTime: obj.ModTime}
	a, err := pw.Add(ctx, f, in, func(n int64) { written.Add(n) })
	if err != nil {
		return err
	}
	changed := a.Read != obj.Size || before.changed(a.Read, statSource(r))
	if changed && len(res.Warnings) < maxWarnings {
		res.Warnings = append(res.Warnings, "file changed as we read it; archived as read: "+storage.QuoteKey(e.Key))
	}
	res.Files++
	res.Bytes += obj.Size
	return sw.Add(messages.FileEntry{Path: dstKey, Size: obj.Size, SHA256: a.SHA256, Mode: uint32(obj.Mode.Perm()), Changed: changed})
}

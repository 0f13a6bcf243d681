package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/encryption"
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
		return nil, Permanent(fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err))
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
		return nil, fmt.Errorf("copy %s: create archive part %s: %w", copyScope(c.Prefix), c.Archive.Output, err)
	}
	defer out.Abort() // after Commit, a no-op
	sealed, err := sealPart(out, c.Recipients)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: archive part %s: %w", copyScope(c.Prefix), c.Archive.Output, err))
	}
	pw, err := archive.NewPartWriter(sealed, comp, c.Archive.Top, buf)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err))
	}
	defer pw.Abort() // after Close, a no-op
	res := &messages.Result{}
	var sums bytes.Buffer
	sw := messages.NewFileListWriter(&sums)
	err = w.eachOpened(ctx, src, c, list, func(o opened) error {
		return addToPart(ctx, pw, o, res, sw, written)
	})
	if err == nil {
		err = pw.Close()
	}
	if err == nil {
		err = sealed.Close()
	}
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		return nil, fmt.Errorf("copy %s: archive part %s: %w", copyScope(c.Prefix), c.Archive.Output, err)
	}
	if err := sw.Flush(); err != nil {
		return nil, err
	}
	if _, err := lists.Put(ctx, c.Sums, &sums, storage.Object{Mode: backupFileMode}); err != nil {
		return nil, fmt.Errorf("copy %s: write sums: %w", copyScope(c.Prefix), err)
	}
	if err := dst.Sync(ctx); err != nil {
		return nil, fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err)
	}
	return res, nil
}

// sealPart is where a part is written: with recipients (an encrypted archive's run key), an
// age stream into out, so the staging area never holds the plaintext; else out itself. Close
// finishes the age stream (a no-op without one); out is committed after it.
func sealPart(out io.Writer, recipients []string) (io.WriteCloser, error) {
	if len(recipients) == 0 {
		return nopWriteCloser{out}, nil
	}
	rc, err := encryption.RecipientsFromPublic(recipients)
	if err != nil {
		return nil, err
	}
	return rc.Encrypt(out)
}

// nopWriteCloser is a writer whose Close does nothing.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// opened is a file of the key list, its source opened (or the error opening it gave).
type opened struct {
	e              messages.FileEntry
	srcKey, dstKey string
	r              io.ReadCloser
	obj            storage.Object
	before         sourceStamp
	err            error
}

// eachOpened calls fn for each file of the key list, in order, with its source opened. The
// next files are opened ahead, as many as the worker's concurrency, so that on a remote
// source the wait for each response overlaps the archiving of the files before it. A source
// fn got is closed after it returns; those opened ahead are closed if fn fails.
func (w *Worker) eachOpened(ctx context.Context, src *storage.Bucket, c *messages.CopyTask, list io.Reader, fn func(opened) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ahead := make(chan chan opened, max(w.cfg.Concurrency, 1))
	listErr := make(chan error, 1)
	go func() {
		defer close(ahead)
		listErr <- messages.ReadFileList(list, func(e messages.FileEntry) error {
			o := opened{e: e, srcKey: c.SourcePrefix + e.Key, dstKey: c.DestPrefix + e.Key}
			if e.Stored != "" {
				o.dstKey = e.Stored
			}
			ch := make(chan opened, 1)
			select {
			case ahead <- ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			go func() {
				o.r, o.obj, o.err = src.Open(ctx, o.srcKey)
				if o.err == nil {
					o.before = statSource(o.r)
				}
				ch <- o
			}()
			return nil
		})
	}()
	var err error
	for ch := range ahead {
		o := <-ch
		if err == nil {
			err = fn(o)
			if err != nil {
				cancel() // stop opening; drain and close what was opened
			}
		}
		if o.r != nil {
			o.r.Close()
		}
	}
	if lerr := <-listErr; err == nil && lerr != nil {
		err = fmt.Errorf("read key list: %w", lerr)
	}
	return err
}

// addToPart archives one file of the key list. A file deleted (or replaced by something that
// is not a regular file) since it was listed is a warning, as in a folder backup; a file that
// changed while it was read is kept as read (padded with zeros if it shrank: a tar header
// carries the size before the data) and named in a warning.
func addToPart(ctx context.Context, pw *archive.PartWriter, o opened, res *messages.Result, sw *messages.FileListWriter, written *atomic.Int64) error {
	e, srcKey, dstKey, obj, r, err := o.e, o.srcKey, o.dstKey, o.obj, o.r, o.err
	if errors.Is(err, storage.ErrNotExist) || errors.Is(err, storage.ErrNotRegular) {
		skippedWarning(res, &copiedFile{key: e.Key, err: err})
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", storage.QuoteKey(srcKey), err)
	}
	before := o.before
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

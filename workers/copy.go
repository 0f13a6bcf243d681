package workers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// maxWarnings bounds the warnings and failures one result carries (results are small messages).
const maxWarnings = 50

// errChecksum is a file whose bytes do not match the checksum the backup recorded.
var errChecksum = errors.New("checksum mismatch")

// copy runs a copy-prefix task (backup: platform storage → staging folder) or a
// restore-prefix task (restore: backup folder → platform storage). Each file is hashed while
// it streams and written under a temporary name, then renamed into place; a backup's files
// are synced to disk together before the task reports done.
func (w *Worker) copy(ctx context.Context, t *messages.Task) (res *messages.Result, err error) {
	c := t.Copy
	ctx, span := telemetry.Start(ctx, "storage.copy", telemetry.KeyPrefix.String(c.Prefix), telemetry.KeyKind.String(t.Kind))
	defer func() {
		if res != nil {
			span.SetAttributes(telemetry.KeyFiles.Int64(res.Files), telemetry.KeyBytes.Int64(res.Bytes), attribute.Int64("wnb.files_failed", res.Failed))
		}
		telemetry.End(span, err)
	}()
	restore := t.Kind == messages.KindRestorePrefix
	b, err := w.openCopyBuckets(ctx, t, restore)
	if err != nil {
		return nil, err
	}
	defer b.close()
	src, dst, lists := b.src, b.dst, b.lists
	list, _, err := lists.Open(ctx, c.KeyList)
	if err != nil {
		return nil, fmt.Errorf("copy %s: read key list: %w", copyScope(c.Prefix), err)
	}
	defer list.Close()
	if !restore && c.Objects != "" {
		return w.storeObjects(ctx, t, src, dst, lists, list)
	}

	ru, err := openReuser(ctx, c, dst, restore, w.log)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err))
	}
	defer ru.close()

	res = &messages.Result{}
	var written atomic.Int64
	stop := w.reportProgress(ctx, t, &written)
	defer stop()
	if c.Archive != nil && !restore {
		return w.copyToPart(ctx, src, dst, lists, c, list, &written)
	}
	files, err := w.copyFiles(ctx, src, dst, c, restore, list, &written, ru)
	if err != nil {
		return writtenBefore(files, restore), fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err)
	}
	sums, err := gatherOutcomes(res, files, restore)
	if err != nil {
		return nil, err
	}
	if c.Sums != "" {
		if _, err := lists.Put(ctx, c.Sums, sums, storage.Object{Mode: backupFileMode}); err != nil {
			return nil, fmt.Errorf("copy %s: write sums: %w", copyScope(c.Prefix), err)
		}
	}
	// Files and sums on disk before the task is reported done: a resumed run keeps what done
	// tasks copied.
	if err := dst.Sync(ctx); err != nil {
		return nil, fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err)
	}
	return res, nil
}

// copyBuckets are what a copy task reads from and writes to: the source, the destination,
// and where its key list and sums are (the destination unless the task names another).
type copyBuckets struct {
	src, dst, lists *storage.Bucket
	opened          []*storage.Bucket
}

// close closes the buckets, the last opened first.
func (b *copyBuckets) close() {
	for i := len(b.opened) - 1; i >= 0; i-- {
		b.opened[i].Close()
	}
}

// openCopyBuckets opens task t's buckets. The platform storage is always the worker's own
// configured one; the task names it only so that a worker configured for another storage
// hands the task back instead of mixing platforms.
func (w *Worker) openCopyBuckets(ctx context.Context, t *messages.Task, restore bool) (b *copyBuckets, err error) {
	c := t.Copy
	if w.cfg.StorageURL == "" {
		return nil, Mismatch(fmt.Errorf("copy %s: this worker has no storage configured (--storage / STORAGE_URL)", copyScope(c.Prefix)))
	}
	platformLoc, otherLoc := c.Source, t.Dest
	if restore {
		platformLoc, otherLoc = t.Dest, c.Source
	}
	if !sameLocation(w.cfg.StorageURL, platformLoc) {
		return nil, Mismatch(fmt.Errorf("copy %s: this worker's storage is %s but the run uses %s", copyScope(c.Prefix), w.cfg.StorageURL, platformLoc))
	}
	if restore && c.Decrypt && w.cfg.Identities == nil {
		return nil, Mismatch(fmt.Errorf("copy %s: the backup is encrypted and this worker has no age identity (--identity or WNB_AGE_IDENTITY_FILE)", copyScope(c.Prefix)))
	}
	b = &copyBuckets{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	open := func(loc string, opts ...storage.Option) (*storage.Bucket, error) {
		o, err := storage.Open(ctx, loc, opts...)
		if err != nil {
			return nil, Permanent(fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err))
		}
		b.opened = append(b.opened, o)
		return o, nil
	}
	// What a restore makes in the platform's storage stays the platform's (a backup only
	// reads it).
	plat, err := open(w.cfg.StorageURL, storage.GiveToFolderOwner())
	if err != nil {
		return nil, err
	}
	// A backup's staging folder is published whole, once every task is done: its files are
	// made durable together at the end of each task (Sync), not one by one. A restore writes
	// into live storage, where each file is on disk before it takes its name.
	var opts []storage.Option
	if !restore {
		opts = append(opts, storage.DeferSync())
	}
	other, err := open(otherLoc, opts...)
	if err != nil {
		return nil, err
	}
	b.src, b.dst = plat, other
	if restore {
		b.src, b.dst = other, plat
	}
	b.lists = b.dst
	if c.ListStore != "" {
		if b.lists, err = open(c.ListStore); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// gatherOutcomes counts the files' outcomes into res and returns the task's sums. Outcomes
// are gathered in key-list order, so results and sums are the same whatever order the copies
// finished in.
func gatherOutcomes(res *messages.Result, files []*copiedFile, restore bool) (*bytes.Buffer, error) {
	var sums bytes.Buffer
	sw := messages.NewFileListWriter(&sums)
	for _, f := range files {
		switch {
		case f.err == nil:
			res.Files++
			res.Bytes += f.n
			if f.reused {
				res.Reused++
				res.ReusedBytes += f.n
			}
			if err := sw.Add(sumsEntry(f)); err != nil {
				return nil, err
			}
			if f.changed && len(res.Warnings) < maxWarnings {
				res.Warnings = append(res.Warnings, "file changed as we read it, twice; kept as read the second time: "+f.key)
			}
			if f.note != "" && len(res.Warnings) < maxWarnings {
				res.Warnings = append(res.Warnings, f.note)
			}
		case restore:
			res.Failed++
			if len(res.Failures) < maxWarnings {
				res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", f.key, f.err))
			}
		default:
			skippedWarning(res, f)
		}
	}
	return &sums, sw.Flush()
}

// writtenBefore is the result of a restore task that stopped midway (a full disk, say): the
// files it put in place before, which stay there, so that the restore's report counts them
// instead of nothing. A backup's stopped task has none: its staging is not the platform's.
func writtenBefore(files []*copiedFile, restore bool) *messages.Result {
	if !restore {
		return nil
	}
	res := &messages.Result{}
	for _, f := range files {
		if f.err == nil {
			res.Files++
			res.Bytes += f.n
		}
	}
	return res
}

// sumsEntry is a copied file's entry in the task's sums: what the backup's manifest and file
// index record of it. Its modification time or ETag are the listing's, which the next
// backup compares with the source's; a file that changed while it was read has none, so it is
// never taken as unchanged.
func sumsEntry(f *copiedFile) messages.FileEntry {
	e := messages.FileEntry{Path: f.dest, Key: f.entry.Key, Stored: f.entry.Stored, Size: f.n, SHA256: f.sum,
		Mode: uint32(f.mode.Perm()), Changed: f.changed, ModTime: f.entry.ModTime, ETag: f.entry.ETag, Plain: f.plain}
	if f.changed {
		e.ModTime, e.ETag = 0, ""
	}
	return e
}

// skippedWarning names a file a backup went on past: deleted since it was listed, or
// replaced by something that is not a regular file (counted by kind).
func skippedWarning(res *messages.Result, f *copiedFile) {
	msg := "vanished before copy: " + storage.QuoteKey(f.key)
	var sp *storage.SpecialError
	if errors.As(f.err, &sp) {
		if res.Skipped == nil {
			res.Skipped = map[string]int64{}
		}
		res.Skipped[sp.Kind]++
		msg = sp.Warning()
	}
	if len(res.Warnings) < maxWarnings {
		res.Warnings = append(res.Warnings, msg)
	}
}

// copyBufferSize is the buffer each file transfer in flight streams through.
const copyBufferSize = 256 << 10

// copiedFile is one file's outcome: err is nil, or a failure the task goes on past.
type copiedFile struct {
	key  string
	dest string // its key in the destination
	n    int64
	sum  string
	// plain is the plaintext's sum of a file encrypted on its way into the backup.
	plain string
	// mode is the source's permissions.
	mode fs.FileMode
	// changed: the source changed while it was read, on the retry too; the copy is kept.
	changed bool
	// note is a warning about the file for the run (copied.note).
	note string
	err  error
	// entry is the file's key-list entry; reused, that it is a link to an earlier copy.
	entry  messages.FileEntry
	reused bool
}

// backupFileMode is the permissions of every file a backup holds.
const backupFileMode fs.FileMode = 0o600

// copySlots are the worker's file transfers in flight, shared by all its tasks: as many as
// Config.Concurrency, each holding its buffer (allocated on first use). A prefix is one task
// or a few, so one file at a time per task would leave most slots idle on a storage whose
// every request waits on the network. commits bounds the files whose bytes are all written
// and that are being committed (renamed into place; in a restore, synced to disk first) after
// handing their slot on.
func (w *Worker) copySlots() (slots chan []byte, commits chan struct{}) {
	w.slotsOnce.Do(func() {
		n := max(w.cfg.Concurrency, 1)
		w.slots = make(chan []byte, n)
		for range n {
			w.slots <- nil
		}
		w.commits = make(chan struct{}, 2*n)
	})
	return w.slots, w.commits
}

// copyKeys are where a key-list entry is read from and written to.
func copyKeys(c *messages.CopyTask, restore bool, e messages.FileEntry) (srcKey, dstKey string) {
	srcKey, dstKey = c.SourcePrefix+e.Key, c.DestPrefix+e.Key
	if e.Stored != "" { // an escaped name on the backup's side
		if restore {
			srcKey = e.Stored
		} else {
			dstKey = e.Stored
		}
	}
	if !restore && len(c.Recipients) > 0 {
		dstKey += encryption.Ext // an encrypted backup's copy, reused or new
	}
	return srcKey, dstKey
}

// copyFiles copies every file of the key list, up to the worker's concurrency at once. A file
// that cannot be copied stops the task (its first such error is returned, with the outcomes of
// the files begun before it) unless the task goes on past it: a vanished file in a backup, any
// non-permanent failure in a restore. The outcomes come back in list order. written counts the
// bytes of the files copied and being copied, as they are written (for progress).
func (w *Worker) copyFiles(ctx context.Context, src, dst *storage.Bucket, c *messages.CopyTask, restore bool, list io.Reader, written *atomic.Int64, ru *reuser) ([]*copiedFile, error) {
	seal, err := sealOf(c, restore)
	if err != nil {
		return nil, err
	}
	stage, err := openStage(ctx, c, restore)
	if err != nil {
		return nil, err
	}
	if stage != nil {
		defer stage.Close()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tc := &taskCopy{w: w, src: src, dst: dst, c: c, restore: restore, seal: seal, stage: stage, ru: ru, written: written, cancel: cancel}
	tc.slots, tc.commits = w.copySlots()
	var (
		files []*copiedFile
		wg    sync.WaitGroup
	)
	err = messages.ReadFileList(list, func(e messages.FileEntry) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if f := ru.linkInline(ctx, dst, c, restore, e); f != nil {
			written.Add(f.n)
			files = append(files, f)
			return nil
		}
		var buf []byte
		select {
		case buf = <-tc.slots:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		srcKey, dstKey := copyKeys(c, restore, e)
		f := &copiedFile{key: e.Key, dest: dstKey, entry: e}
		files = append(files, f)
		wg.Go(func() { tc.copyFile(ctx, f, srcKey, buf) })
		return nil
	})
	if err != nil {
		cancel(err) // a bad key list: stop the copies in flight too
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return files, cause
	}
	return files, nil
}

// taskCopy is what the file copies of one task share.
type taskCopy struct {
	w        *Worker
	src, dst *storage.Bucket
	c        *messages.CopyTask
	restore  bool
	seal     *encryption.Recipients // a backup's copies are encrypted to (nil: not)
	stage    *storage.Bucket        // a restore's decrypted files, checked (nil: none)
	ru       *reuser
	written  *atomic.Int64
	// slots and commits are the worker's transfers and commits in flight (copySlots).
	slots   chan []byte
	commits chan struct{}
	// cancel stops the task, with the first error that must stop it.
	cancel context.CancelCauseFunc
}

// copyFile copies f (its source key srcKey) holding the transfer slot buf, and records its
// outcome in f. Once its bytes are written a file hands its slot on to the next transfer and
// is committed beside it: a commit waits on the disk, not on the source.
func (tc *taskCopy) copyFile(ctx context.Context, f *copiedFile, srcKey string, buf []byte) {
	defer tc.w.recoverFile(f.key, &f.err, tc.cancel)
	if buf == nil {
		buf = make([]byte, copyBufferSize)
	}
	release := sync.OnceFunc(func() { tc.slots <- buf })
	defer release()
	committing := false
	handoff := func() {
		tc.commits <- struct{}{}
		committing = true
		release()
	}
	defer func() {
		if committing {
			<-tc.commits
		}
	}()
	fc := tc.fileCopy(f, srcKey, buf, handoff)
	out, err := tc.transfer(ctx, f, fc, srcKey, buf)
	f.n, f.sum, f.plain, f.mode, f.changed, f.err = out.n, out.sum, out.plain, out.mode, out.changed, err
	if err == nil {
		fc.count.settle(f.n)
	} else {
		fc.count.settle(0)
	}
	if tc.stopsTask(ctx, err) {
		tc.cancel(err) // the first cause wins; later ones are its consequences
	}
}

// fileCopy is how f is copied from srcKey.
func (tc *taskCopy) fileCopy(f *copiedFile, srcKey string, buf []byte, handoff func()) fileCopy {
	e := f.entry
	fc := fileCopy{key: srcKey, destKey: f.dest, want: e.SHA256, mode: fs.FileMode(e.Mode).Perm(), buf: buf, handoff: handoff, count: &fileCounter{task: tc.written}}
	if tc.restore {
		fc.mtime = recordedTime(e)
	}
	if tc.restore && tc.c.Decrypt {
		fc.open = tc.w.cfg.Identities // want is the plaintext's sum
	}
	if !tc.restore {
		// A backup holds password hashes and e-mail addresses: its copies are the owner's
		// alone, and the file's own permissions go into its sums entry.
		fc.mode = backupFileMode
		fc.seal = tc.seal
	}
	return fc
}

// transfer puts f in place: from the restore's checked stage, else as a reused earlier copy,
// else copied from the source.
func (tc *taskCopy) transfer(ctx context.Context, f *copiedFile, fc fileCopy, srcKey string, buf []byte) (copied, error) {
	e := f.entry
	if tc.stage != nil {
		if out, staged, err := linkStaged(ctx, tc.stage, tc.dst, fc, e); staged {
			return out, err
		}
	}
	if tc.restore && tc.c.LinkSource && !tc.c.Decrypt {
		if out, linked := tc.linkUnpacked(ctx, fc, e); linked {
			return out, nil
		}
	}
	out, reused := tc.ru.reuse(ctx, tc.src, tc.dst, e, srcKey, f.dest, buf)
	if f.reused, f.note = reused, out.note; reused {
		return out, nil
	}
	if e.Reuse != "" {
		fc.want = "" // the earlier copy's sum: the source may hold new content
	}
	return copyTraced(ctx, tc.src, tc.dst, fc, e.Size)
}

// stopsTask tells whether a file's error stops the whole task. A restore goes on past a bad
// file (one it cannot read, check or replace), so every other file is restored; the run lists
// the failures and ends partial. A backup goes on past a file deleted, or replaced by a FIFO,
// link or such, between listing and copying: the platform moved on; a warning, not a failure.
func (tc *taskCopy) stopsTask(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		return false
	case tc.restore:
		return ctx.Err() != nil || taskLevel(err, tc.dst)
	default:
		return !errors.Is(err, storage.ErrNotExist) && !errors.Is(err, storage.ErrNotRegular)
	}
}

// openStage opens a restore task's Staged folder: nil without one.
func openStage(ctx context.Context, c *messages.CopyTask, restore bool) (*storage.Bucket, error) {
	if !restore || c.Staged == "" {
		return nil, nil
	}
	b, err := storage.Open(ctx, c.Staged)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: staged files: %w", copyScope(c.Prefix), err))
	}
	return b, nil
}

// linkStaged puts in place the file the restore's check pass decrypted into stage, checked
// against its plaintext sum (fc.want), with its permissions and modification time: a link on
// the storage's filesystem, or a copy checked against fc.want again where a link cannot be
// made (a mount under the storage's root). staged is false when there is no staged copy (a
// worker on another host than the check pass): the caller then decrypts the backup's copy.
func linkStaged(ctx context.Context, stage, dst *storage.Bucket, fc fileCopy, e messages.FileEntry) (c copied, staged bool, err error) {
	name := messages.StagedName(e.Key)
	obj, err := dst.LinkFrom(ctx, stage, name, fc.destKey)
	switch {
	case err == nil:
		return copied{n: obj.Size, sum: fc.want, mode: obj.Mode}, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return copied{}, false, nil
	case errors.Is(err, storage.ErrNoLink):
		fc.key, fc.open = name, nil
		c, err = copyTraced(ctx, stage, dst, fc, e.Size)
		return c, true, err
	}
	return copied{}, true, err
}

// linkUnpacked puts a restored file in place as a hard link to the restore's own unpacked,
// checked copy of it (CopyTask.LinkSource): one link instead of the file written again. The
// copy is given the permissions and time the restored file gets first (the link shares
// them; nothing reads the copy's attributes after, and it is removed with the run), so the
// file takes its name as a copy would, whole. linked is false when the file is to be copied
// instead. Any failed link falls back to the copy: the failures a copy does not meet are what
// it is for (EXDEV: another filesystem or mount; EMLINK: too many links; EPERM, EOPNOTSUPP:
// a filesystem without hard links), and one it does meet (a full disk, a folder in the way or
// read-only, the source gone) the copy meets again and reports as it always does.
func (tc *taskCopy) linkUnpacked(ctx context.Context, fc fileCopy, e messages.FileEntry) (out copied, linked bool) {
	obj, err := tc.dst.LinkFromAs(ctx, tc.src, fc.key, fc.destKey, storage.Object{Mode: fc.mode, ModTime: fc.mtime})
	if err != nil {
		tc.w.log.Debug("unpacked copy not linked; copying the file", "key", e.Key, "err", err)
		return copied{}, false
	}
	if obj.Size != e.Size {
		// Not the file the check hashed: the copy, checked against its sum, replaces the link.
		tc.w.log.Warn("unpacked copy differs in size from the plan; copying the file", "key", e.Key, "size", obj.Size, "planned_size", e.Size)
		return copied{}, false
	}
	return copied{n: obj.Size, sum: e.SHA256, mode: obj.Mode}, true
}

// sealOf parses a backup copy task's recipients, once per task: nil when its copies are
// not encrypted. A recipient that does not parse fails the task for good (another attempt
// reads the same task).
func sealOf(c *messages.CopyTask, restore bool) (*encryption.Recipients, error) {
	if restore || len(c.Recipients) == 0 {
		return nil, nil
	}
	seal, err := encryption.RecipientsFromPublic(c.Recipients)
	if err != nil {
		return nil, Permanent(fmt.Errorf("encrypt the copies: %w", err))
	}
	return seal, nil
}

// recoverFile, deferred in a goroutine copying one file, turns a panic there (beyond the
// handler's recover) into that file's error and cancels the task: the task fails, not the
// worker.
func (w *Worker) recoverFile(key string, errp *error, cancel context.CancelCauseFunc) {
	if p := recover(); p != nil {
		w.log.Error("file copy panicked", "key", key, "panic", p, "stack", string(debug.Stack()))
		*errp = fmt.Errorf("copy %s: panic: %v", key, p)
		cancel(*errp)
	}
}

// taskLevel reports whether a file's failure in a restore is one of the whole destination,
// which every other file would meet too, so the task fails instead of listing each file: a
// full disk or quota, refused credentials of a remote storage, the caller's cancellation.
// Anything else (a folder or an immutable file in the way, a read-only folder) concerns that
// file alone.
func taskLevel(err error, dst *storage.Bucket) bool {
	var p permanentError
	switch code := storage.ErrorCode(err); {
	case errors.As(err, &p), code == storage.CodeNoSpace, code == storage.CodeCanceled:
		return true
	case code == storage.CodePermission:
		return !dst.IsLocal()
	}
	return false
}

// largeObject is the size from which a file gets a span of its own: big enough that the
// span's cost is nothing beside the copy.
const largeObject = 16 << 20

// copyTraced is copyOne, in a span of its own for a large file.
func copyTraced(ctx context.Context, src, dest *storage.Bucket, fc fileCopy, size int64) (copied, error) {
	if size < largeObject {
		return copyOne(ctx, src, dest, fc)
	}
	ctx, span := telemetry.Start(ctx, "storage.copy_object", telemetry.KeyKey.String(fc.key), telemetry.KeyBytes.Int64(size))
	out, err := copyOne(ctx, src, dest, fc)
	telemetry.End(span, err)
	return out, err
}

// fileCopy is one file to copy: its key in the source and in the destination; want, the
// SHA-256 it must have ("" for any); mode, the permissions to write it with (0: the
// source's); buf, the buffer to stream through; handoff, if set, called when buf is no longer
// needed and only the commit remains; count, if set, counts the bytes as they are written.
//
// seal, if set, encrypts the copy to its recipients (a backup's NAME.age); open, if set,
// decrypts the source with the worker's identities (a restore of an encrypted backup). want
// is always the plaintext's sum.
type fileCopy struct {
	key, destKey, want string
	mode               fs.FileMode
	// mtime, if set, is the copy's modification time (else the source's): the file's recorded
	// time, where the source is a shared copy of its content (an object store's object).
	mtime   time.Time
	buf     []byte
	handoff func()
	count   *fileCounter
	seal    *encryption.Recipients
	open    *encryption.Identities
}

// copied is a file's copy: its size and SHA-256, the source's permissions, and whether the
// source changed while it was read, twice (see streamOne).
//
// n counts the plaintext's bytes and sum is the SHA-256 of the bytes written; a sealed copy
// also has plain, its plaintext's SHA-256.
type copied struct {
	n       int64
	sum     string
	plain   string
	mode    fs.FileMode
	changed bool
	// note, on a file not reused, is a warning of why (an earlier copy found damaged).
	note string
}

// copyOne copies one file with its modification time, and its permissions unless fc.mode
// says otherwise: server-side when both sides are on the same S3 service (the cross-region
// case; the object's own permissions go with it), else streamed and hashed on the way. With
// fc.want set, a streamed copy is committed only when its SHA-256 is fc.want.
func copyOne(ctx context.Context, src, dest *storage.Bucket, fc fileCopy) (copied, error) {
	if !storage.SameService(src, dest) || fc.seal != nil || fc.open != nil {
		return streamOne(ctx, src, dest, fc)
	}
	if fc.want != "" {
		// Check before copying: a server-side copy replaces the destination at once.
		sum, err := src.SHA256(ctx, fc.key)
		if err != nil {
			return copied{}, err
		}
		if sum != fc.want {
			return copied{sum: sum}, fmt.Errorf("%s: %w (backup says %s, file has %s)", fc.key, errChecksum, fc.want, sum)
		}
	}
	// A server-side copy is of one version of an object: it cannot be torn.
	obj, err := dest.CopyFrom(ctx, src, fc.key, fc.destKey)
	if errors.Is(err, storage.ErrNoServerSideCopy) {
		return streamOne(ctx, src, dest, fc)
	} else if err != nil {
		return copied{}, err
	}
	sum, err := dest.SHA256(ctx, fc.destKey)
	return copied{n: obj.Size, sum: sum, mode: obj.Mode}, err
}

// streamOne streams one file through buf, hashing it. A source that changed while it was
// read (tar's "file changed as we read it") is read once more, since a file rewritten in
// place is usually whole again a moment later; if it changed on that read too, the second copy
// is kept and changed is true, for the caller to warn about.
func streamOne(ctx context.Context, src, dest *storage.Bucket, fc fileCopy) (copied, error) {
	for attempt := 1; ; attempt++ {
		out, c, err := streamBytes(ctx, src, dest, fc)
		if err != nil {
			return c, err
		}
		if c.changed && attempt == 1 {
			out.Abort()
			fc.count.settle(0) // read again: its bytes count once
			continue
		}
		if fc.handoff != nil {
			fc.handoff()
		}
		if err := out.Commit(); err != nil {
			return copied{n: c.n}, err
		}
		return c, nil
	}
}

// copyScope names a copy task's prefix in its errors; the files at the storage's top level
// have none.
func copyScope(prefix string) string {
	if prefix == "" {
		return "(top level)"
	}
	return prefix
}

// readHook, when set (by tests), wraps each source as it is read.
var readHook atomic.Pointer[func(key string, r io.Reader) io.Reader]

// SetReadHook is for tests only: wrap wraps the source of every file copy from now on (key is
// the file's key in its storage), so that a test can change a file in the middle of its copy.
// The returned function removes the hook.
func SetReadHook(wrap func(key string, r io.Reader) io.Reader) (remove func()) {
	readHook.Store(&wrap)
	return func() { readHook.Store(nil) }
}

// streamBytes writes one file's bytes into a new object of dest, not yet committed, and says
// whether the source changed while it was read. The source is closed on return (no connection
// held through the commit); on error the object is aborted.
func streamBytes(ctx context.Context, src, dest *storage.Bucket, fc fileCopy) (out storage.Writer, c copied, err error) {
	key := fc.key
	r, w, mode, err := openBoth(ctx, src, dest, key, fc.destKey, fc.mode, fc.mtime)
	if err != nil {
		return nil, c, err
	}
	c.mode = mode
	defer r.Close()
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	before := statSource(r)
	// Through buf: a source file's own WriteTo would copy through a new 32 KiB buffer each
	// time (the hash needs the bytes, so no copy_file_range), garbage on every file.
	var in io.Reader = struct{ io.Reader }{r}
	if wrap := readHook.Load(); wrap != nil {
		in = (*wrap)(key, in)
	}
	// read counts the source's bytes when they are not the plaintext's: the stamps taken
	// before and after the read compare with them.
	var read *readCounter
	if fc.open != nil {
		read = &readCounter{r: in}
		if in, err = fc.open.Decrypt(read); err != nil {
			return nil, c, fmt.Errorf("decrypt %s: %w", key, err)
		}
	}
	var sink io.Writer = w
	var sealed io.WriteCloser
	stored := sha256.New() // of the ciphertext, when sealing
	var sealBuf *bufio.Writer
	if fc.seal != nil {
		// age writes its header in small pieces and its payload in 64 KiB chunks: gathered
		// here, they reach the file (and the hash) in a few large writes.
		sealBuf = sealBuffers.Get().(*bufio.Writer)
		sealBuf.Reset(io.MultiWriter(w, stored))
		defer func() { sealBuf.Reset(nil); sealBuffers.Put(sealBuf) }()
		if sealed, err = fc.seal.Encrypt(sealBuf); err != nil {
			return nil, c, fmt.Errorf("encrypt %s: %w", key, err)
		}
		sink = sealed
	}
	h := sha256.New()
	to := []io.Writer{sink, h}
	if fc.count != nil {
		to = append(to, fc.count)
	}
	c.n, err = io.CopyBuffer(io.MultiWriter(to...), in, fc.buf)
	if err == nil && sealed != nil {
		if err = sealed.Close(); err == nil {
			err = sealBuf.Flush()
		}
	}
	if err != nil {
		return nil, c, fmt.Errorf("copy %s: %w", key, err)
	}
	c.sum = hexSum(h)
	if fc.want != "" && c.sum != fc.want {
		return nil, c, fmt.Errorf("%s: %w (backup says %s, file has %s)", key, errChecksum, fc.want, c.sum)
	}
	if sealed != nil {
		c.plain, c.sum = c.sum, hexSum(stored)
	}
	n := c.n
	if read != nil {
		n = read.n
	}
	c.changed = before.changed(n, statSource(r))
	return w, c, nil
}

// recordedTime is e's recorded modification time, zero when it has none.
func recordedTime(e messages.FileEntry) time.Time {
	if e.ModTime == 0 {
		return time.Time{}
	}
	return time.Unix(0, e.ModTime)
}

// sealBuffers are the write buffers between age's writer and a sealed copy: two of its
// chunks each.
var sealBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 128<<10) }}

// readCounter counts the bytes read through it.
type readCounter struct {
	r io.Reader
	n int64
}

func (rc *readCounter) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	rc.n += int64(n)
	return n, err
}

// sourceStamp is what tells a file that changed while it was read: its size, modification
// time and inode change time (which a writer resetting the modification time still moves).
// ok is false for a source that cannot say (an S3 object: one version, never torn).
type sourceStamp struct {
	ok    bool
	size  int64
	mtime time.Time
	ctime time.Time
}

// statSource stamps r, if it is a file.
func statSource(r io.Reader) sourceStamp {
	f, ok := r.(interface{ Stat() (fs.FileInfo, error) })
	if !ok {
		return sourceStamp{}
	}
	fi, err := f.Stat()
	if err != nil {
		return sourceStamp{}
	}
	return sourceStamp{ok: true, size: fi.Size(), mtime: fi.ModTime(), ctime: storage.ChangeTime(fi)}
}

// changed compares the stamps taken before and after reading n bytes.
func (b sourceStamp) changed(n int64, a sourceStamp) bool {
	if !b.ok || !a.ok {
		return false
	}
	return n != b.size || a.size != b.size || !a.mtime.Equal(b.mtime) || !a.ctime.Equal(b.ctime)
}

// openBoth opens the source object and creates its copy, with mode (0: the source's), and
// returns the source's permissions. From a remote source into a local
// folder, the file is created while the source's first response is awaited: making a file
// costs the filesystem some work (on ext4 without a journal, a scan past the inodes freed
// lately), which then hides behind the network's latency instead of adding to it.
func openBoth(ctx context.Context, src, dest *storage.Bucket, key, destKey string, mode fs.FileMode, mtime time.Time) (io.ReadCloser, storage.Writer, fs.FileMode, error) {
	attrs := func(obj storage.Object) storage.Object {
		if mode == 0 {
			mode = obj.Mode
		}
		if mtime.IsZero() {
			mtime = obj.ModTime
		}
		return storage.Object{Mode: mode, ModTime: mtime}
	}
	if src.IsLocal() || !dest.IsLocal() {
		r, obj, err := src.Open(ctx, key)
		if err != nil {
			return nil, nil, 0, err
		}
		out, err := dest.Create(ctx, destKey, attrs(obj))
		if err != nil {
			r.Close()
			return nil, nil, 0, err
		}
		return r, out, obj.Mode, nil
	}
	type created struct {
		w   storage.Writer
		err error
	}
	ch := make(chan created, 1)
	go func() {
		w, err := dest.Create(ctx, destKey, storage.Object{})
		ch <- created{w, err}
	}()
	r, obj, err := src.Open(ctx, key)
	c := <-ch
	switch {
	case err != nil:
		if c.w != nil {
			c.w.Abort() // the source is gone: no copy of it either
		}
		return nil, nil, 0, err
	case c.err != nil:
		r.Close()
		return nil, nil, 0, c.err
	}
	storage.SetAttrs(c.w, attrs(obj))
	return r, c.w, obj.Mode, nil
}

// sameLocation compares two storage locations as the user may have spelled them.
func sameLocation(a, b string) bool {
	norm := func(s string) string {
		s = storage.LocalPath(s)
		if !strings.Contains(s, "://") {
			if abs, err := filepath.Abs(s); err == nil {
				return abs
			}
		}
		return strings.TrimSuffix(s, "/")
	}
	return norm(a) == norm(b)
}

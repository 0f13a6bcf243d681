package workers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A backup to an S3 destination keeps each content once, in the destination's object store
// (CopyTask.Objects), under layout.ObjectKey of its SHA-256: backups share what did not
// change. An entry the planner found unchanged (Reuse) costs no request: its object is
// already there. A new file is hashed before it is stored, so that content the store already
// holds (a rename, a file put back) is not uploaded again.

// incomingDir holds, in the run's staging area, files streamed from a source that cannot be
// hashed before it is stored (an S3 object, or a local file that changed while it was read):
// each goes to a staging key while it is hashed, then is copied server-side to its object key.
const incomingDir = ".wnb/incoming"

// objectStore is one copy task's sides when its files go to a content-addressed store.
type objectStore struct {
	src, stage, store *storage.Bucket
	// task names the attempt's staging keys: the task id and a random token.
	task     string
	checksum bool
	// seal, if set, encrypts every new file: its object is named by its ciphertext's sum.
	seal *encryption.Recipients

	mu sync.Mutex
	// storing holds the sums this task stores or stored: files of the same content are
	// stored once, the others wait for it.
	storing map[string]*pendingObject
}

// pendingObject is one content being stored by one of the task's files.
type pendingObject struct {
	done chan struct{}
	err  error
}

// errNotStored is a store that did not happen (the file changed since it was hashed).
var errNotStored = errors.New("not stored")

// once runs store for sum unless another file of the task stored that content: then it waits
// for it, and runs store itself only if that one failed.
func (o *objectStore) once(ctx context.Context, sum string, store func() error) error {
	o.mu.Lock()
	if o.storing == nil {
		o.storing = map[string]*pendingObject{}
	}
	p, ok := o.storing[sum]
	if !ok {
		p = &pendingObject{done: make(chan struct{})}
		o.storing[sum] = p
	}
	o.mu.Unlock()
	if !ok {
		p.err = store()
		close(p.done)
		return p.err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if p.err == nil {
		return nil
	}
	return store()
}

// storedFile is one key-list entry's outcome in an object-store copy.
type storedFile struct {
	e    messages.FileEntry
	dest string // its logical path in the backup ("files/…")
	n    int64
	sum  string
	// plain is an encrypted file's plaintext sum (sum is its ciphertext's).
	plain string
	mode  fs.FileMode
	// reused: the object was the base backup's; changed: the source changed while it was
	// read, on the retry too (what is stored is the second read, whole).
	reused, changed bool
	err             error
}

// storeObjects runs a backup copy task into the object store: it stores the new files, writes
// the task's sums (Stored = each file's object key) and counts what was reused.
func (w *Worker) storeObjects(ctx context.Context, t *messages.Task, src, stage, lists *storage.Bucket, list io.Reader) (*messages.Result, error) {
	c := t.Copy
	store, err := storage.Open(ctx, c.Objects)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: object store: %w", copyScope(c.Prefix), err))
	}
	defer store.Close()
	var written atomic.Int64
	stop := w.reportProgress(ctx, t, &written)
	defer stop()
	// Staging keys are this attempt's own: a redelivered task may run beside a stalled
	// attempt, and neither may copy the other's bytes under its own sum.
	seal, err := sealOf(c, false)
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err)
	}
	o := &objectStore{src: src, stage: stage, store: store, task: t.ID + "/" + rand.Text(), checksum: c.Checksum, seal: seal}
	files, err := w.storeFiles(ctx, o, c, list, &written)
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err)
	}
	res, sums, err := objectResult(files)
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", copyScope(c.Prefix), err)
	}
	if _, err := lists.Put(ctx, c.Sums, sums, storage.Object{Mode: backupFileMode}); err != nil {
		return nil, fmt.Errorf("copy %s: write sums: %w", copyScope(c.Prefix), err)
	}
	return res, nil
}

// objectResult counts the files and writes their sums entries, in key-list order (a task's
// sums are small: its key list is bounded by files and bytes).
func objectResult(files []*storedFile) (*messages.Result, io.Reader, error) {
	res := &messages.Result{}
	var sums bytes.Buffer
	sw := messages.NewFileListWriter(&sums)
	for _, f := range files {
		if f.err != nil {
			skippedWarning(res, &copiedFile{key: f.e.Key, err: f.err})
			continue
		}
		e := messages.FileEntry{Key: f.e.Key, Path: f.dest, Size: f.n, SHA256: f.sum, Mode: uint32(f.mode.Perm()),
			Stored: layout.ObjectKey(f.sum), ModTime: f.e.ModTime, ETag: f.e.ETag, Changed: f.changed, Plain: f.plain}
		if err := sw.Add(e); err != nil {
			return nil, nil, err
		}
		res.Files++
		res.Bytes += f.n
		switch {
		case f.reused:
			res.Reused++
			res.ReusedBytes += f.n
		case f.changed && len(res.Warnings) < maxWarnings:
			res.Warnings = append(res.Warnings, "file changed as we read it, twice; kept as read the second time: "+f.e.Key)
		}
	}
	return res, &sums, sw.Flush()
}

// storeFiles stores every file of the key list, up to the worker's concurrency at once. A
// file deleted (or replaced by a non-regular file) since it was listed is a warning; any other
// failure stops the task.
func (w *Worker) storeFiles(ctx context.Context, o *objectStore, c *messages.CopyTask, list io.Reader, written *atomic.Int64) ([]*storedFile, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots, _ := w.copySlots()
	var (
		files []*storedFile
		wg    sync.WaitGroup
	)
	err := messages.ReadFileList(list, func(e messages.FileEntry) error {
		var buf []byte
		select {
		case buf = <-slots:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		f := &storedFile{e: e, dest: c.DestPrefix + e.Key}
		if e.Stored != "" {
			f.dest = e.Stored
		}
		if o.seal != nil {
			f.dest += encryption.Ext
		}
		i := len(files)
		files = append(files, f)
		wg.Go(func() {
			defer w.recoverFile(e.Key, &f.err, cancel)
			if buf == nil {
				buf = make([]byte, copyBufferSize)
			}
			defer func() { slots <- buf }()
			count := &fileCounter{task: written}
			f.err = o.storeOne(ctx, f, c.SourcePrefix+e.Key, strconv.Itoa(i), buf, count)
			if f.err != nil {
				count.settle(0)
			} else {
				count.settle(f.n)
			}
			if f.err != nil && !errors.Is(f.err, storage.ErrNotExist) && !errors.Is(f.err, storage.ErrNotRegular) {
				cancel(f.err)
			}
		})
		return nil
	})
	if err != nil {
		cancel(err)
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	return files, nil
}

// storeOne stores one file: nothing for an unchanged one; a local file is hashed first and
// uploaded only if the store lacks its content; anything else goes through a staging key.
func (o *objectStore) storeOne(ctx context.Context, f *storedFile, key, seq string, buf []byte, count *fileCounter) error {
	e := f.e
	if e.Reuse != "" && e.SHA256 != "" && !o.checksum {
		f.n, f.sum, f.mode, f.reused = e.Size, e.SHA256, fs.FileMode(e.Mode).Perm(), true
		return nil
	}
	if !o.src.IsLocal() || o.seal != nil {
		// An encrypted copy's sum is known only once it is written: each encryption differs.
		return o.viaStaging(ctx, f, key, seq, buf, count)
	}
	h, err := hashSource(ctx, o.src, key, buf)
	if err != nil {
		return err
	}
	f.mode = h.mode
	if !h.changed {
		if e.Reuse != "" && h.sum == e.SHA256 {
			f.n, f.sum, f.reused = h.n, h.sum, true // --checksum: the same content
			return nil
		}
		err := o.once(ctx, h.sum, func() error { return o.upload(ctx, key, h.sum, buf, count) })
		if err == nil {
			f.n, f.sum = h.n, h.sum
			return nil
		} else if !errors.Is(err, errNotStored) {
			return err
		}
	}
	// The file changed between the hash and the upload (or during the hash): read it once
	// more through a staging key, which stores whatever that read gets under its own sum.
	count.settle(0)
	return o.viaStaging(ctx, f, key, seq, buf, count)
}

// hashed is a source file's content hash, read without storing it.
type hashed struct {
	n       int64
	sum     string
	mode    fs.FileMode
	changed bool
}

// hashSource reads a source file and hashes it, and says whether it changed as it was read.
func hashSource(ctx context.Context, src *storage.Bucket, key string, buf []byte) (hashed, error) {
	r, obj, err := src.Open(ctx, key)
	if err != nil {
		return hashed{}, err
	}
	defer r.Close()
	before := statSource(r)
	var in io.Reader = struct{ io.Reader }{r}
	if wrap := readHook.Load(); wrap != nil {
		in = (*wrap)(key, in)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, in, buf)
	if err != nil {
		return hashed{}, fmt.Errorf("read %s: %w", key, err)
	}
	return hashed{n: n, sum: hexSum(h), mode: obj.Mode, changed: before.changed(n, statSource(r))}, nil
}

// upload stores the source file under the object key of sum unless the store has it already
// (one HEAD). It returns errNotStored when the bytes read this time are not those hashed
// before: the file changed in between, and nothing was stored.
func (o *objectStore) upload(ctx context.Context, key, sum string, buf []byte, count *fileCounter) error {
	obj := layout.ObjectKey(sum)
	if ok, err := exists(ctx, o.store, obj); err != nil || ok {
		return err
	}
	out, _, err := streamBytes(ctx, o.src, o.store, fileCopy{key: key, destKey: obj, want: sum, mode: backupFileMode, buf: buf, count: count})
	if errors.Is(err, errChecksum) {
		return errNotStored
	} else if err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// viaStaging streams the source into a staging key while hashing it (once more if it changed
// as it was read), then copies it server-side to its object key unless the store has that
// content already, and removes the staging key.
func (o *objectStore) viaStaging(ctx context.Context, f *storedFile, key, seq string, buf []byte, count *fileCounter) (err error) {
	tmp := path.Join(incomingDir, o.task, seq)
	fc := fileCopy{key: key, destKey: tmp, mode: backupFileMode, buf: buf, count: count, seal: o.seal}
	c, err := streamOne(ctx, o.src, o.stage, fc)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := o.stage.Remove(context.WithoutCancel(ctx), tmp); rerr != nil && err == nil {
			err = rerr
		}
	}()
	f.n, f.sum, f.plain, f.mode, f.changed = c.n, c.sum, c.plain, c.mode, c.changed
	if f.e.Reuse != "" && c.sum == f.e.SHA256 {
		f.reused = true // --checksum: the same content as the base's
		return nil
	}
	obj := layout.ObjectKey(c.sum)
	return o.once(ctx, c.sum, func() error {
		if ok, err := exists(ctx, o.store, obj); err != nil || ok {
			return err
		}
		return o.store.Transfer(ctx, o.stage, tmp, obj, func(src storage.Object) storage.Object {
			return storage.Object{Mode: backupFileMode, ModTime: src.ModTime}
		})
	})
}

// refreshAfter is the age from which an object the store already holds is written again
// rather than taken as it is. Prune's garbage collection deletes an object no backup or run
// names only when it was last written before its grace period (a day by default); a run
// names a new file's object only once its task's sums are written. An old object that no
// backup names any more (a file deleted, then put back) could be swept between the HEAD that
// found it and those sums: written again, it is as young as a new upload.
const refreshAfter = time.Hour

// exists reports whether key is in b, written less than refreshAfter ago (one HEAD).
func exists(ctx context.Context, b *storage.Bucket, key string) (bool, error) {
	o, err := b.Stat(ctx, key)
	switch {
	case err == nil:
		return time.Since(o.LastModified) < refreshAfter, nil
	case errors.Is(err, storage.ErrNotExist):
		return false, nil
	}
	return false, err
}

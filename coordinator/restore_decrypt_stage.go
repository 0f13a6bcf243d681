package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore of an encrypted backup into a local storage decrypts each file once: its check
// pass, which must read and decrypt every file before anything changes, writes the plaintext
// into a private folder in the storage's root (on the storage's filesystem, so that a link
// puts it in place), and the workers link each file from there instead of decrypting the
// backup's copy again. The folder holds one plaintext copy of the restored files, which
// become the restored files themselves. Its name and its files' are temporary names
// (storage.TempPrefix: a listing of the storage never shows them; scratch's owner tag: the
// next restore removes a killed one's), and it is removed on every exit path. An S3 storage
// keeps the two decryptions: staging there would be an upload of every file.

// stagePrefix begins the name of a restore's staging folder in the storage's root.
const stagePrefix = storage.TempPrefix + "restore-"

// restoreStage is a restore's staging folder.
type restoreStage struct {
	dir string
	b   *storage.Bucket
	// created is the topmost folder of the storage root that the stage made (the root did not
	// exist): removed again if the restore ends before its files are restored.
	created  string
	keepRoot bool
}

// newRestoreStage makes the staging folder in the local storage root storageURL for files of
// about need bytes; nil for an S3 storage, or when the storage's filesystem has not that much
// free (the workers then decrypt each file as they restore it, as into S3).
func newRestoreStage(ctx context.Context, storageURL string, need int64) (*restoreStage, error) {
	root := storage.LocalPath(storageURL)
	if strings.Contains(root, "://") {
		return nil, nil
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("storage root %s: %w", storageURL, err)
	}
	if free := stagingFree.free(existingAncestor(root)); free >= 0 && free < need+need/16 {
		slog.Info("not enough free space in the storage to stage the checked files: the workers read each from the backup again as they restore it",
			"storage", root, "free_bytes", free, "needed_bytes", need)
		return nil, nil
	}
	created, err := mkdirAllNoted(root)
	if err != nil {
		return nil, fmt.Errorf("storage root %s: %w", root, err)
	}
	st := &restoreStage{created: created}
	if st.dir, err = scratch.MkdirTemp(root, stagePrefix); err != nil {
		st.close()
		return nil, fmt.Errorf("restore staging folder in the storage: %w", err)
	}
	if st.b, err = storage.Open(ctx, st.dir, storage.DeferSync()); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// freeHook is a free-space measure a test may replace: diskFree unless set.
type freeHook struct {
	fn atomic.Pointer[func(dir string) int64]
}

// set makes fn the measure; the returned function puts diskFree back.
func (h *freeHook) set(fn func(dir string) int64) (remove func()) {
	h.fn.Store(&fn)
	return func() { h.fn.Store(nil) }
}

// free is the free bytes of dir's file system, as diskFree or the test says.
func (h *freeHook) free(dir string) int64 {
	if fn := h.fn.Load(); fn != nil {
		return (*fn)(dir)
	}
	return diskFree(dir)
}

// stagingFree measures the encrypted staging's room, storageFree a restore's storage folder's:
// apart, so that a test can make the staging fall back while the files still fit.
var stagingFree, storageFree freeHook

// SetDiskFreeHook is for tests only: from now on the restore's staging takes fn(dir) as the
// free bytes of the file system of the storage root dir (or its nearest existing parent), so
// that a test can make it too small. The returned function removes the hook.
func SetDiskFreeHook(fn func(dir string) int64) (remove func()) { return stagingFree.set(fn) }

// existingAncestor is dir or its nearest parent that exists.
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

// mkdirAllNoted is os.MkdirAll(dir, 0o755) that returns the topmost folder it made ("" when
// dir existed).
func mkdirAllNoted(dir string) (string, error) {
	top := ""
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		top = p
		if filepath.Dir(p) == p {
			break
		}
	}
	if top == "" {
		return "", nil
	}
	return top, os.MkdirAll(dir, 0o755)
}

// close removes the staging folder and, unless the files were being restored, the storage
// root folders it made.
func (st *restoreStage) close() {
	if st == nil {
		return
	}
	if st.b != nil {
		st.b.Close()
	}
	if st.dir != "" {
		os.RemoveAll(st.dir)
	}
	if st.keepRoot || st.created == "" {
		return
	}
	// Empty folders only, deepest first: what it made, nothing else.
	for p := filepath.Dir(st.dir); ; p = filepath.Dir(p) {
		if os.Remove(p) != nil || p == st.created || filepath.Dir(p) == p {
			return
		}
	}
}

// stageFile reads the age file at name (rel in the backup), hashing it as hashFile does, and
// writes its plaintext into the stage as the file restored to key, with mode (0: the backup
// copy's) and the backup copy's modification time, as a worker would restore it.
func (a *ageResults) stageFile(ctx context.Context, name, rel, key string, mode fs.FileMode, ids *encryption.Identities, st *restoreStage) (string, int64, error) {
	f, err := storage.OpenRegular(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if mode == 0 {
		mode = fi.Mode().Perm()
	}
	return a.stage(ctx, rel, f, key, storage.Object{Mode: mode, ModTime: fi.ModTime()}, ids, st, rehashFile(name))
}

// stage is hash of the age file r, kept under id, that also writes its plaintext into the
// stage as the file restored to key, with attrs' mode and modification time. Only a file that
// decrypted whole is committed there.
func (a *ageResults) stage(ctx context.Context, id string, r io.Reader, key string, attrs storage.Object, ids *encryption.Identities, st *restoreStage, rehash func(context.Context) (string, error)) (string, int64, error) {
	w, err := st.b.Create(ctx, messages.StagedName(key), attrs)
	if err != nil {
		return "", 0, fmt.Errorf("stage %s: %w", storage.QuoteKey(key), err)
	}
	s, err := layout.DecryptAge(ctx, r, ids, w)
	if err == nil && s.Decrypt == nil {
		if err = w.Commit(); err != nil {
			err = fmt.Errorf("stage %s: %w", storage.QuoteKey(key), err)
		}
	} else {
		w.Abort()
		if err == nil {
			s.Stored, err = rehash(ctx)
		}
	}
	a.put(id, s)
	return s.Stored, s.PlainSize, err
}

// sync makes the staged files durable, one sync of the filesystem for them all, before any
// is linked into the storage.
func (st *restoreStage) sync(ctx context.Context) error {
	if err := st.b.Sync(ctx); err != nil {
		return fmt.Errorf("restore staging folder: %w", err)
	}
	return nil
}

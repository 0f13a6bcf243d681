package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// local keeps objects as files under a root folder, with their permissions and times.
//
// Every access goes through an os.Root opened once per bucket: keys cannot escape the folder
// (not even through symlinks planted inside it), and a bucket keeps writing into the folder it
// opened even if that folder is renamed away — so an aborted run's staging folder, once
// renamed, can never be recreated under its name by a late worker.
type local struct {
	dir string

	once sync.Once
	root *os.Root
	err  error
}

// TempPrefix starts the names of files being written; Walk does not show them. A writer
// killed mid-write leaves such a file behind.
const TempPrefix = ".wnb-tmp-"

func newLocal(dir string) *local { return &local{dir: filepath.Clean(dir)} }

func (l *local) describe() string { return l.dir }
func (l *local) backend() string  { return "FileSystemStorage" }

func (l *local) open_() (*os.Root, error) {
	l.once.Do(func() { l.root, l.err = os.OpenRoot(l.dir) })
	return l.root, l.err
}

func (l *local) close() error {
	if l.root != nil {
		return l.root.Close()
	}
	return nil
}

func objectOf(key string, fi fs.FileInfo) Object {
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Mode: fi.Mode().Perm()}
}

// walk lists regular files in lexical order of each folder's entries; symlinks are not
// followed (a link in MEDIA_ROOT could point anywhere on the host).
func (l *local) walk(ctx context.Context, prefix string, fn func(Object) error) error {
	root, err := l.open_()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // an empty storage
	} else if err != nil {
		return err
	}
	start := "."
	if prefix != "" {
		// A prefix names a folder ("content/") or a key beginning; walk the deepest folder it names.
		dir := prefix
		if !strings.HasSuffix(dir, "/") {
			dir = path.Dir(prefix)
		}
		start = strings.TrimSuffix(dir, "/")
		if start == "" {
			start = "."
		}
	}
	fsys := root.FS()
	if _, err := fs.Stat(fsys, start); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fs.WalkDir(fsys, start, func(key string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || strings.HasPrefix(d.Name(), TempPrefix) {
			return nil // not a file, or one not committed yet
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // vanished while listing
		} else if err != nil {
			return err
		}
		return fn(objectOf(key, fi))
	})
}

func (l *local) open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	root, err := l.open_()
	if err != nil {
		return nil, Object{}, err
	}
	// O_NONBLOCK: a FIFO put where a file was listed must not block the reader forever.
	f, err := root.OpenFile(key, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, Object{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Object{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Object{}, fmt.Errorf("%s is not a regular file", filepath.Join(l.dir, key))
	}
	return f, objectOf(key, fi), nil
}

func (l *local) stat(ctx context.Context, key string) (Object, error) {
	root, err := l.open_()
	if err != nil {
		return Object{}, err
	}
	fi, err := root.Stat(key)
	if err != nil {
		return Object{}, err
	}
	return objectOf(key, fi), nil
}

func (l *local) create(ctx context.Context, key string, attrs Object) (Writer, error) {
	root, err := l.open_()
	if err != nil {
		return nil, fmt.Errorf("destination root: %w", err)
	}
	var b [8]byte
	rand.Read(b[:])
	dir := path.Dir(key)
	tmp := path.Join(dir, TempPrefix+hex.EncodeToString(b[:]))
	// The folder usually exists already (its other files were copied before): make it only
	// when the create says it is missing, which spares a MkdirAll's walk for every file.
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrNotExist) && dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		f, err = root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return &localWriter{root: root, f: f, tmp: tmp, final: key, attrs: attrs}, nil
}

func (l *local) remove(ctx context.Context, key string) error {
	root, err := l.open_()
	if err != nil {
		return err
	}
	return root.Remove(key)
}

func (l *local) removeAll(ctx context.Context, prefix string) error {
	root, err := l.open_()
	if err != nil {
		return err
	}
	return root.RemoveAll(strings.TrimSuffix(prefix, "/"))
}

type localWriter struct {
	root       *os.Root
	f          *os.File
	tmp, final string
	attrs      Object
	done       bool
}

func (w *localWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// ReadFrom lets io.Copy use copy_file_range/sendfile between files.
func (w *localWriter) ReadFrom(r io.Reader) (int64, error) { return w.f.ReadFrom(r) }

func (w *localWriter) Commit() error {
	if w.done {
		return errors.New("commit: writer already closed")
	}
	w.done = true
	mode := w.attrs.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	err := w.f.Chmod(mode)
	if err == nil && !w.attrs.ModTime.IsZero() {
		err = w.root.Chtimes(w.tmp, time.Time{}, w.attrs.ModTime)
	}
	if err == nil {
		// On disk before it gets its name, as a committed object should be. It also makes
		// a backup's final fsync of every file cheap: each copy in flight syncs its own
		// file here, in parallel, where that sync was one file after another.
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(w.tmp, w.final)
	}
	if err != nil {
		w.root.Remove(w.tmp)
		return err
	}
	return nil
}

func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return w.root.Remove(w.tmp)
}

func (l *local) rename(ctx context.Context, from, to string) error {
	root, err := l.open_()
	if err != nil {
		return err
	}
	if dir := path.Dir(to); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return root.Rename(from, to)
}

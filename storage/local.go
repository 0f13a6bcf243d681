package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// local keeps objects as files under a root folder, with their permissions and times.
type local struct {
	root string
}

func newLocal(root string) *local { return &local{root: filepath.Clean(root)} }

func (l *local) describe() string { return l.root }
func (l *local) backend() string  { return "FileSystemStorage" }

func (l *local) path(key string) string { return filepath.Join(l.root, filepath.FromSlash(key)) }

func objectOf(key string, fi fs.FileInfo) Object {
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Mode: fi.Mode().Perm()}
}

// walk lists regular files in lexical order of each folder's entries; symlinks are not
// followed (a link in MEDIA_ROOT could point anywhere on the host).
func (l *local) walk(ctx context.Context, prefix string, fn func(Object) error) error {
	start := l.root
	dirPrefix := ""
	if prefix != "" {
		// A prefix names a folder ("content/") or a key beginning; walk the deepest folder it names.
		dir := prefix
		if !strings.HasSuffix(dir, "/") {
			dir = filepath.ToSlash(filepath.Dir(filepath.FromSlash(prefix)))
			if dir == "." {
				dir = ""
			}
		}
		dirPrefix = strings.TrimSuffix(dir, "/")
		start = l.path(dirPrefix)
	}
	if _, err := os.Lstat(start); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
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
	f, err := os.Open(l.path(key))
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
		return nil, Object{}, fmt.Errorf("%s is not a regular file", l.path(key))
	}
	return f, objectOf(key, fi), nil
}

func (l *local) stat(ctx context.Context, key string) (Object, error) {
	fi, err := os.Stat(l.path(key))
	if err != nil {
		return Object{}, err
	}
	return objectOf(key, fi), nil
}

func (l *local) create(ctx context.Context, key string, attrs Object) (Writer, error) {
	// The root must exist: a run that was aborted removes its staging folder, and a late
	// worker must not bring it back.
	if _, err := os.Stat(l.root); err != nil {
		return nil, fmt.Errorf("destination root: %w", err)
	}
	final := l.path(key)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(final), ".wnb-tmp-*")
	if err != nil {
		return nil, err
	}
	return &localWriter{f: f, final: final, attrs: attrs}, nil
}

func (l *local) remove(ctx context.Context, key string) error { return os.Remove(l.path(key)) }

func (l *local) removeAll(ctx context.Context, prefix string) error {
	return os.RemoveAll(l.path(strings.TrimSuffix(prefix, "/")))
}

type localWriter struct {
	f     *os.File
	final string
	attrs Object
	done  bool
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
	if err == nil {
		err = w.f.Close()
	} else {
		w.f.Close()
	}
	if err == nil && !w.attrs.ModTime.IsZero() {
		err = os.Chtimes(w.f.Name(), time.Time{}, w.attrs.ModTime)
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.final)
	}
	if err != nil {
		os.Remove(w.f.Name())
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
	return os.Remove(w.f.Name())
}
